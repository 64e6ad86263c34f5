// The middle of the screen: a channel's messages (infinite scroll upward, grouped by
// author and day), the typing line and the composer.

import { h, replace, place, repaint, nameEl, fmtDay, dayKey, toast, describe, confirmDialog, dialog } from "../dom.js";
import { renderMessage, messageSig, emojiPicker, whoReacted, reactionsDialog, USER_MENTION, mentionsIn } from "./message.js";
import { composerMethods } from "./composer.js";
import { loadMembers } from "./members.js";
import { P, has, channelPermissions } from "../perms.js";
import { away } from "../store.js";
import { ApiError } from "../session.js";

const reactionKey = (emoji) => emoji.normalize("NFC").replace(/[\uFE0E\uFE0F]/g, "");

const PAGE = 50;
const GROUP_GAP_MS = 7 * 60 * 1000;
const RENDER_GAP_MS = 100;
const REACT_SETTLE_MS = 10_000;
const HIGHLIGHT_MS = 2500; // a jump's highlight of its message

export class ChatView {
  constructor(app, channelId) {
    this.app = app;
    this.store = app.store;
    this.session = app.session;
    this.channelId = channelId;
    this.pending = []; // messages being sent: {nonce, content, ...}
    this.files = [];
    this.replyTo = null;
    this.lastTyping = 0;
    this.loadingOlder = false;
    this.blobs = app.blobs;
    this.unsubs = [];
    this.ackTimer = null;
    this.reactors = new Map(); // "message emoji count" -> who reacted
    this.reactAsked = new Map(); // "message emoji" -> {on, turn}: the last press not yet answered
    this.lit = null; // the jump whose highlight is on: {id} (its own object, for its timer)
  }

  get server() {
    return this.store.serverOf(this.channelId);
  }

  get channel() {
    return this.store.channels.get(this.channelId) || this.store.conversations.get(this.channelId);
  }

  get perms() {
    const server = this.server;
    if (!server) {
      const conv = this.store.conversations.get(this.channelId);
      const other = conv && conv.kind === "direct" ? conv.participant_ids.find((id) => id !== this.store.me.id) : null;
      const base = channelPermissions(null, null);
      return other && this.store.blocks.has(other) ? base & ~(P.SEND_MESSAGES | P.ADD_REACTIONS | P.ATTACH_FILES) : base;
    }
    return channelPermissions(server, this.channel);
  }

  get ctx() {
    const perms = this.perms;
    const server = this.server;
    return {
      store: this.store,
      server,
      name: (user) => this.store.nameIn(server, user),
      // (without READ_MESSAGE_HISTORY, what names another's message is refused: a reply,
      // a reaction added, a pin, a moderator's deletion; your own stay yours)
      can: {
        send: has(perms, P.SEND_MESSAGES),
        reply: has(perms, P.SEND_MESSAGES | P.READ_MESSAGE_HISTORY),
        react: has(perms, P.ADD_REACTIONS | P.READ_MESSAGE_HISTORY),
        manage: server ? has(perms, P.MANAGE_MESSAGES | P.READ_MESSAGE_HISTORY) : false,
        pin: has(perms, (server ? P.MANAGE_MESSAGES : P.SEND_MESSAGES) | P.READ_MESSAGE_HISTORY),
        markUnread: has(perms, P.READ_MESSAGE_HISTORY),
      },
      jump: (id) => this.jumpTo(id),
      toggleReaction: (m, emoji, on) => this.react(m, emoji, on),
      pickReaction: (m, anchor) => emojiPicker(anchor, (e) => this.react(m, e, true)),
      reactors: this.reactors,
      whoReacted: (m, r) => whoReacted(this.session, this.reactors, m, r),
      manageReactions: (m) => reactionsDialog(this.session, m),
      reply: (m) => this.startReply(m),
      edit: (m) => this.startEdit(m),
      editor: (m) => this.editor(m),
      pin: (m, on) => this.pin(m, on),
      remove: (m) => this.remove(m),
      markUnread: (m) => this.markUnread(m),
      showPins: () => this.app.showPins(this.channelId),
      loadImage: (url, img) => this.blobs.show(url, img),
      openImage: (a) => this.openImage(a),
      download: (a) => this.blobs.download(a),
    };
  }

  // --- mounting ----------------------------------------------------------------------

  mount(container) {
    this.store.atNewest = false;
    this.list = h("ol", { class: "messages" });
    this.scroller = h("div", { class: "scroller", tabindex: "0", role: "log", "aria-label": "Messages" }, this.list);
    this.scroller.addEventListener("scroll", () => this.onScroll());
    // While a button is held down on the history, the newest messages do not scroll it
    // (what was pressed would move away from under the pointer, and the click with it):
    // it follows them again once the button is released, unless the press scrolled it
    // up (a drag of the scrollbar to read back).
    this.scroller.addEventListener("pointerdown", () => {
      this.pressing = true;
      this.pressTop = this.scroller.scrollTop;
    });
    this.released = () => {
      if (!this.pressing) return;
      this.pressing = false;
      setTimeout(() => {
        if (this.followLater && this.scroller.scrollTop >= this.pressTop - 2) this.follow();
        this.followLater = false;
      });
    };
    window.addEventListener("pointerup", this.released);
    window.addEventListener("pointercancel", this.released);
    this.scroller.addEventListener("keydown", (ev) => this.onListKey(ev));
    this.typingLine = h("div", { class: "typing", "aria-live": "polite" });
    this.jumpBar = h("div", { class: "jump-bar", hidden: true }, h("button", { class: "btn btn-small", type: "button", onclick: () => (this.store.timeline(this.channelId).atEnd ? this.follow() : this.loadLatest()) }, "Jump to present"));
    this.composer = this.buildComposer();
    // What a send given up after this channel's last view was left brought back, or
    // the draft left in it (destroy).
    const back = this.app.sentBack && this.app.sentBack.get(this.channelId);
    if (back) {
      this.app.sentBack.delete(this.channelId);
      Object.assign(this, { files: back.files, replyTo: back.reply, unsent: back.unsent });
      this.input.value = back.typed;
    }
    this.root = h("section", { class: "chat", "aria-label": "Conversation" }, this.scroller, this.jumpBar, this.typingLine, this.composer);
    this.root.addEventListener("dragover", (ev) => {
      if (ev.dataTransfer && [...ev.dataTransfer.types].includes("Files")) {
        ev.preventDefault();
        this.root.classList.add("dropping");
      }
    });
    this.root.addEventListener("dragleave", () => this.root.classList.remove("dropping"));
    this.root.addEventListener("drop", (ev) => {
      this.root.classList.remove("dropping");
      if (ev.dataTransfer && ev.dataTransfer.files.length) {
        ev.preventDefault();
        this.addFiles(ev.dataTransfer.files);
      }
    });
    replace(container, this.root);
    const id = this.channelId;
    this.unsubs.push(
      this.store.on(`channel:${id}`, () => this.renderSoon()),
      this.store.on(`typing:${id}`, () => this.renderTyping()),
      this.store.on("all", () => this.renderSoon()),
      this.store.on(`members:${this.server && this.server.id}`, () => this.renderSoon()),
      this.store.on("users", () => this.renderSoon()),
      // (what one may do here: roles, overrides, a timeout, the channel itself)
      this.store.on(`server:${this.server && this.server.id}`, () => this.renderSoon()),
      this.store.on(`channel-meta:${id}`, () => this.renderSoon()),
    );
    // Names in messages (nicknames, mentions) come from the server's members: loaded
    // here too, not only by the member list (closed on a phone).
    const server = this.server;
    this.membersReady = !server;
    if (server) {
      loadMembers(this.app, server.id)
        .catch(() => {})
        .finally(() => {
          this.membersReady = true;
          this.render();
        });
    }
    // Mounted hidden (a phone's drawer open over it, as when a server is picked there):
    // it is scrolled to the newest messages, and read, when it is shown.
    this.resizer = new ResizeObserver(() => {
      if (this.scroller.clientHeight && this.stickOnShow) {
        this.stickOnShow = false;
        this.scroller.scrollTop = this.scroller.scrollHeight;
        this.maybeAck();
      }
    });
    this.resizer.observe(this.scroller);
    this.typingTimer = setInterval(() => this.renderTyping(), 1000);
    // (back on the page: what came meanwhile is read once it is in sight)
    this.focusHandler = () => this.maybeAck();
    window.addEventListener("focus", this.focusHandler);
    document.addEventListener("visibilitychange", this.focusHandler);
    const t = this.store.timeline(id);
    if (t.loaded && t.atEnd) this.render(true);
    else this.loadLatest();
  }

  destroy() {
    // What was typed here and not sent, with the reply and files chosen, waits for the
    // channel's next view, as Discord keeps a draft per channel (not what a send under
    // way holds: the box is read-only then, and a send given up comes back by itself).
    if (this.input && !this.resolving && (this.input.value.trim() || this.files.length || this.replyTo)) {
      (this.app.sentBack ||= new Map()).set(this.channelId, { typed: this.input.value, files: this.files, reply: this.replyTo, unsent: this.unsent });
    }
    this.store.timeline(this.channelId).leftBehind();
    for (const u of this.unsubs) u();
    this.resizer.disconnect();
    clearInterval(this.typingTimer);
    clearTimeout(this.renderTimer);
    if (this.ackTimer) this.ackNow();
    clearTimeout(this.timeoutTimer);
    window.removeEventListener("focus", this.focusHandler);
    document.removeEventListener("visibilitychange", this.focusHandler);
    window.removeEventListener("pointerup", this.released);
    window.removeEventListener("pointercancel", this.released);
  }

  focusComposer() {
    if (this.input) this.input.focus();
  }

  // --- loading -----------------------------------------------------------------------

  async page(query) {
    const t = this.store.timeline(this.channelId);
    t.loading += 1;
    try {
      const { data, headers } = await this.session.call("GET", `/api/channels/${this.channelId}/messages?${query}`, null, { raw: true });
      for (const m of data) this.store.remember(m.author);
      return { data, headers, more: headers.get("X-Has-More") === "true" };
    } finally {
      t.loading -= 1;
    }
  }

  // The newest page; again (twice at most) if a message was edited, reacted to or
  // deleted while it came (the page may show it as it was).
  // A member without READ_MESSAGE_HISTORY (as Discord lets one be) reads no page of it:
  // the channel shows that, and its messages from now on as they come.
  async loadLatest(again = 2) {
    const t = this.store.timeline(this.channelId);
    t.missed = false;
    const claim = t.claim();
    let page;
    try {
      page = await this.page(`limit=${PAGE}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 403 && err.body.missing === "READ_MESSAGE_HISTORY")) return this.showError(err);
      page = null;
    }
    if (!t.take(claim)) return; // (a load or jump asked for later landed first: it is the one to show)
    t.historyHidden = !page;
    t.set(page ? page.data.reverse() : [], { hasOlder: Boolean(page && page.more), atEnd: true });
    this.render(true);
    if (page && t.missed && !t.loading && again > 0) return this.loadLatest(again - 1);
  }

  async loadOlder() {
    const t = this.store.timeline(this.channelId);
    if (this.loadingOlder || !t.hasOlder || !t.loaded || t.oldest === null || t.historyHidden) return;
    this.loadingOlder = true;
    // The view kept still by a message on screen: where it is (messages that arrive
    // below meanwhile move nothing above them). Not the oldest loaded, whose author line
    // goes when an older message of the same author comes above it.
    const edge = this.scroller.getBoundingClientRect().top;
    const shown = [...this.list.querySelectorAll("li.msg")];
    const anchor = shown.slice(1).find((li) => li.getBoundingClientRect().bottom > edge) || shown[0];
    const top = anchor && anchor.getBoundingClientRect().top;
    const windowAt = t.shown;
    const from = t.oldest;
    try {
      const { data, more } = await this.page(`limit=${PAGE}&before=${from}`);
      // (the window was loaded again meanwhile, or, following the newest, let its oldest
      // go: the page would join it with those missing in between; asked again on scroll)
      if (t.shown !== windowAt || t.oldest !== from) return;
      for (const m of data) t.put(m);
      t.hasOlder = more;
      this.render();
      if (anchor && anchor.isConnected) this.scroller.scrollTop += anchor.getBoundingClientRect().top - top;
    } catch (err) {
      toast(describe(err));
    } finally {
      this.loadingOlder = false;
    }
  }

  async loadNewer() {
    const t = this.store.timeline(this.channelId);
    if (this.loadingNewer || t.atEnd || !t.loaded) return;
    this.loadingNewer = true;
    try {
      const windowAt = t.shown;
      const { data, more } = await this.page(`limit=${PAGE}&after=${t.newest}`);
      if (t.shown !== windowAt) return; // (the window was loaded again meanwhile)
      for (const m of data) t.put(m);
      if (!more) t.reachEnd();
      this.render();
    } catch (err) {
      toast(describe(err));
    } finally {
      this.loadingNewer = false;
    }
  }

  async jumpTo(messageId) {
    const t = this.store.timeline(this.channelId);
    let m = t.byId.get(messageId);
    if (!m) {
      // (asked for after the newest page a channel opened with: shown whichever lands first)
      const claim = t.claim();
      try {
        m = await this.session.call("GET", `/api/channels/${this.channelId}/messages/${messageId}`);
        if (!m.deleted) {
          // The page centred on it: older ones above, newer below.
          const { data, headers } = await this.page(`around=${m.seq}&limit=${PAGE}`);
          if (!t.take(claim)) return; // (a load or jump asked for later landed first: it is the one to show)
          const link = headers.get("Link") || "";
          t.set(data.reverse(), { hasOlder: headers.get("X-Has-More") === "true" || /rel="next"/.test(link), atEnd: !/rel="prev"/.test(link) });
          this.render();
        }
      } catch (err) {
        return toast(describe(err));
      }
    }
    if (m.deleted) return toast("That message has been deleted.", "info");
    const el = document.getElementById(`msg-${messageId}`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      // (kept for 2.5 s by whichever element shows the message: a redraw in between, a
      // reaction or an edit, draws it with the highlight too)
      const lit = { id: messageId };
      this.lit = lit;
      el.classList.add("msg-highlight");
      el.focus({ preventScroll: true });
      setTimeout(() => {
        if (this.lit === lit) this.lit = null;
        // (unless a later jump to the same message holds it on; and only from this view's
        // element: a view of the channel opened since has its own jumps and timers)
        const cur = document.getElementById(`msg-${messageId}`);
        if ((!this.lit || this.lit.id !== messageId) && cur && this.list && this.list.contains(cur)) cur.classList.remove("msg-highlight");
      }, HIGHLIGHT_MS);
    }
  }

  // A message's element as drawn, with the highlight while a jump's lasts.
  lighted(el, id) {
    if (this.lit && this.lit.id === id) el.classList.add("msg-highlight");
    return el;
  }

  onScroll() {
    const s = this.scroller;
    if (s.scrollTop < 300) this.loadOlder();
    if (s.scrollHeight - s.scrollTop - s.clientHeight < 300) this.loadNewer();
    this.sawNewest();
    this.maybeAck();
  }

  // Whether the newest messages are on screen (store.atNewest): a message that comes
  // while they are is seen as it comes; one that comes while the view is scrolled up
  // counts as unread, and the jump bar says there is more below.
  sawNewest() {
    const t = this.store.timeline(this.channelId);
    const at = Boolean(t.atEnd && this.scroller.clientHeight && this.atBottom());
    if (this.store.viewing === this.channelId) this.store.atNewest = at;
    const read = this.store.reads.get(this.channelId);
    this.jumpBar.hidden = t.atEnd && (at || !(read && read.unread));
  }

  // The keyboard: from the history (or any message), Up and Down move between messages,
  // Home and End to the first and last; Tab then reaches the focused message's actions.
  onListKey(ev) {
    if (!["ArrowUp", "ArrowDown", "Home", "End"].includes(ev.key)) return;
    if (ev.target.closest && ev.target.closest("textarea, input")) return; // (the caret's, in an edit)
    const items = [...this.list.querySelectorAll("li.msg")];
    if (!items.length) return;
    const at = items.indexOf(ev.target.closest && ev.target.closest("li.msg"));
    if (at < 0 && ev.target !== this.scroller) return;
    const next = { ArrowUp: at < 0 ? items.length - 1 : at - 1, ArrowDown: at + 1, Home: 0, End: items.length - 1 }[ev.key];
    const el = items[Math.max(0, Math.min(items.length - 1, next))];
    ev.preventDefault();
    for (const item of items) item.tabIndex = -1;
    el.tabIndex = 0;
    el.focus();
  }

  follow() {
    this.followLater = false;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.sawNewest();
    this.maybeAck();
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  // --- drawing -----------------------------------------------------------------------

  showError(err) {
    replace(this.list, h("li", { class: "empty-note" }, `Could not load messages: ${describe(err)}`));
  }

  // Drawn from the timeline at every change, keeping the element of every message whose
  // drawing is the same as before (messageSig): in a busy channel a new message adds one
  // element and leaves the others alone, so a click on a message's action, its focus and
  // an edit being typed survive the messages that arrive meanwhile.
  // A redraw for an event: at once, unless the last one was under RENDER_GAP_MS ago;
  // then one, for all the events that come meanwhile, when that gap has passed. Each
  // redraw walks every message of the window: redrawn at every event, a storm of them
  // (another member adding and taking back reactions, editing, renaming, as fast as their
  // rate limits let them, a few accounts together) kept the tab busy all the time, and
  // falling further behind.
  renderSoon() {
    if (this.renderTimer) return;
    const wait = (this.renderedAt || 0) + RENDER_GAP_MS - performance.now();
    if (wait <= 0) return this.render();
    this.renderTimer = setTimeout(() => this.render(), wait);
  }

  render(toBottom = false) {
    clearTimeout(this.renderTimer);
    this.renderTimer = null;
    this.renderedAt = performance.now();
    this.settleReactions();
    if (!this.list) return;
    const t = this.store.timeline(this.channelId);
    if (!t.loaded) return;
    const stick = toBottom || this.atBottom();
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusedId = focused && focused.closest(".msg")?.id;
    const ctx = this.ctx;
    const before = this.drawn || new Map();
    const drawn = new Map();
    // An element is kept for the same message object (its actions act on the object it
    // was drawn from, which a reloaded page of history replaces): as it is when its
    // drawing is the same, else patched in place (repaint: a reaction, an edit), so its
    // controls stay the same elements and a press on one survives the change; not while
    // it is or was being edited (its editor is an element of its own).
    const keep = (key, sig, build, of = null) => {
      const old = before.get(key);
      const editing = Boolean(of && of.editing);
      let el;
      if (old && old.sig === sig && old.of === of) el = old.el;
      else if (old && old.of === of && of && !editing && !old.editing) {
        el = repaint(old.el, build());
        // (a reaction under the pointer or the focus whose count moved: who reacted now)
        for (const r of el.querySelectorAll(".reaction:hover, .reaction:focus")) r.dispatchEvent(new Event("mouseenter"));
      } else el = build();
      drawn.set(key, { sig, el, of, editing });
      return el;
    };
    const items = [];
    if (!t.hasOlder) {
      const ch = this.channel;
      items.push(keep("intro", JSON.stringify([Boolean(this.server), this.app.channelTitle(this.channelId), ch && ch.topic, Boolean(t.historyHidden)]), () => this.intro(t.historyHidden)));
    }
    let prev = null;
    // (an edit open when the history was loaded again goes on, on the new copy)
    const edited = this.editing && t.byId.get(this.editing.id);
    if (edited && edited !== this.editing.m && !edited.deleted) edited.editing = true;
    const shown = [...t.list.filter((m) => !m.deleted), ...this.pending.filter((p) => !t.list.some((m) => m.nonce && m.nonce === p.nonce && m.author.id === this.store.me.id))];
    // What was unread when the channel was opened, or what others said while the person
    // was away from the page, begins below a "New" divider (store.newAfter), which
    // stays there for the visit or until the next absence.
    const after = this.store.viewing === this.channelId ? this.store.newAfter : null;
    const firstNew = after === null ? null : t.firstUnreadAfter(after, this.store.me.id);
    for (const m of shown) {
      if (!prev || dayKey(prev.created_at) !== dayKey(m.created_at)) {
        const day = fmtDay(m.created_at);
        items.push(keep(`day ${m.id}`, day, () => h("li", { class: "day-divider" }, h("span", null, day))));
        prev = null;
      }
      if (m === firstNew) {
        items.push(keep("new", "new", () => newDivider()));
        prev = null; // (the first unread message shows its author)
      }
      const head =
        !prev || prev.author.id !== m.author.id || m.reply_to || m.kind !== "default" || prev.kind !== "default" ||
        (m.author.bot && (prev.author.username !== m.author.username || prev.author.avatar_url !== m.author.avatar_url)) || // (a webhook's per-message name)
        new Date(m.created_at) - new Date(prev.created_at) > GROUP_GAP_MS;
      items.push(keep(`msg ${m.id}`, messageSig(m, head, ctx), () => this.lighted(renderMessage(m, head, ctx), m.id), m));
      prev = m;
    }
    this.drawn = drawn;
    place(this.list, items);
    // (a kept element that moved lost the focus; one drawn anew gives it to its message)
    if (focused && focused.isConnected) {
      if (document.activeElement !== focused) focused.focus({ preventScroll: true });
    } else if (focusedId) {
      document.getElementById(focusedId)?.focus({ preventScroll: true });
    }
    if (stick && this.pressing) this.followLater = true;
    else if (stick) this.follow();
    if (!this.scroller.clientHeight) this.stickOnShow = this.stickOnShow || stick;
    this.sawNewest();
    this.updateComposer();
    this.maybeAck();
    this.resolveNames(shown);
  }

  // Who the shown messages mention and the page has not met (not a member it loaded:
  // someone who left, or a conversation's outsider): looked up, then drawn by name.
  resolveNames(messages) {
    if (!this.membersReady) return; // (the members bring most of them)
    const ids = [];
    for (const m of messages) {
      ids.push(...(m.mentions || []));
      for (const text of [m.content, m.reply_to && m.reply_to.content]) {
        for (const [role, id] of mentionsIn(text)) if (!role) ids.push(id);
      }
    }
    this.app.lookupUsers(ids);
  }

  intro(historyHidden) {
    const ch = this.channel;
    const name = this.app.channelTitle(this.channelId);
    const topic = ch && ch.topic ? " " + ch.topic : "";
    if (historyHidden) {
      return h("li", { class: "channel-intro" }, h("h2", null, `#${name}`), h("p", null, `You cannot read the history of #${name}: its messages show here as they come.${topic}`));
    }
    return h(
      "li",
      { class: "channel-intro" },
      h("h2", null, this.server ? `Welcome to #${name}!` : name),
      h("p", null, this.server ? `This is the start of the #${name} channel.${topic}` : "This is the beginning of your conversation."),
    );
  }

  renderTyping() {
    const now = Date.now();
    const map = this.store.typing.get(this.channelId) || new Map();
    const names = [...map].filter(([, until]) => until > now).map(([id]) => nameEl(this.store.nameIn(this.server, id)));
    if (!names.length) return replace(this.typingLine);
    const listed = names.flatMap((n, i) => (i ? [", ", n] : [n]));
    const text = names.length === 1 ? [names[0], " is typing…"] : names.length < 4 ? [...listed, " are typing…"] : "Several people are typing…";
    replace(this.typingLine, h("span", { class: "typing-dots", "aria-hidden": "true" }, "•••"), " ", h("strong", null, text));
  }

  // --- reading -----------------------------------------------------------------------

  // The newest messages on screen in a focused, visible window are read: acked at most
  // every 300 ms, with what is newest when the timer fires (a timer already running is
  // left to run: restarted at every message, it never fired while a channel stayed busy).
  maybeAck() {
    if (this.ackTimer || !this.unreadShown()) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      if (this.unreadShown()) this.ackNow();
    }, 300);
  }

  // (also when the view closes with an ack due: what was seen then is read)
  async ackNow() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const seq = this.store.timeline(this.channelId).newest;
    const r = this.store.reads.get(this.channelId) || {};
    this.store.reads.set(this.channelId, { ...r, last_read_seq: Math.max(r.last_read_seq || 0, seq), unread: 0, mention_count: 0 });
    this.store.emit("reads");
    this.sawNewest();
    try {
      await this.session.call("PUT", `/api/channels/${this.channelId}/ack`, { seq });
    } catch {
      // (read positions are a nicety; the next view acks again)
    }
  }

  // "Mark unread" on someone's message: your read position goes back to just before it
  // (PUT ack with a lower seq), the "New" line moves above it, and the channel stays
  // unread while you are in it, as on Discord: nothing here reads it again until you
  // leave it (the next visit reads as ever) or send in it.
  async markUnread(m) {
    const seq = m.seq - 1;
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    // (counted again by the server when this window cannot count what is unread now)
    if (!this.store.markUnread(this.channelId, seq)) this.app.scheduleRecount(this.channelId);
    this.render();
    try {
      await this.session.call("PUT", `/api/channels/${this.channelId}/ack`, { seq });
    } catch (err) {
      toast(describe(err));
    }
  }

  // (not while hidden, or while the person is away from the page: a view nobody sees
  // reads nothing; nor after "Mark unread" here)
  unreadShown() {
    if (this.store.heldUnread === this.channelId) return false;
    const t = this.store.timeline(this.channelId);
    const read = this.store.reads.get(this.channelId);
    if (!t.atEnd || away() || !this.scroller.clientHeight || !this.atBottom() || !t.newest) return false;
    return !(read && read.last_read_seq >= t.newest && !read.unread);
  }

  // --- actions -----------------------------------------------------------------------

  // A press asks for the opposite of what the last press asked (the pill changes only
  // when the server's event comes back: a double click asked to add twice), and a
  // message's reaction is asked for one request at a time, in order (an add and a
  // remove sent at once could be done the other way round). An answered press stays
  // what the next one goes by until the message says the same, for REACT_SETTLE_MS at
  // most (settleReactions): its event can come after the answer, and a second click
  // between the two asked to add again (a double click left the reaction on).
  // An emoji is one reaction however it is spelt (the server's reaction_key: NFC, the
  // variation selectors aside): a picked ❤️ is the ❤ pill already there, asked in turn.
  react(m, emoji, on) {
    const spelt = (m.reactions || []).find((r) => reactionKey(r.emoji) === reactionKey(emoji));
    if (spelt) emoji = spelt.emoji;
    const key = `${m.id} ${reactionKey(emoji)}`;
    this.settleReactions();
    const asked = this.reactAsked.get(key);
    if (asked !== undefined) on = !asked.on;
    const path = `/api/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}/@me`;
    const turn = (asked ? asked.turn : Promise.resolve()).then(() =>
      this.session.call(on ? "PUT" : "DELETE", path).then(
        () => true,
        (err) => {
          toast(describe(err));
          return false;
        },
      ),
    );
    const mine = { on, turn, m, emoji, answered: 0 };
    this.reactAsked.set(key, mine);
    return turn.then((done) => {
      if (this.reactAsked.get(key) !== mine) return;
      if (!done) this.reactAsked.delete(key);
      else mine.answered = performance.now();
      this.settleReactions();
    });
  }

  // Forgets the answered presses the messages now agree with (their events have come,
  // as the store holds them now: a message loaded again is another object), and those
  // answered more than REACT_SETTLE_MS ago (an event lost to a reconnect, or the state
  // changed again by another tab before this one's event was drawn: the pill is what
  // a press goes by again). Run before each press and each redraw.
  settleReactions() {
    const now = performance.now();
    for (const [key, a] of this.reactAsked) {
      if (!a.answered) continue;
      const t = this.store.messages.get(a.m.channel_id);
      const held = (t && t.find(a.m.id)) || a.m;
      const r = (held.reactions || []).find((x) => reactionKey(x.emoji) === reactionKey(a.emoji));
      if (Boolean(r && r.me) === a.on || now - a.answered > REACT_SETTLE_MS) this.reactAsked.delete(key);
    }
  }

  async pin(m, on) {
    try {
      await this.session.call(on ? "PUT" : "DELETE", `/api/channels/${m.channel_id}/pins/${m.id}`);
      toast(on ? "Message pinned" : "Message unpinned", "info");
    } catch (err) {
      toast(describe(err));
    }
  }

  // True once it is deleted.
  // The focus comes back to the message (kept), or to the one after it (deleted): the
  // Delete button it came from shows only while its message is hovered or focused.
  async remove(m) {
    const row = document.getElementById(`msg-${m.id}`);
    let next = row && row.nextElementSibling;
    while (next && !next.matches("li.msg")) next = next.nextElementSibling;
    let before = row && row.previousElementSibling;
    while (before && !before.matches("li.msg")) before = before.previousElementSibling;
    const focus = (...els) => (els.find((el) => el && el.isConnected) || this.scroller).focus({ preventScroll: true });
    if (!(await confirmDialog("Delete message", "Delete this message? This cannot be undone."))) {
      focus(row);
      return false;
    }
    try {
      await this.session.call("DELETE", `/api/channels/${m.channel_id}/messages/${m.id}`);
      focus(next, before);
      return true;
    } catch (err) {
      toast(describe(err));
      focus(row);
      return false;
    }
  }

  startReply(m) {
    this.replyTo = m;
    this.updateComposer();
    this.input.focus();
  }

  startEdit(m) {
    this.editing = null;
    for (const other of this.store.timeline(this.channelId).list) other.editing = false;
    m.editing = true;
    this.render();
    const box = document.querySelector(`#msg-${CSS.escape(m.id)} .edit-box`);
    if (box) {
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
  }

  // The message's editor, the same one while it stays open (a message redrawn while
  // edited, for a reaction or a new name, keeps what was typed).
  editor(m) {
    if (this.editing && this.editing.m === m) return this.editing.el;
    const draft = this.editing && this.editing.id === m.id ? this.editing.box.value : null;
    // Mentions as the composer takes them (@username), not as the API keeps them.
    // The names so written are remembered with their ids: on save each becomes the same
    // mention again (whether that person is still here or not); only names typed anew
    // are looked up.
    const kept = new Map(); // lowercased username -> id
    const editable = m.content.replace(USER_MENTION(), (whole, rawId) => {
      const id = rawId.toLowerCase();
      const u = this.store.users.get(id);
      if (!u || !u.username) return whole;
      const name = u.username.toLowerCase();
      if (kept.has(name) && kept.get(name) !== id) return whole; // (two people, one name: left as it was)
      kept.set(name, id);
      return `@${u.username}`;
    });
    const box = h("textarea", { class: "edit-box", "aria-label": "Edit message", rows: 2, value: draft ?? editable });
    const done = () => {
      m.editing = false;
      this.editing = null;
      this.render();
      this.input.focus();
    };
    const save = async () => {
      const typed = box.value.trim();
      if (typed === editable.trim()) return done(); // (nothing changed: nothing sent)
      const content = await this.withMentions(typed, kept);
      if (content === m.content) return done();
      if (!content && !(m.attachments && m.attachments.length)) {
        // Edited to nothing: offered to be deleted instead (as Discord does).
        if (await this.remove(m)) return done();
        return box.focus();
      }
      try {
        const fresh = await this.session.call("PATCH", `/api/channels/${m.channel_id}/messages/${m.id}`, { content });
        Object.assign(m, fresh, { reactions: m.reactions });
        done();
      } catch (err) {
        toast(describe(err));
      }
    };
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        save();
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        done();
      }
    });
    const el = h("div", { class: "editor" }, box, h("p", { class: "hint" }, "Enter to save · Escape to cancel"));
    this.editing = { id: m.id, m, el, box };
    return el;
  }

  openImage(a) {
    showImage(this.blobs, a);
  }
}

// The line above the first message that was unread when the channel was opened, or
// that came while the person was away (store.newAfter): a separator named for screen
// readers ("New messages"), and a visible word besides its colour. (The list item
// around it keeps the message list a list of items.)
function newDivider() {
  return h("li", { class: "new-divider" }, h("div", { class: "new-divider-line", role: "separator", "aria-label": "New messages" }, h("span", { "aria-hidden": "true" }, "New")));
}

// An image attachment at its size, in a dialog with its download.
export function showImage(blobs, a) {
  const img = h("img", { class: "lightbox-img", alt: a.filename });
  dialog(a.filename, [img, h("div", { class: "row-end" }, h("button", { class: "btn", type: "button", onclick: () => blobs.download(a) }, "Download"))], { wide: true });
  blobs.show(a.url, img);
}

// The composer's methods (ui/composer.js) are the view's own.
Object.assign(ChatView.prototype, composerMethods);
