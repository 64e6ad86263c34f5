// One message on screen: author, time, text with mentions and links, reply preview,
// reactions, attachments, and its actions. Text is only ever text nodes.

import { h, avatar, displayName, nameEl, isolated, fmtTime, fmtFull, fmtBytes, readableColor, ON_MENTION, toast, describe, dialog } from "../dom.js";

export const COMMON_EMOJI = ["👍", "👎", "😂", "❤️", "🎉", "😮", "😢", "🔥", "👀", "🙌", "✅", "👋", "🤔", "💯", "🚀", "🙏"];

// A user's or role's id in a mention: a real UUID (8-4-4-4-12 hex digits), no other
// 36 characters (36 dashes are a mention of no one, and plain text).
export const UUID = "[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}";
export const USER_MENTION = () => new RegExp(`<@(${UUID})>`, "g");

// A link ends before a space, a quote or angle bracket, and before any control or format
// character (bidi controls among them: one inside would make its text read as another
// address than the one it goes to).
const TOKEN = new RegExp(`<@&?(${UUID})>|@everyone|@here|\\b(https?:\\/\\/[^\\s<>"'\\p{Cc}\\p{Cf}]+[^\\s<>"'.,;:!?)\\]\\p{Cc}\\p{Cf}])`, "gu");

// A link shows the address it goes to, as the browser parsed it (the host in ASCII, an
// international one as punycode), left to right and isolated (dir="ltr" on an inline
// element isolates it): no text or bidi control around it can reorder it.
function link(url) {
  let href;
  try {
    href = new URL(url).href;
  } catch {
    return url;
  }
  return h("a", { href, dir: "ltr", target: "_blank", rel: "noopener noreferrer nofollow" }, href);
}

const roleName = (ctx, id) => {
  const role = ctx.server && ctx.server.roles.find((r) => r.id === id);
  return role ? role.name : "deleted-role";
};

// The content as nodes: mentions as highlighted names, http(s) links as links, the rest
// as text. @everyone and @here ping only when the server said the sender may
// (`everyone`: the message's mention_everyone); else they are plain text.
export function renderContent(text, ctx, everyone) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    const [whole, rawId, url] = match;
    const id = rawId && rawId.toLowerCase();
    if (url) {
      out.push(link(url));
    } else if (whole.startsWith("<@&")) {
      const role = ctx.server && ctx.server.roles.find((r) => r.id === id);
      out.push(h("span", { class: "mention", style: role && role.color ? `color:${readableColor(role.color, ON_MENTION)}` : null }, "@", nameEl(roleName(ctx, id))));
    } else if (whole.startsWith("<@")) {
      const mine = id === ctx.store.me.id;
      out.push(h("span", { class: mine ? "mention mention-me" : "mention" }, "@", nameEl(ctx.name(id))));
    } else if (everyone) {
      out.push(h("span", { class: "mention mention-me" }, whole));
    } else {
      out.push(whole);
    }
    last = match.index + whole.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const MENTION = () => new RegExp(`<@(&?)(${UUID})>`, "g");
const mentioned = (ctx, role, rawId) => (role ? roleName(ctx, rawId.toLowerCase()) : ctx.name(rawId.toLowerCase()));

// The content as plain text, mentions as names (`<@id>` is for the API, not people).
export function mentionText(text, ctx) {
  return text.replace(MENTION(), (whole, role, rawId) => `@${mentioned(ctx, role, rawId)}`);
}

// The same as nodes, each name isolated (nameEl).
function mentionNodes(text, ctx) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(MENTION())) {
    out.push(text.slice(last, match.index), "@", nameEl(mentioned(ctx, match[1], match[2])));
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function roleColor(ctx, userId) {
  if (!ctx.server) return null;
  const members = ctx.store.members.get(ctx.server.id);
  const member = members && members.get(userId);
  const roleIds = member ? member.role_ids : ctx.server.member && ctx.server.member.user.id === userId ? ctx.server.member.role_ids : [];
  const role = ctx.server.roles.filter((r) => roleIds.includes(r.id) && r.color).sort((a, b) => b.position - a.position)[0];
  return role ? readableColor(role.color) : null;
}

function replyPreview(m, ctx) {
  const r = m.reply_to;
  if (!r) return null;
  const label = r.deleted ? "Original message was deleted" : mentionText(r.content, ctx) || "Click to see attachment";
  const shown = r.deleted || !r.content ? label : mentionNodes(r.content, ctx);
  return h(
    "button",
    { class: "reply-preview", type: "button", onclick: () => ctx.jump(r.id), "aria-label": `Replying to ${ctx.name(r.author)}: ${label}` },
    h("span", { class: "reply-arrow", "aria-hidden": "true" }, "↱"),
    r.author ? h("strong", null, nameEl(ctx.name(r.author))) : null,
    " ",
    h("span", { class: "reply-text" }, shown),
  );
}

function reactionsRow(m, ctx) {
  if (!m.reactions.length) return null;
  const label = (r) => `${r.emoji} ${r.count} reaction${r.count === 1 ? "" : "s"}${r.me ? ", including you" : ""}`;
  if (ctx.panel) {
    // (a copy, in the pins panel: the counts, to react to in the channel itself)
    return h("div", { class: "reactions" }, m.reactions.map((r) => h("span", { class: r.me ? "reaction reaction-me" : "reaction", role: "img", "aria-label": label(r) }, h("span", { class: "reaction-emoji" }, r.emoji), h("span", { class: "reaction-count" }, String(r.count)))));
  }
  return h(
    "div",
    { class: "reactions" },
    m.reactions.map((r) =>
      h(
        "button",
        {
          class: r.me ? "reaction reaction-me" : "reaction",
          type: "button",
          "aria-pressed": r.me ? "true" : "false",
          "aria-label": label(r),
          disabled: !r.me && !ctx.can.react, // (yours may still be taken back)
          title: ctx.reactors.get(reactorsKey(m, r)) || null,
          // (the same button while its count moves: a press on it survives others' reactions)
          "data-key": `reaction ${r.emoji}`,
          dataset: { emoji: r.emoji },
          onclick: () => ctx.toggleReaction(m, r.emoji, !r.me),
          onmouseenter: () => ctx.whoReacted(m, r),
          onfocus: () => ctx.whoReacted(m, r),
        },
        h("span", { class: "reaction-emoji" }, r.emoji),
        h("span", { class: "reaction-count" }, String(r.count)),
      ),
    ),
  );
}

function attachmentsBox(m, ctx) {
  if (!m.attachments || !m.attachments.length) return null;
  return h(
    "div",
    { class: "attachments" },
    m.attachments.map((a) => {
      if (a.thumbnail_url && a.content_type.startsWith("image/")) {
        const img = h("img", { alt: a.filename, width: a.thumbnail_width, height: a.thumbnail_height });
        ctx.loadImage(a.thumbnail_url, img);
        return h("button", { class: "attachment-image", type: "button", "aria-label": `Open image ${a.filename}`, onclick: () => ctx.openImage(a) }, img);
      }
      return h(
        "div",
        { class: "attachment-file" },
        h("span", { class: "file-icon", "aria-hidden": "true" }, "📄"),
        h("span", { class: "file-meta" }, h("span", { class: "file-name" }, a.filename), h("span", { class: "file-size" }, fmtBytes(a.size))),
        h("button", { class: "btn btn-small", type: "button", onclick: () => ctx.download(a), "aria-label": `Download ${a.filename}` }, "Download"),
      );
    }),
  );
}

function actions(m, ctx) {
  const mine = m.author.id === ctx.store.me.id;
  const buttons = [];
  if (ctx.can.react) buttons.push(["Add reaction", "☺", (ev) => ctx.pickReaction(m, ev.currentTarget)]);
  if (ctx.can.reply) buttons.push(["Reply", "↩", () => ctx.reply(m)]);
  if (mine && m.kind === "default") buttons.push(["Edit", "✎", () => ctx.edit(m)]);
  if (ctx.can.pin && m.kind === "default") buttons.push([m.pinned ? "Unpin" : "Pin", "📌", () => ctx.pin(m, !m.pinned)]);
  if (ctx.can.manage && m.reactions.length) buttons.push(["Remove reactions", "⊘", () => ctx.manageReactions(m)]);
  if (mine || ctx.can.manage) buttons.push(["Delete", "🗑", () => ctx.remove(m)]);
  if (ctx.can.markUnread && !mine) buttons.push(["Mark unread", "✉", () => ctx.markUnread(m)]);
  return h(
    "div",
    { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" },
    buttons.map(([label, icon, fn]) => h("button", { class: "icon-btn", type: "button", title: label, "aria-label": label, onclick: fn }, icon)),
  );
}

// Everything a message's drawing depends on, as one string: the same string, the same
// drawing (ui/chat.js then keeps the element it drew before). Names, colours and
// permissions come from outside the message, so they are in it too.
export function messageSig(m, head, ctx) {
  const outside = [ctx.name(m.author), roleColor(ctx, m.author.id), ctx.store.mentionsMe(m)];
  if (m.reply_to) outside.push(ctx.name(m.reply_to.author));
  for (const text of [m.content, m.reply_to && m.reply_to.content]) {
    for (const [role, id] of mentionsIn(text)) {
      const r = role && ctx.server && ctx.server.roles.find((x) => x.id === id);
      outside.push(mentioned(ctx, role, id), r ? r.color : null);
    }
  }
  return JSON.stringify([m, head, ctx.can, outside]);
}

// Whom a text mentions, each once (["&" for a role, else "", the lowercased id]), kept
// for the texts drawn lately: every message's signature, and the names it needs, are
// worked out again at every redraw of its channel, and a message of a hundred mentions
// of one person (4,000 characters allow that) is one name to look up, not a hundred
// matches to find each time.
const MENTIONS_KEPT = 2000;
const mentionsCache = new Map();
export function mentionsIn(text) {
  if (!text) return [];
  let found = mentionsCache.get(text);
  if (found) return found;
  const seen = new Set();
  found = [];
  for (const match of text.matchAll(MENTION())) {
    const key = `${match[1]}${match[2].toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    found.push([match[1], match[2].toLowerCase()]);
  }
  if (mentionsCache.size >= MENTIONS_KEPT) mentionsCache.delete(mentionsCache.keys().next().value);
  mentionsCache.set(text, found);
  return found;
}

export function renderMessage(m, head, ctx) {
  if (m.kind === "pin") {
    return h(
      "li",
      { class: "msg msg-system", id: ctx.panel ? null : `msg-${m.id}`, dataset: { messageId: m.id, seq: m.seq } },
      h("span", { class: "system-icon", "aria-hidden": "true" }, "📌"),
      h("span", null, h("strong", null, nameEl(ctx.name(m.author))), " pinned ", h("button", { class: "link-btn", type: "button", onclick: () => ctx.jump(m.reply_to_id) }, "a message"), " to this channel. "),
      h("button", { class: "link-btn", type: "button", onclick: () => ctx.showPins() }, "See all pins"),
      h("time", { class: "msg-time", datetime: m.created_at, title: fmtFull(m.created_at) }, fmtTime(m.created_at)),
    );
  }
  const mentioned = ctx.store.mentionsMe(m) && m.author.id !== ctx.store.me.id;
  const body = h(
    "div",
    { class: "msg-body" },
    head
      ? h(
          "div",
          { class: "msg-head" },
          h("span", { class: "msg-author", style: roleColor(ctx, m.author.id) ? `color:${roleColor(ctx, m.author.id)}` : null }, nameEl(ctx.name(m.author))),
          // (a webhook's message: its name and avatar as posted, and a tag saying no person wrote it)
          m.author.bot ? h("span", { class: "bot-tag", title: "Posted by a webhook" }, "BOT") : null,
          h("time", { class: "msg-time", datetime: m.created_at, title: fmtFull(m.created_at) }, fmtTime(m.created_at)),
        )
      : // (a message under others of its author's shows no name: a screen reader, reaching
        // it alone, by the arrow keys, a search hit or as it comes, still says whose it is)
        h("span", { class: "visually-hidden" }, nameEl(ctx.name(m.author)), ": "),
    m.editing
      ? ctx.editor(m)
      : h(
          "div",
          { class: "msg-content" },
          renderContent(m.content, ctx, m.mention_everyone),
          m.edited_at ? h("span", { class: "edited", title: `Edited ${fmtFull(m.edited_at)}` }, " (edited)") : null,
        ),
    attachmentsBox(m, ctx),
    reactionsRow(m, ctx),
  );
  return h(
    "li",
    {
      class: ["msg", head ? "msg-head-row" : "msg-cont", mentioned && "msg-mentioned", m.pending && "msg-pending", m.pinned && "msg-pinned"],
      id: ctx.panel ? null : `msg-${m.id}`, // (one element of that id: the channel's)
      tabindex: "-1",
      dataset: { messageId: m.id, seq: m.seq || "" },
    },
    replyPreview(m, ctx),
    h(
      "div",
      { class: "msg-row" },
      head ? avatar(m.author) : h("time", { class: "msg-gutter-time", datetime: m.created_at, "aria-hidden": "true" }, fmtTime(m.created_at)),
      body,
    ),
    m.pending ? null : actions(m, ctx),
  );
}

// The emoji picker: a small popover of common emoji, keyboard reachable.
export function emojiPicker(anchor, choose) {
  document.querySelectorAll(".emoji-picker").forEach((p) => p.remove());
  const row = anchor.closest("li.msg");
  const close = () => {
    picker.remove();
    document.removeEventListener("mousedown", outside, true);
    anchor.focus();
    // (the button shows only while its message is hovered or focused: when it cannot
    // take the focus back, its message does, not the page)
    if (document.activeElement !== anchor && row && row.isConnected) row.focus({ preventScroll: true });
  };
  const outside = (ev) => {
    if (!picker.contains(ev.target)) close();
  };
  const picker = h(
    "div",
    { class: "emoji-picker", role: "dialog", "aria-label": "Pick a reaction" },
    COMMON_EMOJI.map((e) =>
      h("button", { class: "emoji-btn", type: "button", "aria-label": `React with ${e}`, onclick: () => { close(); choose(e); } }, e),
    ),
  );
  // The focus stays in the picker until it closes: Tab and Shift+Tab go round its
  // emoji (past the last it went to the end of the page, the picker left open over the
  // messages), and the arrow keys move across its rows and columns, Home and End to the
  // first and last.
  picker.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") return close();
    const buttons = [...picker.querySelectorAll("button")];
    const at = buttons.indexOf(document.activeElement);
    const n = buttons.length;
    const cols = Math.max(1, getComputedStyle(picker).gridTemplateColumns.split(" ").length);
    const step = { Tab: ev.shiftKey ? -1 : 1, ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[ev.key];
    let to;
    if (ev.key === "Home") to = 0;
    else if (ev.key === "End") to = n - 1;
    else if (step === undefined) return;
    else if (ev.key === "Tab") to = (at + step + n) % n;
    else to = Math.max(0, Math.min(n - 1, at + step));
    ev.preventDefault();
    buttons[to].focus();
  });
  const rect = anchor.getBoundingClientRect();
  picker.style.top = `${Math.max(8, Math.min(window.innerHeight - 180, rect.bottom + 4))}px`;
  picker.style.left = `${Math.max(8, Math.min(window.innerWidth - 250, rect.right - 240))}px`;
  document.body.appendChild(picker);
  document.addEventListener("mousedown", outside, true);
  picker.querySelector("button").focus();
}

export const reactorsKey = (m, r) => `${m.id} ${r.emoji} ${r.count}`;

// Who reacted, fetched once per message, emoji and count, kept in `cache` (so a redraw
// keeps it), and shown on the reaction's button as it is now.
export async function whoReacted(session, cache, m, r) {
  const key = reactorsKey(m, r);
  if (cache.has(key)) return; // (asked already, or being asked)
  cache.set(key, "");
  try {
    const users = await session.call("GET", `/api/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(r.emoji)}?limit=25`);
    // (the first 25: the rest are counted, not named)
    const rest = r.count - users.length;
    const names = users.map((u) => isolated(displayName(u))).join(", ");
    cache.set(key, `${rest > 0 ? `${names} and ${rest} more` : names} reacted with ${r.emoji}`);
    const row = document.getElementById(`msg-${m.id}`);
    for (const btn of row ? row.querySelectorAll(".reaction") : []) {
      if (btn.dataset.emoji === r.emoji) btn.title = cache.get(key);
    }
  } catch (err) {
    cache.delete(key);
    toast(describe(err));
  }
}

// A moderator's view of a message's reactions (MANAGE_MESSAGES): who gave each, the
// first 100 of an emoji, each with a button that takes theirs away (as Discord's
// "Reactions" view); a removal is told to everyone as `reaction.removed`.
export async function reactionsDialog(session, m) {
  const base = `/api/channels/${m.channel_id}/messages/${m.id}/reactions`;
  const sections = [];
  for (const r of m.reactions) {
    let users;
    try {
      users = await session.call("GET", `${base}/${encodeURIComponent(r.emoji)}?limit=100`);
    } catch (err) {
      return toast(describe(err));
    }
    const items = users.map((u) => {
      const take = async () => {
        try {
          await session.call("DELETE", `${base}/${encodeURIComponent(r.emoji)}/${u.id}`);
          item.remove();
        } catch (err) {
          toast(describe(err));
        }
      };
      const item = h(
        "li",
        null,
        h("span", null, displayName(u)),
        h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Remove ${displayName(u)}'s ${r.emoji}`, onclick: take }, "Remove"),
      );
      return item;
    });
    sections.push(h("h3", null, `${r.emoji} ${r.count}`), h("ul", { class: "settings-list", "aria-label": `Reacted with ${r.emoji}` }, items));
  }
  dialog("Reactions", sections);
  return undefined;
}
