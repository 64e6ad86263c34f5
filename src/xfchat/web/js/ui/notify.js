// Notification settings (which new messages of a channel, conversation or server notify
// you: all, only @mentions, nothing; for a server, whether @everyone and @here count)
// and the desktop notifications they decide, through the browser's Notification API.
// Permission is asked for only from the "Enable desktop notifications" button (a user
// gesture), never on load. A notification's title and body are plain text: the API never
// parses markup, and nothing here builds any.

import { h, toast, describe, dialog } from "../dom.js";
import { mentionText } from "./message.js";

const BODY_MAX = 200; // characters of a message shown in its notification
// A message older than this (by its created_at against this device's clock) notifies of
// nothing: a connection resumed after a sleep or an outage replays what it missed, and
// those are shown as unread, not as a burst of desktop notifications (as Discord's).
const FRESH_MS = 2 * 60 * 1000;
export const LEVELS = [
  ["all", "All messages"],
  ["mentions", "Only @mentions"],
  ["nothing", "Nothing"],
];

const LEVEL_NAMES = new Map(LEVELS);

// A server's default level (its `default_notifications`, chosen by its managers): what
// its channels notify of where you set nothing, of them or of it.
export function serverDefault(server) {
  return server && server.default_notifications === "mentions" ? "mentions" : "all";
}

// Your level for a server: your setting of it, else its default.
function serverLevel(store, server) {
  const ofServer = store.notifySettings.get(server.id);
  return ofServer ? ofServer.level : serverDefault(server);
}

// The level in force for a channel and whether @everyone / @here count: its own
// setting, else yours of its server, else the server's default (a conversation: its
// own, else `all`). (README, "Notification settings")
export function effectiveLevel(store, channelId) {
  const server = store.serverOf(channelId);
  const own = store.notifySettings.get(channelId);
  const ofServer = server ? store.notifySettings.get(server.id) : null;
  return {
    level: own ? own.level : server ? serverLevel(store, server) : "all",
    suppressEveryone: Boolean(ofServer && ofServer.suppress_everyone),
  };
}

function mentionsMe(store, m, suppressEveryone) {
  if (m.mentions.includes(store.me.id)) return true;
  if (m.mention_everyone && !suppressEveryone) return true;
  const server = store.serverOf(m.channel_id);
  return Boolean(server && server.member && m.mention_roles.some((r) => server.member.role_ids.includes(r)));
}

// Whether a new message `m` is one to notify of now.
export function wanted(app, m) {
  const store = app.store;
  const author = m.author ? m.author.id : m.author_id;
  if (!author || author === store.me.id || store.blocks.has(author)) return false;
  if (!(Date.now() - Date.parse(m.created_at) <= FRESH_MS)) return false;
  const server = store.serverOf(m.channel_id);
  const { level, suppressEveryone } = effectiveLevel(store, m.channel_id);
  if (level === "nothing") return false;
  // A muted channel (or server) notifies of its mentions of you alone, as Discord's
  // mute does and as its mention badge still shows.
  const muted = store.muted(m.channel_id, server ? server.id : null);
  if ((muted || level === "mentions") && !mentionsMe(store, m, suppressEveryone)) return false;
  return document.visibilityState === "hidden" || app.route.channelId !== m.channel_id;
}

function supported() {
  return typeof window.Notification === "function";
}

// A desktop notification of a new message, when allowed and wanted.
export function notifyMessage(app, m) {
  if (!supported() || Notification.permission !== "granted" || !wanted(app, m)) return;
  const store = app.store;
  const server = store.serverOf(m.channel_id);
  // Mentions as the names the channel shows (`<@id>` is for the API, not people), then cut.
  const ctx = { store, server, name: (id) => store.nameIn(server, id) };
  const text = m.content ? mentionText(String(m.content), ctx) : m.attachments && m.attachments.length ? "(a file)" : "";
  // (cut between characters, not within one: an emoji is two UTF-16 units, and half of
  // one shows as a replacement mark)
  const chars = Array.from(text);
  const body = chars.length > BODY_MAX ? `${chars.slice(0, BODY_MAX - 1).join("")}…` : text;
  // (the author as the channel names them: their nickname in a server; a webhook's, which
  // may post under any name, a member's too, marked as the channel's BOT tag marks it)
  const bot = m.author && m.author.bot ? " [BOT]" : "";
  const title = `${store.nameIn(server, m.author || m.author_id)}${bot} (${app.channelTitle(m.channel_id)})`;
  // One notification a channel on screen, the newest replacing the one before (still
  // alerting: renotify), so a flood of messages does not stack one a message.
  const note = new Notification(title, { body, tag: `xfchat-${m.channel_id}`, renotify: true });
  note.addEventListener("click", () => {
    window.focus();
    location.hash = app.hashOf(server ? { view: "server", serverId: server.id, channelId: m.channel_id } : { view: "dm", channelId: m.channel_id });
    note.close();
  });
}

// The head's (or the server's) button that opens the settings.
export function notifyButton(app, kind, id, noun) {
  const label = `${noun[0].toUpperCase()}${noun.slice(1)} notifications`;
  return h("button", { class: "icon-btn", type: "button", "aria-label": label, title: label, onclick: () => notifyDialog(app, kind, id, noun) }, "🛎");
}

function permissionPart() {
  if (!supported()) return h("p", { class: "muted" }, "This browser shows no desktop notifications.");
  if (Notification.permission === "granted") return h("p", { class: "muted" }, "Desktop notifications are on.");
  if (Notification.permission === "denied") return h("p", { class: "muted" }, "Desktop notifications are blocked in this browser's site settings.");
  const status = h("p", { class: "muted", role: "status" });
  const button = h("button", { class: "btn", type: "button", onclick: async () => {
    const answer = await Notification.requestPermission();
    status.textContent = answer === "granted" ? "Desktop notifications are on." : "Desktop notifications were not allowed.";
    if (answer === "granted") button.remove();
  } }, "Enable desktop notifications");
  return h("div", null, button, status);
}

export function notifyDialog(app, kind, id, noun) {
  const store = app.store;
  const name = `notify-${Math.random().toString(36).slice(2)}`;
  // What a reset falls back to: a server's default; a channel's, your server setting or
  // else its server's default; a conversation's, all messages.
  const fallback = () => {
    const server = kind === "server" ? store.servers.get(id) : store.serverOf(id);
    if (!server) return LEVEL_NAMES.get("all");
    if (kind === "server") return LEVEL_NAMES.get(serverDefault(server));
    const level = LEVEL_NAMES.get(serverLevel(store, server));
    return store.notifySettings.get(server.id) ? `the server's setting, ${level}` : level;
  };
  const save = async () => {
    const level = d.body.querySelector(`input[name="${name}"]:checked`)?.value;
    const suppress = d.body.querySelector(".notify-suppress");
    const body = { level };
    if (suppress) body.suppress_everyone = suppress.checked;
    try {
      store.apply("notification_settings.updated", await app.session.call("PUT", `/api/users/@me/notification-settings/${kind}/${id}`, body));
    } catch (err) {
      toast(describe(err));
    }
  };
  const reset = async () => {
    try {
      await app.session.call("DELETE", `/api/users/@me/notification-settings/${kind}/${id}`);
      store.apply("notification_settings.removed", { kind, id });
      d.close();
    } catch (err) {
      toast(describe(err));
    }
  };
  // What the setting is now (this session's change, or another's: a save sends both the
  // level and the switch, so each must be the one in force, not the one at opening).
  const shown = () => {
    const held = store.notifySettings.get(id);
    const server = kind === "server" ? store.servers.get(id) : null;
    const level = held ? held.level : kind === "channel" ? effectiveLevel(store, id).level : serverDefault(server);
    return { level, suppress: Boolean(held && held.suppress_everyone) };
  };
  const { level: current, suppress: suppressed } = shown();
  const legend = h("legend", null, `Notify me of (default: ${fallback()})`);
  const choices = h(
    "fieldset",
    { class: "notify-levels" },
    legend,
    LEVELS.map(([value, text]) => h("label", null, h("input", { type: "radio", name, value, checked: value === current, onchange: save }), ` ${text}`)),
  );
  const suppress = kind === "server" ? h("label", null, h("input", { type: "checkbox", class: "notify-suppress", checked: suppressed, onchange: save }), " Suppress @everyone and @here") : null;
  const sync = () => {
    const now = shown();
    legend.textContent = `Notify me of (default: ${fallback()})`;
    for (const input of choices.querySelectorAll("input")) input.checked = input.value === now.level;
    if (suppress) suppress.querySelector("input").checked = now.suppress;
  };
  const off = [store.on("notify", sync), store.on("all", sync), store.on("servers", sync)];
  const d = dialog(`Notifications for this ${noun}`, [choices, suppress, permissionPart(), h("button", { class: "btn", type: "button", onclick: reset }, "Reset to default")], { onClose: () => off.forEach((stop) => stop()) });
  d.body.querySelector("input:checked")?.focus();
}
