// Server settings' Webhooks tab (Discord's Integrations > Webhooks): the webhooks of the
// channels you manage webhooks in (GET /api/servers/{id}/webhooks), by channel; make
// one, rename it, move it, delete it, regenerate its URL. A webhook's URL holds its
// token, which the API gives once (made, or regenerated) and never again: it is shown
// then, until dismissed or the tab is left, and sent nowhere else. No event announces a
// webhook (its token must never be broadcast): the tab reads the list anew after each
// change it makes, and on each redraw.

import { h, toast, confirmDialog } from "../dom.js";
import { webhookChannels } from "../perms.js";
import { sortedChannels } from "./sidebar.js";

// The text channels you may manage webhooks in, in the sidebar's order.
function manageable(server) {
  const ok = new Set(webhookChannels(server).map((c) => c.id));
  return sortedChannels(server).flatMap(({ channels }) => channels).filter((c) => ok.has(c.id));
}

export async function webhooksTab(st) {
  const s = st.s;
  const list = (await st.act(() => st.call("GET", `/api/servers/${s.id}/webhooks`))) || [];
  if (st.tab !== "webhooks") return;
  const channels = manageable(s);
  const order = s.channels.filter((c) => c.kind === "text");
  const place = (id) => {
    const at = channels.findIndex((c) => c.id === id);
    return at < 0 ? channels.length + order.findIndex((c) => c.id === id) : at;
  };
  const byChannel = new Map();
  for (const w of [...list].sort((a, b) => place(a.channel_id) - place(b.channel_id))) {
    if (!byChannel.has(w.channel_id)) byChannel.set(w.channel_id, []);
    byChannel.get(w.channel_id).push(w);
  }
  const nameOf = (id) => {
    const c = s.channels.find((x) => x.id === id);
    return c ? `#${c.name}` : "a channel you cannot see";
  };
  // (a URL shown is for a webhook still there: one deleted meanwhile takes it along)
  if (st.revealed && !list.some((w) => w.id === st.revealed.id)) st.revealed = null;
  st.draw(
    h("h3", null, "Webhooks"),
    h("p", { class: "muted" }, "A webhook posts messages in its channel, as itself, from anything that has its URL: no account, no login."),
    st.revealed ? revealed(st, nameOf) : null,
    channels.length ? createForm(st, channels) : null,
    list.length
      ? [...byChannel].map(([channelId, hooks]) => h("section", { "data-key": `ch:${channelId}`, "aria-label": `Webhooks of ${nameOf(channelId)}` },
          h("h4", null, nameOf(channelId)),
          h("ul", { class: "settings-list" }, hooks.map((w) => row(st, w, channels, nameOf))),
        ))
      : h("p", { class: "muted" }, "No webhooks yet."),
  );
  if (st.focusUrl) {
    st.focusUrl = false;
    st.panel.querySelector("#wh-url")?.focus();
  }
}

function createForm(st, channels) {
  const s = st.s;
  return st.form("new-webhook", channels.map((c) => [c.id, c.name]), () => {
    const name = h("input", { id: "wh-new-name", maxlength: 80, required: true, placeholder: "Captain Hook" });
    const pick = h("select", { id: "wh-new-channel" }, channels.map((c) => h("option", { value: c.id }, `#${c.name}`)));
    return h("form", { class: "inline-form", "aria-label": "New webhook", onsubmit: async (ev) => {
      ev.preventDefault();
      const made = await st.act(() => st.call("POST", `/api/channels/${pick.value}/webhooks`, { name: name.value }), "Webhook created");
      if (!made) return;
      st.forms.delete("new-webhook"); // (an empty form for the next one)
      show(st, made, "created");
    } },
      h("span", { class: "field" }, h("label", { for: "wh-new-name" }, "Name"), name),
      h("span", { class: "field" }, h("label", { for: "wh-new-channel" }, "Channel"), pick),
      h("button", { class: "btn btn-primary", type: "submit" }, "Create webhook"));
  });
}

// A URL the API just gave (`made`: the webhook with its token and url), shown once.
function show(st, made, how) {
  st.revealed = { id: made.id, name: made.name, channel_id: made.channel_id, url: made.url, how };
  st.focusUrl = true;
  st.render();
}

// The URL shown this once, read-only, with Copy URL; what it is for and that it will
// not be shown again said beside it. The focus goes to it (see show), selected: Ctrl+C
// copies it.
function revealed(st, nameOf) {
  const r = st.revealed;
  const field = h("input", { id: "wh-url", class: "webhook-url", readonly: true, value: r.url, spellcheck: "false", "aria-describedby": "wh-url-note", onfocus: (ev) => ev.target.select() });
  const copy = async () => {
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(r.url);
      toast("URL copied", "info");
    } catch {
      // (no clipboard for this page, or refused: the URL selected, for Ctrl+C)
      const shown = st.panel.querySelector("#wh-url");
      shown?.focus();
      shown?.select();
      toast("The URL is selected: press Ctrl+C (⌘C on a Mac) to copy it.", "info");
    }
  };
  return h("section", { class: "editor-box webhook-reveal", "data-key": `url:${r.id}:${r.url}`, "aria-labelledby": "wh-url-head" },
    h("h4", { id: "wh-url-head" }, r.how === "created" ? `${r.name} was created` : `New URL for ${r.name}`),
    h("label", { for: "wh-url" }, `Webhook URL of ${r.name}`),
    h("div", { class: "inline-form" }, field, h("button", { class: "btn btn-primary", type: "button", onclick: copy }, "Copy URL")),
    h("p", { id: "wh-url-note" }, `Copy it now: it will not be shown again. Anyone with this URL can post in ${nameOf(r.channel_id)} as ${r.name}, so keep it secret (Regenerate URL gives a new one and stops this one).`),
    h("div", { class: "row-end" }, h("button", { class: "btn", type: "button", onclick: () => { st.revealed = null; st.render(); st.panel.focus({ preventScroll: true }); } }, "Done")),
  );
}

// One webhook: its name and channel (changed together, only what changed is sent),
// Regenerate URL and Delete.
function row(st, w, channels, nameOf) {
  const options = channels.some((c) => c.id === w.channel_id) ? channels : [{ id: w.channel_id, name: nameOf(w.channel_id).replace(/^#/, "") }, ...channels];
  const key = `webhook:${w.id}`;
  const editor = st.form(key, [w.name, w.channel_id, options.map((c) => [c.id, c.name])], () => {
    const name = h("input", { id: `wh-name-${w.id}`, value: w.name, maxlength: 80, required: true });
    const pick = h("select", { id: `wh-channel-${w.id}` }, options.map((c) => h("option", { value: c.id, selected: c.id === w.channel_id }, `#${c.name}`)));
    return h("form", { class: "inline-form", "aria-label": `Edit ${w.name}`, onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {};
      if (name.value !== w.name) body.name = name.value;
      if (pick.value !== w.channel_id) body.channel_id = pick.value;
      if (await st.save(key, () => (Object.keys(body).length ? st.call("PATCH", `/api/webhooks/${w.id}`, body) : null), "Webhook saved")) {
        st.forms.delete(key);
        st.render();
      }
    } },
      h("span", { class: "field" }, h("label", { for: `wh-name-${w.id}` }, "Name"), name),
      h("span", { class: "field" }, h("label", { for: `wh-channel-${w.id}` }, "Channel"), pick),
      h("button", { class: "btn btn-primary", type: "submit" }, "Save"));
  });
  return h("li", { "data-key": w.id, "aria-label": w.name },
    h("strong", null, w.name),
    h("span", { class: "muted" }, ` created ${new Date(w.created_at).toLocaleDateString()}`),
    h("div", { class: "row-actions" },
      h("button", { class: "btn btn-small", type: "button", "aria-label": `Regenerate URL of ${w.name}`, onclick: async () => {
        if (!(await confirmDialog("Regenerate URL", `Give ${w.name} a new URL? The old one stops working at once: whatever posts with it must be given the new one.`, "Regenerate URL"))) return;
        const made = await st.act(() => st.call("POST", `/api/webhooks/${w.id}/token`));
        if (made && st.tab === "webhooks") show(st, made, "regenerated");
      } }, "Regenerate URL"),
      h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Delete ${w.name}`, onclick: async () => {
        if (!(await confirmDialog("Delete webhook", `Delete the webhook ${w.name}? Whatever posts with its URL will be refused. The messages it posted stay.`))) return;
        await st.act(() => st.call("DELETE", `/api/webhooks/${w.id}`), "Webhook deleted");
        st.render();
      } }, "Delete"),
    ),
    h("div", { class: "webhook-edit" }, editor),
  );
}
