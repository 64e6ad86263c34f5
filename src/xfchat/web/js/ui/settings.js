// Server settings, for owners and those with the permissions: overview, channels
// (with permission overrides), roles (with permissions), members (roles, timeout, kick,
// ban), invites, bans, webhooks (ui/webhooks.js) and the audit log. Each tab calls the documented routes; the
// server's events keep the rest of the client current.

import { h, replace, morph, tabbedDialog, displayName, nameEl, fmtFull, duration, toast, describe, confirmDialog, colorOf, hold, held as isHeld } from "../dom.js";
import { P, PERMISSION_NAMES, label, has, channelPermissions, managesChannels, serverPermissions, webhookChannels } from "../perms.js";
import { loadMembers } from "./members.js";
import { sortedChannels } from "./sidebar.js";
import { LEVELS, serverDefault } from "./notify.js";
import { webhooksTab } from "./webhooks.js";

// A server's default notification levels (a member's own may also be "Nothing").
const DEFAULT_LEVELS = LEVELS.filter(([value]) => value !== "nothing");

const TABS = [
  ["overview", "Overview", P.MANAGE_SERVER],
  ["channels", "Channels", P.MANAGE_CHANNELS],
  ["roles", "Roles", P.MANAGE_ROLES],
  ["members", "Members", P.KICK_MEMBERS | P.BAN_MEMBERS | P.MODERATE_MEMBERS | P.MANAGE_ROLES],
  ["invites", "Invites", P.MANAGE_SERVER],
  ["bans", "Bans", P.BAN_MEMBERS],
  ["webhooks", "Webhooks", P.MANAGE_WEBHOOKS],
  ["audit", "Audit log", P.VIEW_AUDIT_LOG],
];

// The tabs `server` (as the store holds it now) lets you use: none once it is gone.
function allowedTabs(app, server) {
  const now = app.store.servers.get(server.id);
  if (!now) return [];
  const perms = serverPermissions(now);
  // (webhooks: where MANAGE_WEBHOOKS holds in a text channel, overrides included)
  return TABS.filter(([key, , need]) => (key === "webhooks" ? webhookChannels(now).length > 0 : PERMISSION_NAMES.some((n) => (need & P[n]) && has(perms, P[n])) || (key === "channels" && managesChannels(now))));
}

export function openSettings(app, server) {
  const s = new Settings(app, server);
  // The settings go with the server (deleted, or you were kicked, banned or left) and
  // with the last permission that opened them (a role taken away).
  const onChange = () => {
    if (allowedTabs(app, server).length) {
      const title = `${s.s.name} settings`; // (renamed, here or elsewhere)
      const heading = d.dlg.querySelector(".modal-head h2");
      if (heading.textContent !== title) heading.textContent = title;
      s.render();
    } else {
      d.close();
      toast(`You can no longer change the settings of ${server.name}.`, "info");
    }
  };
  const offs = [
    app.store.on(`server:${server.id}`, onChange),
    app.store.on(`gone:${server.id}`, () => d.close()),
    app.store.on("users", () => { if (s.tab === "channels") s.render(); }), // (former members' names)
  ];
  const d = tabbedDialog(`${server.name} settings`, allowedTabs(app, server), (key, panel) => {
    s.panel = panel;
    s.tab = key;
    s.drawn = null; // (a tab chosen is drawn afresh; an event redraws what is shown)
    s.revealed = null; // (a webhook's URL is shown until the tab is left: see webhooks.js)
    s.render();
  }, { onClose: () => offs.forEach((off) => off()) });
}

class Settings {
  constructor(app, server) {
    this.app = app;
    this.server = server;
    this.panel = null;
    this.tab = null;
    this.channelId = null;
    this.roleId = null;
    this.forms = new Map(); // key -> {el, dirty}: see form()
    this.revealed = null; // a webhook's URL, shown once (webhooks.js)
    this.focusUrl = false;
  }

  // A form stays the same element while what it shows (`shows`, any JSON) is unchanged,
  // so an event that redraws its tab for something else (someone joining) does not pull
  // it from under the user's typing; and once the user has changed it (a control not
  // marked data-pick, which only chooses what is shown), it keeps their changes through
  // every redraw (a role created, another admin's edit) until it is saved or the dialog
  // closed. Saves send only what the user changed (see roleEditor, overridesEditor), so
  // a form held through another admin's edit does not undo it.
  form(key, shows, build) {
    const sig = JSON.stringify(shows);
    const held = this.forms.get(key);
    if (held) held.now = sig; // (what the server's state would show now)
    if (held && (held.dirty || held.sig === sig)) return held.el;
    const entry = { el: build(), dirty: false, sig, now: sig };
    const touched = (ev) => {
      if (!ev.target.hasAttribute("data-pick")) entry.dirty = true;
    };
    entry.el.addEventListener("input", touched);
    entry.el.addEventListener("change", touched);
    this.forms.set(key, entry);
    return entry.el;
  }

  // Saved: the form shows what was saved until it is drawn anew from the server's state:
  // now if the save's event came while the form was held, else at that event's redraw
  // (not before it, which would show the old values for a moment).
  async save(key, fn, done) {
    let saved = false;
    await this.act(async () => {
      await fn();
      saved = true;
    }, done);
    const held = this.forms.get(key);
    if (saved && held) {
      const moved = held.now !== held.sig;
      held.dirty = false;
      held.sig = null;
      if (moved) this.render();
    }
    return saved;
  }

  // What the user changed, as a PATCH (nothing changed: saved as it is, nothing sent).
  patch(key, path, body, done) {
    return this.save(key, () => (Object.keys(body).length ? this.call("PATCH", path, body) : null), done);
  }

  get s() {
    return this.app.store.servers.get(this.server.id) || this.server;
  }

  async act(fn, done) {
    try {
      const out = await fn();
      if (done) toast(done, "info");
      return out;
    } catch (err) {
      toast(describe(err));
      return null;
    }
  }

  call(method, path, body) {
    return this.app.session.call(method, path, body);
  }

  render() {
    const fn = { overview: this.overview, channels: this.channels, roles: this.roles, members: this.members, invites: this.invites, bans: this.bans, webhooks: this.webhooks, audit: this.audit }[this.tab];
    if (!fn) return;
    // A redraw of the same tab (an event) leaves the focus, caret and scroll where they
    // were: a held form is taken out and put back, which would drop them.
    const again = this.drawn === this.tab && this.panel;
    // (the audit log is read page by page: an event does not take it back to the first)
    if (again && this.tab === "audit") return;
    this.again = Boolean(again);
    const active = again && this.panel.contains(document.activeElement) ? document.activeElement : null;
    const top = again ? this.panel.scrollTop : 0;
    this.drawn = this.tab;
    fn.call(this);
    if (!again) return;
    this.keepFocus(active);
    this.panel.scrollTop = top;
  }

  // The focus back where it was, or, if what held it is gone (a channel or role deleted,
  // from its own button), on the panel: never on the page under the dialog.
  keepFocus(active) {
    if (!active) return;
    if (active.isConnected) {
      if (document.activeElement !== active) active.focus({ preventScroll: true });
    } else if (!this.panel.contains(document.activeElement)) {
      this.panel.focus({ preventScroll: true });
    }
  }

  // A tab drawn after a request (members, invites, bans), the focus kept: in place
  // (morph) when it redraws itself, so a button pressed keeps the focus.
  draw(...children) {
    const active = this.panel.contains(document.activeElement) ? document.activeElement : null;
    (this.again ? morph : replace)(this.panel, ...children);
    this.keepFocus(active);
  }

  overview() {
    const s = this.s;
    replace(
      this.panel,
      h("h3", null, "Overview"),
      this.form("overview", [s.name, s.description, serverDefault(s)], () => {
        const name = h("input", { id: "srv-name", value: s.name, maxlength: 100, required: true });
        const desc = h("textarea", { id: "srv-desc", maxlength: 1024, rows: 3, value: s.description || "" });
        // What members who set nothing are notified of (Discord's "Default Notification
        // Settings"); sent only when changed, so a rename does not audit it.
        const notify = h(
          "select",
          { id: "srv-notify" },
          DEFAULT_LEVELS.map(([value, text]) => h("option", { value, selected: value === serverDefault(s) }, text)),
        );
        const body = () => {
          const out = { name: name.value, description: desc.value || null };
          if (notify.value !== serverDefault(this.s)) out.default_notifications = notify.value;
          return out;
        };
        return h(
          "form",
          { class: "stack", onsubmit: (ev) => { ev.preventDefault(); this.save("overview", () => this.call("PATCH", `/api/servers/${s.id}`, body()), "Saved"); } },
          h("label", { for: "srv-name" }, "Server name"), name,
          h("label", { for: "srv-desc" }, "Description"), desc,
          h("label", { for: "srv-notify" }, "Default notifications"), notify,
          h("div", { class: "row-end" }, h("button", { class: "btn btn-primary", type: "submit" }, "Save")),
        );
      }),
      s.owner_id === this.app.store.me.id
        ? h("div", { class: "danger-zone" },
            this.transferForm(),
            h("h4", null, "Delete server"),
            h("button", { class: "btn btn-danger", type: "button", onclick: async () => {
              if (await confirmDialog("Delete server", `Delete ${s.name} and everything in it?`)) this.act(() => this.call("DELETE", `/api/servers/${s.id}`));
            } }, "Delete server"))
        : null,
    );
  }

  // The owner hands the server to a member (the API's POST .../transfer).
  transferForm() {
    const s = this.s;
    const me = this.app.store.me.id;
    const loaded = this.app.store.members.get(s.id);
    if (!loaded) loadMembers(this.app, s.id).then(() => this.tab === "overview" && this.render()).catch(() => {});
    const others = [...(loaded || new Map()).values()].filter((m) => m.user.id !== me).sort((a, b) => displayName(a.user).localeCompare(displayName(b.user)));
    return this.form("transfer", others.map((m) => [m.user.id, displayName(m.user), m.user.username]), () => {
      const pick = h("select", { id: "srv-owner" }, h("option", { value: "" }, "Choose a member"), others.map((m) => h("option", { value: m.user.id }, `${displayName(m.user)} (@${m.user.username})`)));
      return h("form", { class: "stack", onsubmit: async (ev) => {
        ev.preventDefault();
        const chosen = others.find((m) => m.user.id === pick.value);
        if (!chosen) return toast("Choose the member who will own the server.");
        const who = displayName(chosen.user);
        if (!(await confirmDialog("Transfer ownership", `Make ${who} the owner of ${s.name}? You will no longer own it: only they can give it back.`, "Transfer"))) return;
        if (await this.save("transfer", () => this.call("POST", `/api/servers/${s.id}/transfer`, { owner_id: chosen.user.id }), `${who} owns ${s.name} now`)) {
          this.forms.delete("transfer");
          this.render();
        }
      } },
        h("h4", null, "Transfer ownership"),
        h("label", { for: "srv-owner" }, "New owner"), pick,
        h("div", { class: "row-end" }, h("button", { class: "btn btn-danger", type: "submit" }, "Transfer ownership")));
    });
  }

  channels() {
    const s = this.s;
    const list = sortedChannels(s).flatMap(({ category, channels }) => (category ? [category, ...channels] : channels));
    const selected = s.channels.find((c) => c.id === this.channelId);
    const wide = has(serverPermissions(s), P.MANAGE_CHANNELS);
    const cats = s.channels.filter((c) => c.kind === "category" && has(channelPermissions(s, c), P.MANAGE_CHANNELS));
    replace(
      this.panel,
      h("h3", null, "Channels"),
      // Where you may make one: anywhere with MANAGE_CHANNELS server-wide, else in the
      // categories whose overrides grant it to you (no category of your own then).
      !wide && !cats.length ? null : this.form("new-channel", [wide, cats.map((c) => [c.id, c.name])], () => {
        const name = h("input", { id: "new-ch-name", maxlength: 100, required: true, placeholder: "new-channel" });
        const kind = h("select", { id: "new-ch-kind" }, (wide ? ["text", "voice", "category"] : ["text", "voice"]).map((k) => h("option", { value: k }, k)));
        const parent = h("select", { id: "new-ch-parent" }, wide ? h("option", { value: "" }, "No category") : null, cats.map((c) => h("option", { value: c.id }, c.name)));
        return h(
          "form",
          { class: "inline-form", onsubmit: async (ev) => {
            ev.preventDefault();
            const body = { name: name.value, kind: kind.value, ...(parent.value && kind.value !== "category" ? { parent_id: parent.value } : {}) };
            if (await this.save("new-channel", () => this.call("POST", `/api/servers/${s.id}/channels`, body), "Channel created")) {
              this.forms.delete("new-channel"); // (an empty form for the next one)
              this.render();
              if (this.tab === "channels") this.panel.querySelector("#new-ch-name")?.focus();
            }
          } },
          // (each label and its field in one box: they wrap together)
          h("span", { class: "field" }, h("label", { for: "new-ch-name" }, "Name"), name),
          h("span", { class: "field" }, h("label", { for: "new-ch-kind" }, "Kind"), kind),
          h("span", { class: "field" }, h("label", { for: "new-ch-parent" }, "Category"), parent),
          h("button", { class: "btn btn-primary", type: "submit" }, "Create"),
        );
      }),
      h("ul", { class: "settings-list" }, list.map((c) =>
        h("li", { class: c.id === this.channelId ? "selected" : null },
          h("button", { class: "link-btn", type: "button", onclick: () => { this.channelId = c.id; this.render(); } }, `${c.kind === "category" ? "▾ " : c.kind === "voice" ? "🔊 " : "# "}${c.name}`),
          h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Delete ${c.name}`, onclick: async () => {
            if (await confirmDialog("Delete channel", deleteQuestion(s, c))) this.act(() => this.call("DELETE", `/api/channels/${c.id}`), "Channel deleted");
          } }, "Delete"),
        ),
      )),
      selected ? this.channelEditor(selected) : h("p", { class: "muted" }, "Choose a channel to edit it and its permission overrides."),
    );
  }

  channelEditor(c) {
    const s = this.s;
    const loaded = this.app.store.members.get(s.id) || new Map();
    const members = [...loaded.values()];
    loadMembers(this.app, s.id).then((all) => { if (all.size !== members.length && this.tab === "channels") this.render(); }).catch(() => {});
    // Denies kept for someone who left, was kicked or banned (they hold again if that
    // member comes back): listed to be seen and lifted, once every member is known.
    const formers = loaded.complete ? c.overrides.filter((o) => o.kind === "member" && !loaded.has(o.id)).map((o) => o.id) : [];
    if (formers.length) this.app.lookupUsers(formers);
    return h(
      "section",
      { class: "editor-box" },
      h("h4", null, `Edit ${c.name}`),
      this.form(`channel:${c.id}`, [c.name, c.topic, c.kind, c.rate_limit_per_user], () => this.channelForm(c)),
      h("h4", null, "Permission overrides"),
      this.form(`overrides:${c.id}`, [c.overrides, s.roles.map((r) => [r.id, r.name]), members.map((m) => [m.user.id, displayName(m.user)]), formers.map((id) => displayName(this.app.store.user(id)))], () => this.overridesEditor(c, members, formers)),
    );
  }

  channelForm(c) {
    const name = h("input", { id: "ch-name", value: c.name, maxlength: 100 });
    const topic = h("input", { id: "ch-topic", value: c.topic || "", maxlength: 1024 });
    const now = c.rate_limit_per_user || 0;
    const steps = SLOWMODE.includes(now) ? SLOWMODE : [...SLOWMODE, now].sort((a, b) => a - b);
    const slow = h("select", { id: "ch-slowmode" }, steps.map((n) => h("option", { value: String(n), selected: n === now }, n ? duration(n) : "Off")));
    return h("form", { class: "stack", onsubmit: (ev) => {
      ev.preventDefault();
      const body = {};
      if (name.value !== c.name) body.name = name.value;
      if (c.kind === "text" && topic.value !== (c.topic || "")) body.topic = topic.value || null;
      if (c.kind === "text" && Number(slow.value) !== now) body.rate_limit_per_user = Number(slow.value);
      this.patch(`channel:${c.id}`, `/api/channels/${c.id}`, body, "Saved");
    } },
      h("label", { for: "ch-name" }, "Name"), name,
      c.kind === "text" ? [h("label", { for: "ch-topic" }, "Topic"), topic, h("label", { for: "ch-slowmode" }, "Slowmode"), slow] : null,
      h("div", { class: "row-end" }, h("button", { class: "btn btn-primary", type: "submit" }, "Save")));
  }

  overridesEditor(c, members, formers) {
    const s = this.s;
    const targets = [
      ...s.roles.map((r) => ({ kind: "role", id: r.id, name: r.name })),
      ...members.map((m) => ({ kind: "member", id: m.user.id, name: `@${displayName(m.user)}` })),
      ...formers.map((id) => ({ kind: "member", id, name: `@${displayName(this.app.store.user(id))} (not a member now)` })),
    ];
    const pick = h("select", { id: "ov-target", "data-pick": true }, targets.map((t) => h("option", { value: `${t.kind}:${t.id}`, selected: `${t.kind}:${t.id}` === this.ovTarget }, t.name)));
    // (a text channel's webhooks are managed by who MANAGE_WEBHOOKS lets, there too)
    const shown = ["VIEW_CHANNEL", "SEND_MESSAGES", "READ_MESSAGE_HISTORY", "ADD_REACTIONS", "ATTACH_FILES", "MANAGE_MESSAGES", ...(c.kind === "text" ? ["MANAGE_WEBHOOKS"] : []), "CONNECT", "SPEAK"];
    const grid = h("div", { class: "override-grid" });
    // The override as it is now (another admin may have changed it since this was drawn).
    const current = (kind, id) => {
      const ch = this.s.channels.find((x) => x.id === c.id) || c;
      return ch.overrides.find((o) => o.kind === kind && o.id === id) || { allow: "0", deny: "0" };
    };
    const stateOf = (ov, n) => ((BigInt(ov.allow) & P[n]) ? "allow" : (BigInt(ov.deny) & P[n]) ? "deny" : "inherit");
    const saveButton = h("button", { class: "btn btn-primary", type: "button", onclick: () => grid.save() }, "Save permissions");
    const drawGrid = () => {
      this.ovTarget = pick.value;
      const [kind, id] = pick.value.split(":");
      const changed = new Map(); // permission -> the user's choice
      const ov = current(kind, id);
      const path = `/api/channels/${c.id}/overrides/${kind}/${id}`;
      if (kind === "member" && formers.includes(id)) {
        // Someone who is not a member now: the server sets no override for them (404
        // MEMBER_NOT_FOUND), so what lingers is shown, and lifted as a whole.
        const denied = PERMISSION_NAMES.filter((n) => BigInt(ov.deny) & P[n]).map(label);
        replace(grid, h("p", { class: "hint" }, `${displayName(this.app.store.user(id))} is not a member now. What they are denied here holds again if they come back: ${denied.join(", ") || "nothing"}. It can only be lifted as a whole.`));
        saveButton.textContent = "Lift their denies";
        grid.save = () => this.save(`overrides:${c.id}`, () => this.call("DELETE", path).catch((e) => { if (e.status !== 404) throw e; }), "Denies lifted");
        return;
      }
      saveButton.textContent = "Save permissions";
      replace(grid, shown.map((n) =>
        h("fieldset", { class: "tri" }, h("legend", null, label(n)), ["deny", "inherit", "allow"].map((v) =>
          h("label", { class: `tri-${v}` }, h("input", { type: "radio", name: `ov-${n}`, value: v, checked: stateOf(ov, n) === v, onchange: () => changed.set(n, v) }), v === "inherit" ? "/" : v === "allow" ? "✓" : "✕", h("span", { class: "visually-hidden" }, ` ${v}`)),
        )),
      ));
      grid.save = async () => {
        // Only the user's choices, over the override as it is now.
        const now = current(kind, id);
        let allow = BigInt(now.allow);
        let deny = BigInt(now.deny);
        for (const [n, v] of changed) {
          allow &= ~P[n];
          deny &= ~P[n];
          if (v === "allow") allow |= P[n];
          if (v === "deny") deny |= P[n];
        }
        await this.save(`overrides:${c.id}`, () => (allow || deny ? this.call("PUT", path, { allow: String(allow), deny: String(deny) }) : this.call("DELETE", path).catch((e) => { if (e.status !== 404) throw e; })), "Permissions saved");
      };
    };
    pick.addEventListener("change", drawGrid);
    drawGrid();
    return h("div", { class: "stack" },
      h("label", { for: "ov-target" }, "For role or member"), pick, grid,
      h("div", { class: "row-end" }, saveButton),
    );
  }

  roles() {
    const s = this.s;
    const roles = [...s.roles].sort((a, b) => b.position - a.position);
    const selected = roles.find((r) => r.id === this.roleId);
    replace(
      this.panel,
      h("h3", null, "Roles"),
      h("button", { class: "btn btn-primary", type: "button", onclick: async () => {
        const r = await this.act(() => this.call("POST", `/api/servers/${s.id}/roles`, { name: "new role" }));
        if (!r) return;
        this.roleId = r.id;
        upsert(s, r);
        this.render();
        if (this.tab === "roles") this.panel.querySelector("#role-name")?.focus(); // (to name it)
      } }, "Create role"),
      h("ul", { class: "settings-list" }, roles.map((r) =>
        h("li", { class: r.id === this.roleId ? "selected" : null },
          h("span", { class: "role-swatch", style: `background:${colorOf(r.color) || "#99aab5"}`, "aria-hidden": "true" }),
          h("button", { class: "link-btn", type: "button", onclick: () => { this.roleId = r.id; this.render(); } }, r.name),
          r.is_default ? null : h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Delete role ${r.name}`, onclick: async () => {
            if (await confirmDialog("Delete role", `Delete the role ${r.name}?`)) this.act(() => this.call("DELETE", `/api/servers/${s.id}/roles/${r.id}`), "Role deleted");
          } }, "Delete"),
        ),
      )),
      selected ? this.form(`role:${selected.id}`, ["name", "color", "hoist", "mentionable", "permissions", "is_default"].map((k) => selected[k]), () => this.roleEditor(selected)) : null,
    );
  }

  roleEditor(r) {
    const name = h("input", { id: "role-name", value: r.name, maxlength: 100, disabled: r.is_default });
    const color = h("input", { id: "role-color", type: "color", value: colorOf(r.color) || "#99aab5" });
    const hoist = h("input", { id: "role-hoist", type: "checkbox", checked: r.hoist });
    const mentionable = h("input", { id: "role-mention", type: "checkbox", checked: r.mentionable });
    const perms = BigInt(r.permissions);
    const boxes = PERMISSION_NAMES.map((n) => h("input", { type: "checkbox", id: `perm-${n}`, value: n, checked: (perms & P[n]) !== 0n }));
    return h(
      "form",
      { class: "editor-box stack", onsubmit: (ev) => {
        ev.preventDefault();
        // Only what the user changed, over the role as it is now.
        const now = this.s.roles.find((x) => x.id === r.id) || r;
        const body = {};
        const flipped = boxes.filter((b) => b.checked !== ((perms & P[b.value]) !== 0n));
        if (flipped.length) {
          const mask = flipped.reduce((acc, b) => acc | P[b.value], 0n);
          const set = flipped.filter((b) => b.checked).reduce((acc, b) => acc | P[b.value], 0n);
          body.permissions = String((BigInt(now.permissions) & ~mask) | set);
        }
        if (color.value !== (colorOf(r.color) || "#99aab5")) body.color = parseInt(color.value.slice(1), 16);
        if (hoist.checked !== r.hoist) body.hoist = hoist.checked;
        if (mentionable.checked !== r.mentionable) body.mentionable = mentionable.checked;
        if (!r.is_default && name.value !== r.name) body.name = name.value;
        this.patch(`role:${r.id}`, `/api/servers/${this.s.id}/roles/${r.id}`, body, "Role saved");
      } },
      h("h4", null, `Edit ${r.name}`),
      h("label", { for: "role-name" }, "Name"), name,
      h("label", { for: "role-color" }, "Colour"), color,
      h("label", { class: "check" }, hoist, " Show members separately (hoist)"),
      h("label", { class: "check" }, mentionable, " Anyone may mention this role"),
      h("fieldset", { class: "perm-grid" }, h("legend", null, "Permissions"), PERMISSION_NAMES.map((n, i) => h("label", { class: "check", for: `perm-${n}` }, boxes[i], ` ${label(n)}`))),
      h("div", { class: "row-end" }, h("button", { class: "btn btn-primary", type: "submit" }, "Save role")),
    );
  }

  // Each member's roles (toggles for those you may give or take) and what you may do to
  // them: nothing to the owner, nor to anyone whose highest role is at or above yours
  // (unless you own the server), and each act only with its permission.
  async members() {
    const s = this.s;
    let members = this.app.store.members.get(s.id);
    if (!members) {
      replace(this.panel, h("h3", null, "Members"), h("p", { class: "muted" }, "Loading…"));
      members = await this.act(() => loadMembers(this.app, s.id));
      if (!members || this.tab !== "members") return;
    }
    const me = this.app.store.me.id;
    const perms = serverPermissions(s);
    const owner = s.owner_id === me;
    const rolesOf = (m) => s.roles.filter((r) => r.is_default || m.role_ids.includes(r.id));
    const top = (m) => Math.max(0, ...rolesOf(m).map((r) => r.position));
    const mine = s.member ? top(s.member) : 0;
    const above = (position) => owner || position < mine;
    const manageRoles = has(perms, P.MANAGE_ROLES);
    const roles = s.roles.filter((r) => !r.is_default).sort((a, b) => b.position - a.position);
    this.draw(
      h("h3", null, "Members"),
      h("ul", { class: "settings-list members-admin" }, [...members.values()].map((m) => {
        const u = m.user;
        const timedOut = m.timed_out_until && new Date(m.timed_out_until) > new Date();
        const actionable = u.id !== me && u.id !== s.owner_id && above(top(m));
        const admin = rolesOf(m).some((r) => BigInt(r.permissions) & P.ADMINISTRATOR);
        const actions = actionable ? [
          has(perms, P.MODERATE_MEMBERS) && (timedOut || !admin) ? h("button", { class: "btn btn-small", type: "button", "data-key": "timeout", onclick: () => this.act(() => this.call("PATCH", `/api/servers/${s.id}/members/${u.id}`, { timed_out_until: timedOut ? null : new Date(Date.now() + 10 * 60000).toISOString() }), timedOut ? "Timeout lifted" : "Timed out for 10 minutes") }, timedOut ? "End timeout" : "Timeout 10 min") : null,
          has(perms, P.KICK_MEMBERS) ? h("button", { class: "btn btn-small btn-danger", type: "button", "data-key": "kick", onclick: async () => { if (await confirmDialog("Kick", `Kick ${displayName(u)}?`, "Kick")) this.act(() => this.call("DELETE", `/api/servers/${s.id}/members/${u.id}`), "Kicked"); } }, "Kick") : null,
          has(perms, P.BAN_MEMBERS) ? h("button", { class: "btn btn-small btn-danger", type: "button", "data-key": "ban", onclick: async () => { const seconds = await banDialog(u); if (seconds !== null) this.act(() => this.call("PUT", `/api/servers/${s.id}/bans/${u.id}`, { delete_message_seconds: seconds }), "Banned"); } }, "Ban") : null,
        ].filter(Boolean) : [];
        // (keyed, so a redraw keeps each button, and the focus on it, whatever comes or goes)
        return h("li", { "data-key": u.id },
          h("strong", null, displayName(u)), h("span", { class: "muted" }, ` @${u.username}`), timedOut ? h("span", { class: "pill", "data-key": "until" }, `timed out until ${fmtFull(m.timed_out_until)}`) : null,
          h("div", { class: "role-toggles", "data-key": "roles" }, roles.map((r) => {
            const on = m.role_ids.includes(r.id);
            return h("button", { class: ["pill", on && "pill-on"], type: "button", disabled: !(manageRoles && above(r.position) && (u.id === me || actionable)), "aria-pressed": String(on), "aria-label": `${r.name} role for ${displayName(u)}`, onclick: () => this.act(() => this.call(on ? "DELETE" : "PUT", `/api/servers/${s.id}/members/${u.id}/roles/${r.id}`)) }, r.name);
          })),
          actions.length ? h("div", { class: "row-actions", "data-key": "actions" }, actions) : null,
        );
      })),
    );
  }

  webhooks() {
    return webhooksTab(this);
  }

  async invites() {
    const s = this.s;
    const list = (await this.act(() => this.call("GET", `/api/servers/${s.id}/invites`))) || [];
    if (this.tab !== "invites") return;
    const uses = (i) => (i.max_uses ? `${i.uses}/${i.max_uses} uses` : `${i.uses} use${i.uses === 1 ? "" : "s"}`);
    this.draw(
      h("h3", null, "Invites"),
      // (the same form through every redraw: what was chosen stays chosen)
      this.form("new-invite", [], () => {
        const age = h("select", { id: "inv-age" }, INVITE_AGES.map(([secs, text]) => h("option", { value: String(secs ?? ""), selected: secs === 86400 }, text)));
        const max = h("select", { id: "inv-uses" }, INVITE_USES.map((n) => h("option", { value: String(n ?? "") }, n ? `${n} use${n === 1 ? "" : "s"}` : "No limit")));
        return h("form", { class: "inline-form", onsubmit: async (ev) => {
          ev.preventDefault();
          const body = { max_age_s: age.value ? Number(age.value) : null, max_uses: max.value ? Number(max.value) : null };
          await this.act(() => this.call("POST", `/api/servers/${s.id}/invites`, body), "Invite created");
          this.render();
        } },
          h("span", { class: "field" }, h("label", { for: "inv-age" }, "Expire after"), age),
          h("span", { class: "field" }, h("label", { for: "inv-uses" }, "Max uses"), max),
          h("button", { class: "btn btn-primary", type: "submit" }, "Create invite"));
      }),
      h("ul", { class: "settings-list" }, list.map((i) => h("li", { "data-key": i.code },
        h("code", null, i.code), h("span", { class: "muted" }, ` ${uses(i)} · ${i.expires_at ? `expires ${fmtFull(i.expires_at)}` : "never expires"}`),
        h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Revoke ${i.code}`, onclick: async () => { await this.act(() => this.call("DELETE", `/api/servers/${s.id}/invites/${i.code}`), "Invite revoked"); this.render(); } }, "Revoke"),
      ))),
    );
  }

  async bans() {
    const s = this.s;
    const list = (await this.act(() => this.call("GET", `/api/servers/${s.id}/bans?limit=1000`))) || [];
    if (this.tab !== "bans") return;
    this.draw(
      h("h3", null, "Bans"),
      list.length ? h("ul", { class: "settings-list" }, list.map((b) => h("li", { "data-key": b.user.id },
        h("strong", null, displayName(b.user)), b.reason ? h("span", { class: "muted" }, ` — ${b.reason}`) : null,
        h("button", { class: "btn btn-small", type: "button", onclick: async () => { await this.act(() => this.call("DELETE", `/api/servers/${s.id}/bans/${b.user.id}`), "Unbanned"); this.render(); } }, "Unban"),
      ))) : h("p", { class: "muted" }, "Nobody is banned."),
    );
  }

  // The newest 100 entries, and "Load more" for each older page while there are more.
  // Each says whom or what it is about: a member (by name, asked for if the page has
  // not met them: someone banned, say), a role, a channel (as it was named when it went,
  // for one deleted since), an invite's code.
  async audit() {
    const s = this.s;
    const store = this.app.store;
    const list = h("ol", { class: "settings-list audit" });
    const empty = h("p", { class: "muted", hidden: true }, "Nothing yet.");
    const more = h("button", { class: "btn btn-small", type: "button", hidden: true }, "Load more");
    let last = null;
    const roleName = (id, was) => s.roles.find((r) => r.id === id)?.name || was || "a deleted role";
    const channelName = (id, was) => {
      const ch = store.channels.get(id);
      return ch ? `#${ch.name}` : was ? `#${was} (deleted)` : "a deleted channel";
    };
    const about = (e) => {
      const c = e.changes || {};
      if (e.target_type === "user") return [displayName(store.user(e.target_id)), c.role_id ? roleName(c.role_id) : null].filter(Boolean).join(" · ");
      if (e.target_type === "role") return roleName(e.target_id, c.name);
      if (e.target_type === "channel") {
        const target = c.kind === "role" && c.id ? roleName(c.id) : c.kind === "member" && c.id ? displayName(store.user(c.id)) : null;
        return [channelName(e.target_id, c.name), target].filter(Boolean).join(" · ");
      }
      if (e.target_type === "invite") return c.code || null;
      // (a moderator's deletion: whose message, and where)
      if (e.target_type === "message") return [c.author_id ? displayName(store.user(c.author_id)) : null, c.channel_id ? channelName(c.channel_id) : null].filter(Boolean).join(" · ") || null;
      return null;
    };
    // An update's changed fields, old -> new (`diff`; an entry written before old values
    // were kept has none, and shows only what it is about). Ids are shown as names.
    const shownValue = (key, v, e) => {
      if (v === null || v === undefined || v === "") return "(none)";
      if (Array.isArray(v)) return v.map((x) => shownValue(key, x, e)).join(", ") || "(none)";
      if (key === "role_ids") return roleName(v);
      if (key === "owner_id") return displayName(store.user(v));
      if (key === "parent_id" || key === "channel_id") return channelName(v);
      return String(v);
    };
    const fieldName = (key, e) => {
      if (e.action === "channel.reordered") return `${channelName(key)} position`;
      if (e.action === "role.reordered") return `${roleName(key)} position`;
      return key;
    };
    const diffList = (e) => {
      if (!Array.isArray(e.diff) || !e.diff.length) return null;
      return h("ul", { class: "audit-diff muted" }, ...e.diff.map((d) => h("li", null,
        h("code", null, fieldName(d.key, e)), ": ",
        h("span", { class: "audit-old" }, shownValue(d.key, d.old_value, e)), " → ",
        h("span", { class: "audit-new" }, shownValue(d.key, d.new_value, e)),
      )));
    };
    const unknownUsers = async (entries) => {
      const ids = new Set();
      for (const e of entries) {
        ids.add(e.actor_id);
        if (e.target_type === "user") ids.add(e.target_id);
        if (e.changes && e.changes.kind === "member" && e.changes.id) ids.add(e.changes.id);
        if (e.target_type === "message" && e.changes && e.changes.author_id) ids.add(e.changes.author_id);
        for (const d of e.diff || []) if (d.key === "owner_id") { ids.add(d.old_value); ids.add(d.new_value); }
      }
      const want = [...ids].filter((id) => id && !store.users.has(id));
      for (let i = 0; i < want.length; i += 100) {
        const users = await this.call("GET", `/api/users?ids=${want.slice(i, i + 100).join(",")}`).catch(() => []);
        for (const u of users) store.remember(u);
      }
    };
    const load = async () => {
      if (isHeld(more)) return false;
      hold(more, true);
      // Entries about channels one cannot see are left out of a page, which may then be
      // short, or empty, with more after it: the next starts where its Link says, and
      // an empty one is read past (a few at most per click) to show something.
      const pages = [];
      do {
        const path = `/api/servers/${s.id}/audit-log?limit=100${last ? `&before=${last}` : ""}`;
        const got = await this.act(() => this.app.session.call("GET", path, null, { raw: true }));
        if (!got) break;
        pages.push(got);
        const next = /[?&]before=(\d+)/.exec(got.headers.get("Link") || "");
        if (next) last = next[1];
      } while (pages.length < 10 && !pages.some((p) => p.data.length) && pages[pages.length - 1].headers.get("X-Has-More") === "true");
      const page = pages[pages.length - 1];
      const shown = pages.flatMap((p) => p.data);
      if (page) await unknownUsers(shown);
      hold(more, false);
      if (!page || this.tab !== "audit") return false;
      list.append(...shown.map((e) => {
        const target = about(e);
        return h("li", null,
          h("strong", null, nameEl(displayName(store.user(e.actor_id)))), " ", h("code", null, e.action), target ? h("span", { class: "audit-target" }, " → ", nameEl(target)) : null, e.reason ? h("span", { class: "muted" }, ` — ${e.reason}`) : null,
          h("time", { class: "muted", datetime: e.created_at }, ` ${fmtFull(e.created_at)}`),
          diffList(e),
        );
      }));
      more.hidden = page.headers.get("X-Has-More") !== "true";
      empty.hidden = list.children.length > 0;
      return true;
    };
    more.addEventListener("click", load);
    if (await load()) replace(this.panel, h("h3", null, "Audit log"), list, empty, more);
  }
}

// Slowmode's choices (seconds; the API takes 0-21600), and an invite's.
// How far back a ban deletes the member's messages (the API's delete_message_seconds;
// Discord offers the same choices).
const BAN_DELETES = [[0, "Don't delete any"], [3600, "Previous hour"], [21600, "Previous 6 hours"], [43200, "Previous 12 hours"], [86400, "Previous 24 hours"], [259200, "Previous 3 days"], [604800, "Previous 7 days"]];

// Ban `user`? Resolves to how many seconds of their messages to delete, or null (cancelled).
async function banDialog(user) {
  const pick = h("select", { id: "ban-deletes" }, BAN_DELETES.map(([v, text]) => h("option", { value: String(v) }, text)));
  const fields = [h("label", { for: "ban-deletes" }, "Delete their messages from"), pick];
  return (await confirmDialog("Ban", `Ban ${displayName(user)}?`, "Ban", fields)) ? Number(pick.value) : null;
}

const SLOWMODE = [0, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];
const INVITE_AGES = [[1800, "30 minutes"], [3600, "1 hour"], [21600, "6 hours"], [43200, "12 hours"], [86400, "1 day"], [604800, "7 days"], [2592000, "30 days"], [null, "Never"]];
const INVITE_USES = [null, 1, 5, 10, 25, 50, 100];

// What deleting `c` does, said before it is done. A category's channels stay, and
// those that follow it keep a copy of its overrides: nobody's permissions there change.
function deleteQuestion(server, c) {
  if (c.kind !== "category") return `Delete ${c.name}${c.kind === "text" ? " and its messages" : ""}?`;
  const following = server.channels.filter((x) => x.parent_id === c.id && x.permissions_synced);
  if (!c.overrides.length || !following.length) return `Delete the category ${c.name}? Its channels stay, without a category.`;
  return `Delete the category ${c.name}? Its channels stay, without a category, and ${following.map((x) => x.name).join(", ")} will keep a copy of its permission overrides as ${following.length === 1 ? "its" : "their"} own: whoever ${following.length === 1 ? "it keeps" : "they keep"} out stays out.`;
}

function upsert(server, role) {
  server.roles = [...server.roles.filter((r) => r.id !== role.id), role];
}
