// The middle of the screen: a channel's messages (infinite scroll upward, grouped by
// author and day), the typing line and the composer.

import { h, replace, displayName, fmtDay, dayKey, toast, describe, confirmDialog, dialog, fmtBytes } from "../dom.js";
import { renderMessage, emojiPicker, whoReacted } from "./message.js";
import { P, has, channelPermissions } from "../perms.js";

const PAGE = 50;
const GROUP_GAP_MS = 7 * 60 * 1000;

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
      can: {
        send: has(perms, P.SEND_MESSAGES),
        react: has(perms, P.ADD_REACTIONS),
        manage: server ? has(perms, P.MANAGE_MESSAGES) : false,
        pin: server ? has(perms, P.MANAGE_MESSAGES) : has(perms, P.SEND_MESSAGES),
      },
      jump: (id) => this.jumpTo(id),
      toggleReaction: (m, emoji, on) => this.react(m, emoji, on),
      pickReaction: (m, anchor) => emojiPicker(anchor, (e) => this.react(m, e, true)),
      reactors: this.reactors,
      whoReacted: (m, r) => whoReacted(this.session, this.reactors, m, r),
      reply: (m) => this.startReply(m),
      edit: (m) => this.startEdit(m),
      editor: (m) => this.editor(m),
      pin: (m, on) => this.pin(m, on),
      remove: (m) => this.remove(m),
      showPins: () => this.app.showPins(this.channelId),
      loadImage: (url, img) => this.blobs.show(url, img),
      openImage: (a) => this.openImage(a),
      download: (a) => this.blobs.download(a),
    };
  }

  // --- mounting ----------------------------------------------------------------------

  mount(container) {
    this.list = h("ol", { class: "messages" });
    this.scroller = h("div", { class: "scroller", tabindex: "0", role: "log", "aria-label": "Messages" }, this.list);
    this.scroller.addEventListener("scroll", () => this.onScroll());
    this.scroller.addEventListener("keydown", (ev) => this.onListKey(ev));
    this.typingLine = h("div", { class: "typing", "aria-live": "polite" });
    this.jumpBar = h("div", { class: "jump-bar", hidden: true }, h("button", { class: "btn btn-small", type: "button", onclick: () => this.loadLatest() }, "Jump to present"));
    this.composer = this.buildComposer();
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
      this.store.on(`channel:${id}`, () => this.render()),
      this.store.on(`typing:${id}`, () => this.renderTyping()),
      this.store.on("all", () => this.render()),
      this.store.on(`members:${this.server && this.server.id}`, () => this.render()),
    );
    this.typingTimer = setInterval(() => this.renderTyping(), 1000);
    this.focusHandler = () => this.maybeAck();
    window.addEventListener("focus", this.focusHandler);
    const t = this.store.timeline(id);
    if (t.loaded && t.atEnd) this.render(true);
    else this.loadLatest();
  }

  destroy() {
    this.store.timeline(this.channelId).trim(PAGE);
    for (const u of this.unsubs) u();
    clearInterval(this.typingTimer);
    clearTimeout(this.ackTimer);
    window.removeEventListener("focus", this.focusHandler);
  }

  focusComposer() {
    if (this.input) this.input.focus();
  }

  // --- loading -----------------------------------------------------------------------

  async page(query) {
    const { data, headers } = await this.session.call("GET", `/api/channels/${this.channelId}/messages?${query}`, null, { raw: true });
    for (const m of data) this.store.remember(m.author);
    return { data, more: headers.get("X-Has-More") === "true" };
  }

  async loadLatest() {
    try {
      const { data, more } = await this.page(`limit=${PAGE}`);
      const t = this.store.timeline(this.channelId);
      t.set(data.reverse(), { hasOlder: more, atEnd: true });
      this.render(true);
    } catch (err) {
      this.showError(err);
    }
  }

  async loadOlder() {
    const t = this.store.timeline(this.channelId);
    if (this.loadingOlder || !t.hasOlder || !t.loaded || t.oldest === null) return;
    this.loadingOlder = true;
    const before = this.scroller.scrollHeight - this.scroller.scrollTop;
    try {
      const { data, more } = await this.page(`limit=${PAGE}&before=${t.oldest}`);
      for (const m of data) t.put(m);
      t.hasOlder = more;
      this.render();
      this.scroller.scrollTop = this.scroller.scrollHeight - before; // keep the view still
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
      const { data, more } = await this.page(`limit=${PAGE}&after=${t.newest}`);
      for (const m of data) t.put(m);
      t.atEnd = !more;
      this.render();
    } catch (err) {
      toast(describe(err));
    } finally {
      this.loadingNewer = false;
    }
  }

  async jumpTo(messageId) {
    const t = this.store.timeline(this.channelId);
    if (!t.byId.has(messageId)) {
      try {
        const m = await this.session.call("GET", `/api/channels/${this.channelId}/messages/${messageId}`);
        const start = Math.max(0, m.seq - Math.floor(PAGE / 2));
        const { data, more } = await this.page(`limit=${PAGE}&after=${start}`);
        t.set(data, { hasOlder: start > 0, atEnd: !more });
        this.render();
      } catch (err) {
        return toast(describe(err));
      }
    }
    const el = document.getElementById(`msg-${messageId}`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.classList.add("msg-highlight");
      el.focus({ preventScroll: true });
      setTimeout(() => el.classList.remove("msg-highlight"), 2500);
    }
  }

  onScroll() {
    const s = this.scroller;
    if (s.scrollTop < 300) this.loadOlder();
    if (s.scrollHeight - s.scrollTop - s.clientHeight < 300) this.loadNewer();
    this.maybeAck();
  }

  // The keyboard: from the history (or any message), Up and Down move between messages,
  // Home and End to the first and last; Tab then reaches the focused message's actions.
  onListKey(ev) {
    if (!["ArrowUp", "ArrowDown", "Home", "End"].includes(ev.key)) return;
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

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  // --- drawing -----------------------------------------------------------------------

  showError(err) {
    replace(this.list, h("li", { class: "empty-note" }, `Could not load messages: ${describe(err)}`));
  }

  render(toBottom = false) {
    if (!this.list) return;
    const t = this.store.timeline(this.channelId);
    if (!t.loaded) return;
    const stick = toBottom || this.atBottom();
    const focusedId = document.activeElement && this.list.contains(document.activeElement) ? document.activeElement.closest(".msg")?.id : null;
    const ctx = this.ctx;
    const items = [];
    if (!t.hasOlder) items.push(this.intro());
    let prev = null;
    const shown = [...t.list.filter((m) => !m.deleted), ...this.pending.filter((p) => !t.list.some((m) => m.nonce && m.nonce === p.nonce && m.author.id === this.store.me.id))];
    for (const m of shown) {
      if (!prev || dayKey(prev.created_at) !== dayKey(m.created_at)) {
        items.push(h("li", { class: "day-divider" }, h("span", null, fmtDay(m.created_at))));
        prev = null;
      }
      const head =
        !prev || prev.author.id !== m.author.id || m.reply_to || m.kind !== "default" || prev.kind !== "default" ||
        new Date(m.created_at) - new Date(prev.created_at) > GROUP_GAP_MS;
      items.push(renderMessage(m, head, ctx));
      prev = m;
    }
    replace(this.list, items);
    this.jumpBar.hidden = t.atEnd;
    if (focusedId) document.getElementById(focusedId)?.focus({ preventScroll: true });
    if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.updateComposer();
    this.maybeAck();
  }

  intro() {
    const ch = this.channel;
    const name = this.app.channelTitle(this.channelId);
    return h(
      "li",
      { class: "channel-intro" },
      h("h2", null, this.server ? `Welcome to #${name}!` : name),
      h("p", null, this.server ? `This is the start of the #${name} channel.${ch && ch.topic ? " " + ch.topic : ""}` : "This is the beginning of your conversation."),
    );
  }

  renderTyping() {
    const now = Date.now();
    const map = this.store.typing.get(this.channelId) || new Map();
    const names = [...map].filter(([, until]) => until > now).map(([id]) => displayName(this.store.user(id)));
    if (!names.length) return replace(this.typingLine);
    const text = names.length === 1 ? `${names[0]} is typing…` : names.length < 4 ? `${names.join(", ")} are typing…` : "Several people are typing…";
    replace(this.typingLine, h("span", { class: "typing-dots", "aria-hidden": "true" }, "•••"), " ", h("strong", null, text));
  }

  // --- reading -----------------------------------------------------------------------

  maybeAck() {
    const t = this.store.timeline(this.channelId);
    const read = this.store.reads.get(this.channelId);
    if (!t.atEnd || !document.hasFocus() || !this.atBottom() || !t.newest) return;
    if (read && read.last_read_seq >= t.newest && !read.unread) return;
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(async () => {
      const seq = t.newest;
      const r = this.store.reads.get(this.channelId) || {};
      this.store.reads.set(this.channelId, { ...r, last_read_seq: Math.max(r.last_read_seq || 0, seq), unread: 0, mention_count: 0 });
      this.store.emit("reads");
      try {
        await this.session.call("PUT", `/api/channels/${this.channelId}/ack`, { seq });
      } catch {
        // (read positions are a nicety; the next view acks again)
      }
    }, 300);
  }

  // --- actions -----------------------------------------------------------------------

  async react(m, emoji, on) {
    try {
      await this.session.call(on ? "PUT" : "DELETE", `/api/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}/@me`);
    } catch (err) {
      toast(describe(err));
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

  async remove(m) {
    if (!(await confirmDialog("Delete message", "Delete this message? This cannot be undone."))) return;
    try {
      await this.session.call("DELETE", `/api/channels/${m.channel_id}/messages/${m.id}`);
    } catch (err) {
      toast(describe(err));
    }
  }

  startReply(m) {
    this.replyTo = m;
    this.updateComposer();
    this.input.focus();
  }

  startEdit(m) {
    for (const other of this.store.timeline(this.channelId).list) other.editing = false;
    m.editing = true;
    this.render();
    const box = document.querySelector(`#msg-${CSS.escape(m.id)} .edit-box`);
    if (box) {
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
  }

  editor(m) {
    const box = h("textarea", { class: "edit-box", "aria-label": "Edit message", rows: 2, value: m.content });
    const done = () => {
      m.editing = false;
      this.render();
      this.input.focus();
    };
    const save = async () => {
      const content = box.value.trim();
      if (content === m.content) return done();
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
    return h("div", { class: "editor" }, box, h("p", { class: "hint" }, "Enter to save · Escape to cancel"));
  }

  async openImage(a) {
    const img = h("img", { class: "lightbox-img", alt: a.filename });
    dialog(a.filename, [img, h("div", { class: "row-end" }, h("button", { class: "btn", type: "button", onclick: () => this.blobs.download(a) }, "Download"))], { wide: true });
    this.blobs.show(a.url, img);
  }

  // --- composer ----------------------------------------------------------------------

  buildComposer() {
    this.input = h("textarea", { class: "composer-input", rows: 1, "aria-label": "Message", placeholder: "Message" });
    this.fileInput = h("input", { type: "file", multiple: true, class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
    this.fileInput.addEventListener("change", () => {
      this.addFiles(this.fileInput.files);
      this.fileInput.value = "";
    });
    this.attachBtn = h("button", { class: "icon-btn attach-btn", type: "button", "aria-label": "Attach files", title: "Attach files", onclick: () => this.fileInput.click() }, "+");
    this.replyBar = h("div", { class: "reply-bar", hidden: true });
    // Why the last send here was refused, until one goes through (a refusal is the other
    // side's choice, which may change unseen: the composer stays open to try again).
    this.refusedNote = h("p", { class: "reply-bar", role: "status", hidden: true });
    this.fileBar = h("ul", { class: "file-bar", "aria-label": "Files to send", hidden: true });
    this.input.addEventListener("keydown", (ev) => this.onKey(ev));
    this.input.addEventListener("input", () => this.onInput());
    this.input.addEventListener("paste", (ev) => {
      if (ev.clipboardData && ev.clipboardData.files.length) {
        ev.preventDefault();
        this.addFiles(ev.clipboardData.files);
      }
    });
    return h(
      "form",
      { class: "composer", onsubmit: (ev) => { ev.preventDefault(); this.send(); } },
      this.refusedNote,
      this.replyBar,
      this.fileBar,
      h("div", { class: "composer-row" }, this.attachBtn, this.fileInput, this.input, h("button", { class: "btn btn-primary send-btn", type: "submit" }, "Send")),
    );
  }

  updateComposer() {
    const can = this.ctx.can;
    const name = this.app.channelTitle(this.channelId);
    this.input.disabled = !can.send;
    const note = this.refused ? `${name} does not take direct messages from you, so what you send here is refused. You can try again if that changes.` : "";
    this.refusedNote.hidden = !note;
    if (this.refusedNote.textContent !== note) this.refusedNote.textContent = note; // (a live region: said once)
    this.input.placeholder = this.refused
      ? `${name} does not take direct messages from you`
      : can.send ? `Message ${this.server ? "#" : "@"}${name}` : "You do not have permission to send messages here";
    this.attachBtn.disabled = !(can.send && has(this.perms, P.ATTACH_FILES));
    if (this.replyTo) {
      this.replyBar.hidden = false;
      replace(
        this.replyBar,
        h("span", null, "Replying to ", h("strong", null, displayName(this.replyTo.author))),
        h("button", { class: "icon-btn", type: "button", "aria-label": "Cancel reply", onclick: () => { this.replyTo = null; this.updateComposer(); } }, "✕"),
      );
    } else this.replyBar.hidden = true;
    this.fileBar.hidden = !this.files.length;
    replace(
      this.fileBar,
      this.files.map((f, i) =>
        h("li", { class: "file-chip" }, `${f.name} (${fmtBytes(f.size)})`, h("button", { class: "icon-btn", type: "button", "aria-label": `Remove ${f.name}`, onclick: () => { this.files.splice(i, 1); this.updateComposer(); } }, "✕")),
      ),
    );
  }

  addFiles(list) {
    this.files.push(...Array.from(list).slice(0, 10 - this.files.length));
    this.updateComposer();
    this.input.focus();
  }

  onKey(ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.send();
    } else if (ev.key === "ArrowUp" && !this.input.value) {
      const mine = this.store.timeline(this.channelId).list.filter((m) => m.author.id === this.store.me.id && !m.deleted && m.kind === "default");
      if (mine.length) {
        ev.preventDefault();
        this.startEdit(mine[mine.length - 1]);
      }
    } else if (ev.key === "Escape" && this.replyTo) {
      this.replyTo = null;
      this.updateComposer();
    }
  }

  onInput() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(200, this.input.scrollHeight)}px`;
    const now = Date.now();
    if (this.input.value && now - this.lastTyping > 8000) {
      this.lastTyping = now;
      this.session.call("POST", `/api/channels/${this.channelId}/typing`).catch(() => {});
    }
  }

  // "@name" as typed becomes the mention the API reads (`<@id>`) when it names someone
  // who can be here: a member of this server, or a participant of this conversation.
  withMentions(text) {
    const server = this.server;
    const conv = this.store.conversations.get(this.channelId);
    const members = server ? this.store.members.get(server.id) : null;
    const here = (id) => (server ? (members ? members.has(id) : true) : conv && conv.participant_ids.includes(id));
    const byName = new Map([...this.store.users.values()].map((u) => [u.username.toLowerCase(), u]));
    return text.replace(/(^|[\s(])@([A-Za-z0-9_.]{2,32})\b/g, (whole, lead, name) => {
      const user = byName.get(name.toLowerCase());
      return user && here(user.id) ? `${lead}<@${user.id}>` : whole;
    });
  }

  async send() {
    const typed = this.input.value;
    const content = this.withMentions(typed.trim());
    if (!content && !this.files.length) return;
    const nonce = crypto.randomUUID().replace(/-/g, "");
    const reply = this.replyTo;
    const files = this.files;
    const body = { content, nonce, ...(reply ? { reply_to_id: reply.id } : {}) };
    const me = this.store.me;
    const pending = { id: `pending-${nonce}`, nonce, pending: true, kind: "default", content, author: me, created_at: new Date().toISOString(), reactions: [], attachments: [], reply_to: null, mentions: [], mention_roles: [] };
    this.pending.push(pending);
    this.input.value = "";
    this.input.style.height = "auto";
    this.replyTo = null;
    this.files = [];
    this.lastTyping = 0;
    this.render(true);
    try {
      let payload = body;
      if (files.length) {
        payload = new FormData();
        payload.append("payload_json", JSON.stringify(body));
        files.forEach((f, i) => payload.append(`file${i}`, f, f.name));
      }
      const m = await this.session.call("POST", `/api/channels/${this.channelId}/messages`, payload);
      this.store.messageArrived(m);
      this.refused = false;
    } catch (err) {
      // A direct conversation closed to us (their choice or a block: one answer) stays
      // readable; the composer says why the send failed, and what was typed is kept.
      const refused = err.code === "CANNOT_MESSAGE_USER";
      if (refused) this.refused = true;
      toast(refused ? `Not sent: ${this.app.channelTitle(this.channelId)} does not take direct messages from you.` : `Not sent: ${describe(err)}`);
      // What was being sent comes back to the composer (unless more was typed or
      // chosen meanwhile), to send again.
      if (!this.input.value) this.input.value = typed;
      if (!this.files.length) this.files = files;
      if (!this.replyTo) this.replyTo = reply;
    } finally {
      this.pending = this.pending.filter((p) => p !== pending);
      this.render();
      this.updateComposer();
    }
  }
}
