// The left side: the server rail, then the channel list (categories, unread badges,
// mention counts, who is in each voice channel) or the direct messages, and the user
// panel with the voice controls.

import { h, replace, avatar, displayName } from "../dom.js";
import { P, has, channelPermissions, managesChannels, serverPermissions, webhookChannels } from "../perms.js";

export function sortedChannels(server) {
  const byPos = (a, b) => a.position - b.position || (a.id < b.id ? -1 : 1);
  const visibleCats = new Set(server.channels.filter((c) => c.kind === "category").map((c) => c.id));
  const loose = server.channels.filter((c) => c.kind !== "category" && !visibleCats.has(c.parent_id));
  const groups = [{ category: null, channels: loose.sort((a, b) => (a.kind === b.kind ? byPos(a, b) : a.kind === "text" ? -1 : 1)) }];
  for (const cat of server.channels.filter((c) => c.kind === "category").sort(byPos)) {
    const inside = server.channels.filter((c) => c.parent_id === cat.id && c.kind !== "category");
    groups.push({ category: cat, channels: inside.sort((a, b) => (a.kind === b.kind ? byPos(a, b) : a.kind === "text" ? -1 : 1)) });
  }
  return groups;
}

// A channel counts its mentions; a conversation, where everything is for you, its unread.
function badge(read, what = "mention_count") {
  const count = read ? read[what] : 0;
  if (!count) return null;
  const n = count >= 100 ? "99+" : String(count);
  const noun = what === "unread" ? "unread message" : "mention";
  return h("span", { class: "badge", "aria-label": `${n} ${noun}${count === 1 ? "" : "s"}` }, n);
}

// A muted channel, conversation or server: drawn dimmed, never bold for unread (its
// mentions still show their badge).
function mutedMark() {
  return h("span", { class: "muted-mark", role: "img", "aria-label": "muted", title: "Muted" }, "🔕");
}

function statusDot(store, userId) {
  const p = store.presences.get(userId);
  const status = p ? p.status : "offline";
  return h("span", { class: `status-dot status-${status === "invisible" ? "offline" : status}`, title: status, "aria-label": status, role: "img" });
}

export function renderRail(app) {
  const { store, route } = app;
  const home = route.view !== "server";
  // What waits in the conversations, seen from a server too (everything there is for
  // you, as a channel's mentions are): the open one's is being read.
  let waiting = 0;
  for (const c of store.conversations.values()) {
    if (route.view === "dm" && route.channelId === c.id) continue;
    const read = store.reads.get(c.id) || {};
    waiting += (store.muted(c.id) ? read.mention_count : read.unread) || 0;
  }
  const items = [
    h(
      "li",
      { class: waiting ? "has-unread" : null },
      h("a", { class: ["rail-item", home && "active"], href: "#/friends", "aria-current": home ? "page" : null, title: "Direct messages" }, h("span", { "aria-hidden": "true" }, "✉"), h("span", { class: "visually-hidden" }, `Direct messages${waiting ? `, ${waiting} unread` : ""}`)),
      waiting ? h("span", { class: "badge rail-badge", "aria-hidden": "true" }, waiting > 99 ? "99+" : String(waiting)) : null,
    ),
    h("li", { class: "rail-sep", "aria-hidden": "true" }),
  ];
  for (const server of store.servers.values()) {
    const active = route.view === "server" && route.serverId === server.id;
    const muted = Boolean(store.muteOf(server.id));
    const unread = server.channels.some((c) => (store.reads.get(c.id) || {}).unread > 0 && !store.muted(c.id, server.id));
    const mentions = server.channels.reduce((n, c) => n + ((store.reads.get(c.id) || {}).mention_count || 0), 0);
    const first = app.firstChannel(server);
    const icon = server.icon_url && /^\/api\/media\//.test(server.icon_url) ? h("img", { src: server.icon_url, alt: "" }) : h("span", { "aria-hidden": "true" }, server.name.split(/\s+/).map((w) => Array.from(w)[0]).join("").slice(0, 3));
    items.push(
      h(
        "li",
        { class: [unread && "has-unread", muted && "is-muted"] },
        h(
          "a",
          { class: ["rail-item", active && "active"], href: first ? `#/s/${server.id}/${first.id}` : `#/s/${server.id}`, "aria-current": active ? "page" : null, title: server.name },
          icon,
          h("span", { class: "visually-hidden" }, `${server.name}${muted ? ", muted" : ""}${mentions ? `, ${mentions} mention${mentions === 1 ? "" : "s"}` : unread ? ", unread messages" : ""}`),
        ),
        mentions ? h("span", { class: "badge rail-badge", "aria-hidden": "true" }, mentions > 99 ? "99+" : String(mentions)) : null,
      ),
    );
  }
  items.push(h("li", null, h("button", { class: "rail-item rail-add", type: "button", "aria-label": "Add a server", title: "Create or join a server", onclick: () => app.addServerDialog() }, h("span", { "aria-hidden": "true" }, "+"))));
  return h("ul", { class: "rail-list" }, items);
}

function voiceMembers(app, channelId) {
  const { store } = app;
  const inside = [...store.voice.values()].filter((v) => v.channel_id === channelId);
  if (!inside.length) return null;
  return h(
    "ul",
    { class: "voice-members", "aria-label": "Connected" },
    inside.map((v) => {
      const u = store.user(v.user_id);
      const speaking = app.voice && app.voice.speaking.has(v.user_id);
      return h(
        "li",
        { class: ["voice-member", speaking && "speaking"], dataset: { userId: v.user_id } },
        avatar(u, "xs"),
        h("span", { class: "voice-name" }, displayName(u)),
        v.self_mute || v.server_mute || v.suppress ? h("span", { class: "voice-flag", title: "Muted", "aria-label": "muted" }, "🔇") : null,
        v.self_deaf || v.server_deaf ? h("span", { class: "voice-flag", title: "Deafened", "aria-label": "deafened" }, "🙉") : null,
      );
    }),
  );
}

function channelItem(app, server, ch) {
  const { store, route } = app;
  const read = store.reads.get(ch.id);
  const muted = store.muted(ch.id, server.id);
  const unread = read && read.unread > 0 && !muted;
  const active = route.channelId === ch.id;
  if (ch.kind === "voice") {
    const here = app.voice && app.voice.channelId === ch.id;
    const can = has(channelPermissions(server, ch), P.CONNECT);
    return h(
      "li",
      { class: "channel-li" },
      h(
        "button",
        { class: ["channel voice-channel", here && "active"], type: "button", disabled: !can, "aria-label": `${ch.name} (voice channel)${here ? ", connected" : ""}`, onclick: () => app.joinVoice(ch.id) },
        h("span", { class: "channel-icon", "aria-hidden": "true" }, "🔊"),
        h("span", { class: "channel-name" }, ch.name),
      ),
      voiceMembers(app, ch.id),
    );
  }
  return h(
    "li",
    { class: "channel-li" },
    h(
      "a",
      { class: ["channel", unread && "unread", muted && "muted-channel", active && "active"], href: `#/s/${server.id}/${ch.id}`, "aria-current": active ? "page" : null, "aria-label": `${ch.name}${muted ? ", muted" : ""}${unread ? ", unread" : ""}${read && read.mention_count ? `, ${read.mention_count} mention${read.mention_count === 1 ? "" : "s"}` : ""}` },
      h("span", { class: "channel-icon", "aria-hidden": "true" }, "#"),
      h("span", { class: "channel-name" }, ch.name),
      muted ? mutedMark() : null,
      badge(read),
    ),
  );
}

export function renderServerSidebar(app, server) {
  const perms = serverPermissions(server);
  const canSettings = [P.MANAGE_SERVER, P.MANAGE_CHANNELS, P.MANAGE_ROLES, P.BAN_MEMBERS, P.VIEW_AUDIT_LOG, P.KICK_MEMBERS, P.MODERATE_MEMBERS].some((b) => has(perms, b)) || managesChannels(server) || webhookChannels(server).length > 0;
  const head = h(
    "header",
    { class: "sidebar-head" },
    h("h1", { class: "sidebar-title" }, server.name),
    h(
      "div",
      { class: "head-actions" },
      has(perms, P.CREATE_INVITE) ? h("button", { class: "icon-btn", type: "button", "aria-label": "Invite people", title: "Invite people", onclick: () => app.inviteDialog(server) }, "👤+") : null,
      canSettings ? h("button", { class: "icon-btn", type: "button", "aria-label": "Server settings", title: "Server settings", onclick: () => app.openSettings(server) }, "⚙") : null,
      app.muteButton("server", server.id, "server"),
      app.notifyButton("server", server.id, "server"),
      server.owner_id !== app.store.me.id ? h("button", { class: "icon-btn", type: "button", "aria-label": "Leave server", title: "Leave server", onclick: () => app.leaveServer(server) }, "⎋") : null,
    ),
  );
  const groups = sortedChannels(server).map(({ category, channels }) =>
    category
      ? h("li", { class: "category" }, h("h2", { class: "category-name", id: `cat-${category.id}` }, category.name), h("ul", { "aria-labelledby": `cat-${category.id}` }, channels.map((c) => channelItem(app, server, c))))
      : channels.map((c) => channelItem(app, server, c)),
  );
  return [head, h("ul", { class: "channel-list" }, groups)];
}

export function convTitle(store, conv) {
  if (conv.name) return conv.name;
  const others = conv.participants.filter((p) => p.id !== store.me.id);
  return others.map(displayName).join(", ") || "Just you";
}

export function renderHomeSidebar(app) {
  const { store, route } = app;
  const convs = [...store.conversations.values()].sort((a, b) => {
    const at = a.last_message ? a.last_message.created_at : a.created_at;
    const bt = b.last_message ? b.last_message.created_at : b.created_at;
    return at < bt ? 1 : -1;
  });
  const pending = store.incoming.size;
  return [
    h("header", { class: "sidebar-head" }, h("h1", { class: "sidebar-title" }, "Direct messages")),
    h(
      "ul",
      { class: "channel-list" },
      h(
        "li",
        { class: "channel-li" },
        h("a", { class: ["channel", route.view === "friends" && "active"], href: "#/friends", "aria-current": route.view === "friends" ? "page" : null }, h("span", { class: "channel-icon", "aria-hidden": "true" }, "👥"), h("span", { class: "channel-name" }, "Friends"), pending ? h("span", { class: "badge", "aria-label": `${pending} pending requests` }, String(pending)) : null),
      ),
      h("li", { class: "category" }, h("div", { class: "category-head" }, h("h2", { class: "category-name", id: "dm-heading" }, "Direct messages"), h("button", { class: "icon-btn", type: "button", "aria-label": "Create a group DM", title: "Create a group DM", onclick: () => app.createGroup() }, "+")), h(
        "ul",
        { "aria-labelledby": "dm-heading" },
        convs.map((c) => {
          const read = store.reads.get(c.id);
          const muted = store.muted(c.id);
          const active = route.channelId === c.id;
          const other = c.kind === "direct" ? c.participants.find((p) => p.id !== store.me.id) : null;
          return h(
            "li",
            { class: "channel-li" },
            h(
              "a",
              { class: ["channel dm", read && read.unread && !muted && "unread", muted && "muted-channel", active && "active"], href: `#/dm/${c.id}`, "aria-current": active ? "page" : null },
              h("span", { class: "dm-avatar" }, other ? avatar(other, "sm") : h("span", { class: "avatar avatar-sm group-avatar", "aria-hidden": "true" }, "👥"), other ? statusDot(store, other.id) : null),
              h("span", { class: "channel-name" }, convTitle(store, c)),
              muted ? mutedMark() : null,
              active ? null : badge(read, muted ? "mention_count" : "unread"),
            ),
            voiceMembers(app, c.id),
          );
        }),
      )),
    ),
  ];
}

export function renderUserPanel(app) {
  const { store } = app;
  const me = store.me;
  const v = app.voice;
  const voiceBox = v && v.channelId
    ? h(
        "div",
        { class: "voice-panel", role: "region", "aria-label": "Voice connection" },
        h("div", { class: "voice-status" }, h("strong", { class: "voice-ok" }, "Voice connected"), h("span", null, app.channelTitle(v.channelId))),
        h("button", { class: "icon-btn", type: "button", "aria-label": "Disconnect from voice", title: "Disconnect", onclick: () => v.leave() }, "☎"),
      )
    : null;
  return [
    voiceBox,
    h(
      "div",
      { class: "user-panel" },
      h("span", { class: "dm-avatar" }, avatar(me, "sm"), statusDot(store, me.id)),
      // Your name opens your settings (status, profile, password, two-factor, sessions).
      h("button", { class: "user-names", type: "button", title: "User settings", onclick: () => app.openAccount() }, h("strong", null, displayName(me)), h("span", { class: "muted" }, `@${me.username}`), h("span", { class: "visually-hidden" }, "User settings")),
      h("button", { class: ["icon-btn", v && v.muted && "on"], type: "button", "aria-pressed": v && v.muted ? "true" : "false", "aria-label": "Mute", title: "Mute", onclick: () => app.voiceToggle("mute") }, v && v.muted ? "🔇" : "🎙"),
      h("button", { class: ["icon-btn", v && v.deafened && "on"], type: "button", "aria-pressed": v && v.deafened ? "true" : "false", "aria-label": "Deafen", title: "Deafen", onclick: () => app.voiceToggle("deafen") }, v && v.deafened ? "🙉" : "🎧"),
      h("button", { class: "icon-btn", type: "button", "aria-label": "Log out", title: "Log out", onclick: () => app.logout() }, "🚪"),
    ),
  ];
}
