// The right side: a server's members grouped by their highest hoisted role (with the
// role's colour), or a conversation's participants.

import { h, replace, morph, avatar, displayName, nameEl, readableColor, toast, describe } from "../dom.js";
import { groupActions, participantExtras } from "./groups.js";

// A server's members, loaded once (asked for by several views at once: one load).
const loading = new Map(); // server id -> promise
export function loadMembers(app, serverId) {
  const { store } = app;
  if (store.members.has(serverId)) return Promise.resolve(store.members.get(serverId));
  if (!loading.has(serverId)) {
    const first = fetchMembers(app, serverId).finally(() => {
      if (loading.get(serverId) === first) loading.delete(serverId);
    });
    loading.set(serverId, first);
  }
  return loading.get(serverId);
}

// A server's members asked for again, whole (after a full ready: what changed meanwhile
// was never told), the list held still shown until the new one replaces it.
export function reloadMembers(app, serverId) {
  const fresh = fetchMembers(app, serverId).finally(() => {
    if (loading.get(serverId) === fresh) loading.delete(serverId);
  });
  loading.set(serverId, fresh);
  return fresh;
}

async function fetchMembers(app, serverId) {
  const { store, session } = app;
  const map = new Map();
  map.complete = false; // (every member loaded: one not in it is no member)
  let after = null;
  for (let i = 0; i < 10; i += 1) {
    const page = await session.call("GET", `/api/servers/${serverId}/members?limit=1000${after ? `&after=${after}` : ""}`);
    for (const m of page) {
      map.set(m.user.id, m);
      store.remember(m.user);
    }
    if (page.length < 1000) {
      map.complete = true;
      break;
    }
    after = page[page.length - 1].user.id;
  }
  await loadPresences(app, serverId);
  store.members.set(serverId, map);
  store.emit(`members:${serverId}`); // (names in messages: nicknames)
  return map;
}

// Who is online in a server: ready's presences cover friends and conversations only
// (asked again after every ready, fresh or resumed: presence is not in the log).
export async function loadPresences(app, serverId) {
  const { store, session } = app;
  const since = store.presenceTick;
  let after = null;
  for (let i = 0; i < 10; i += 1) { // (as the members: 10 pages of 1,000)
    const page = await session.call("GET", `/api/servers/${serverId}/presences?limit=1000${after ? `&after=${after}` : ""}`);
    for (const p of page) store.tellPresence(p.user_id, p, since);
    if (page.length < 1000) break;
    after = page[page.length - 1].user_id;
  }
  store.emit("presence");
}

function statusOf(store, id) {
  const p = store.presences.get(id);
  return p && p.status !== "invisible" ? p.status : "offline";
}

// A member's server mute and deafen, which last until lifted, in voice or not.
function voiceFlags(member) {
  if (!member) return null;
  const flags = [member.mute && ["🔇", "server muted"], member.deaf && ["🎧", "server deafened"]].filter(Boolean);
  return flags.map(([icon, text]) => h("span", { class: "member-flag", title: text }, h("span", { "aria-hidden": "true" }, icon), h("span", { class: "visually-hidden" }, ` (${text})`)));
}

// The custom status, from the presence (none while they are offline or invisible).
export function customStatus(store, id) {
  const p = store.presences.get(id);
  return p && p.status !== "offline" && p.status !== "invisible" && p.status_text ? p.status_text : null;
}

function memberRow(app, user, color, nickname, extras = null, member = null) {
  const status = statusOf(app.store, user.id);
  const text = customStatus(app.store, user.id);
  return h(
    "li",
    { class: ["member", status === "offline" && "member-offline"] },
    h(
      "button",
      { class: "member-btn", type: "button", "data-key": user.id, onclick: () => app.profile(user) },
      h("span", { class: "dm-avatar" }, avatar(user, "sm"), h("span", { class: `status-dot status-${status}`, "aria-hidden": "true" })),
      // (said as "Name (online) custom status")
      h("span", { class: "member-names" }, h("span", { class: "member-name", style: color ? `color:${color}` : null }, nameEl(nickname || displayName(user))), h("span", { class: "visually-hidden" }, ` (${status})`), text ? h("span", { class: "member-status-text" }, ` ${text}`) : null),
      voiceFlags(member),
    ),
    extras,
  );
}

// The member list is redrawn at every presence or role change: in place (morph) when it
// is what the panel shows, so that a click across a redraw still lands; drawn anew over
// anything else the panel held (search results, pins: elements with handlers of their own).
function drawList(container, ...children) {
  const shown = container.firstElementChild && container.firstElementChild.dataset.panel === "members";
  return (shown ? morph : replace)(container, ...children);
}

export function renderServerMembers(app, server, container) {
  const { store } = app;
  const list = store.members.get(server.id);
  if (!list) {
    replace(container, h("p", { class: "muted pad" }, "Loading members…"));
    loadMembers(app, server.id)
      .then(() => app.panel === "members" && app.renderMembers()) // (if still wanted)
      .catch((err) => toast(describe(err)));
    return;
  }
  const hoisted = server.roles.filter((r) => r.hoist && !r.is_default).sort((a, b) => b.position - a.position);
  const groups = new Map(hoisted.map((r) => [r.id, []]));
  const rest = [];
  for (const m of list.values()) {
    const top = hoisted.find((r) => m.role_ids.includes(r.id));
    (top ? groups.get(top.id) : rest).push(m);
  }
  const colored = server.roles.filter((r) => r.color).sort((a, b) => b.position - a.position);
  const colorFor = (m) => {
    const r = colored.find((x) => m.role_ids.includes(x.id));
    return r ? readableColor(r.color) : null;
  };
  const byName = (a, b) => displayName(a.user).localeCompare(displayName(b.user));
  const sections = [];
  for (const r of hoisted) {
    const members = groups.get(r.id);
    if (members.length) sections.push([r.name, members]);
  }
  if (rest.length) sections.push(["Members", rest]);
  drawList(
    container,
    h("h2", { class: "visually-hidden", "data-panel": "members" }, "Members"),
    sections.map(([title, members]) =>
      h(
        "section",
        { class: "member-group" },
        h("h3", { class: "category-name" }, nameEl(title), ` — ${members.length}`),
        h("ul", null, members.sort(byName).map((m) => memberRow(app, m.user, colorFor(m), m.nickname, null, m))),
      ),
    ),
  );
}

export function renderParticipants(app, conv, container) {
  const group = conv.kind === "group";
  drawList(
    container,
    h("h2", { class: "visually-hidden", "data-panel": "members" }, "Members"),
    h(
      "section",
      { class: "member-group" },
      h("h3", { class: "category-name" }, `Members — ${conv.participants.length}`),
      h("ul", null, conv.participants.map((u) => memberRow(app, u, null, null, group ? participantExtras(app, conv, u) : null))),
    ),
    group ? groupActions(app, conv) : null,
  );
}
