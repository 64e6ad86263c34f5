// Servers you create or join: the "+" dialog (create one, or join with an invite code
// or link), an invite link opened (#/invite/<code>: where it leads, then Join), and
// inviting people (a code and a link to share).

import { h, replace, dialog, toast, describe, fmtFull, actionForm, formError, hold, held } from "../dom.js";

const CODE = /^[A-Za-z0-9]{6,32}$/; // (the API's own pattern)

// The code in what someone pasted: the code itself, or a link ending in /invite/<code>.
export function inviteCode(text) {
  const t = String(text).trim();
  const m = t.match(/\/invite\/([^/?#\s]+)\/?$/);
  const code = m ? m[1] : t;
  return CODE.test(code) ? code : null;
}

export function inviteLink(code) {
  return `${location.origin}/#/invite/${code}`;
}

async function join(app, code) {
  const server = await app.session.call("POST", `/api/invites/${encodeURIComponent(code)}`);
  afterJoin(app, server);
  return server;
}

function afterJoin(app, server) {
  if (!app.store.servers.has(server.id)) app.store.addServer(server);
  const first = app.firstChannel(app.store.servers.get(server.id));
  location.hash = first ? `#/s/${server.id}/${first.id}` : `#/s/${server.id}`;
  app.store.emit("servers");
}

function notFound(err) {
  const bad = err.code === "INVITE_NOT_FOUND" || err.status === 400 || err.status === 422; // (a malformed code)
  return bad ? "This invite is invalid, has expired or has been used up." : describe(err);
}

export function addServerDialog(app) {
  const name = h("input", { id: "new-server", maxlength: 100, required: true, placeholder: "My server" });
  const code = h("input", { id: "invite-code", required: true, autocomplete: "off", placeholder: "Code, or a link ending in /invite/…" });
  const create = actionForm({
    label: "Create your own",
    fields: [h("label", { for: "new-server" }, "Server name"), name],
    submitText: "Create",
    run: async () => {
      const s = await app.session.call("POST", "/api/servers", { name: name.value });
      d.close();
      afterJoin(app, s);
    },
  });
  const joinForm = actionForm({
    label: "Join with an invite",
    fields: [h("label", { for: "invite-code" }, "Invite code or link"), code],
    submitText: "Join",
    run: async () => {
      const c = inviteCode(code.value);
      if (!c) throw new Error("That is not an invite code or an invite link.");
      try {
        await join(app, c);
      } catch (err) {
        throw new Error(notFound(err));
      }
      d.close();
    },
  });
  const d = dialog("Add a server", [h("h3", null, "Create your own"), create, h("h3", null, "Join with an invite"), joinForm]);
}

// An invite link opened: say where it leads before joining.
export async function invitePreview(app, code) {
  const error = formError();
  const body = h("div", { class: "stack invite-preview" }, h("p", { class: "muted" }, "Looking up the invite…"), error);
  const d = dialog("Join a server", body);
  let preview;
  try {
    if (!CODE.test(code)) throw Object.assign(new Error("not a code"), { code: "INVITE_NOT_FOUND" });
    preview = await app.session.call("GET", `/api/invites/${encodeURIComponent(code)}`);
  } catch (err) {
    replace(body, error);
    error.textContent = notFound(err);
    return;
  }
  const s = preview.server;
  const member = app.store.servers.has(s.id);
  const button = h("button", { class: "btn btn-primary", type: "button" }, member ? `Open ${s.name}` : `Join ${s.name}`);
  button.addEventListener("click", async () => {
    if (held(button)) return;
    hold(button, true);
    try {
      await join(app, code);
      d.close();
    } catch (err) {
      error.textContent = notFound(err);
      hold(button, false);
    }
  });
  replace(
    body,
    h("p", null, "You have been invited to join"),
    h("h3", null, s.name),
    s.description ? h("p", { class: "muted" }, s.description) : null,
    h("p", { class: "muted" }, `${s.member_count} member${s.member_count === 1 ? "" : "s"}${member ? " · you are one of them" : ""}`),
    error,
    h("div", { class: "row-end" }, button),
  );
  button.focus();
}

// The invite this page made for `server`, again while it still works (it lives a day):
// a new one at every opening would use up the 20 live invites a member may hold, and
// fill the server's list and audit log.
async function ourInvite(app, server) {
  app.invites = app.invites || new Map(); // server id -> the invite made here
  const held = app.invites.get(server.id);
  if (held && (!held.expires_at || new Date(held.expires_at) - Date.now() > 3600000)) {
    try {
      await app.session.call("GET", `/api/invites/${encodeURIComponent(held.code)}`);
      return held;
    } catch (err) {
      if (err.code !== "INVITE_NOT_FOUND") throw err; // (revoked or used up: a new one)
    }
  }
  const inv = await app.session.call("POST", `/api/servers/${server.id}/invites`, {});
  app.invites.set(server.id, inv);
  return inv;
}

export async function inviteDialog(app, server) {
  try {
    const inv = await ourInvite(app, server);
    const link = inviteLink(inv.code);
    const copy = (text) => navigator.clipboard.writeText(text).then(() => toast("Copied", "info"), () => toast("Could not copy: select it and copy by hand"));
    const linkField = h("input", { id: "invite-link", readonly: true, value: link });
    const codeField = h("input", { id: "invite-out", readonly: true, value: inv.code });
    dialog(`Invite people to ${server.name}`, [
      h("label", { for: "invite-link" }, "Share this link"),
      h("div", { class: "composer-row" }, linkField, h("button", { class: "btn btn-primary", type: "button", onclick: () => copy(link) }, "Copy link")),
      h("label", { for: "invite-out" }, "Or the invite code"),
      h("div", { class: "composer-row" }, codeField, h("button", { class: "btn", type: "button", onclick: () => copy(inv.code) }, "Copy code")),
      h("p", { class: "muted" }, inv.expires_at ? `Expires ${fmtFull(inv.expires_at)}` : "Never expires"),
    ]);
    linkField.select();
  } catch (err) {
    toast(describe(err));
  }
}
