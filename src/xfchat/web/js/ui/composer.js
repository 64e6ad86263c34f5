// The composer of a channel's view (ui/chat.js): the box, the files and reply being
// sent, the note of a refusal, and the send itself. Its methods are installed on
// ChatView, whose state they share (the view's channel, store, session, pending list).

import { h, morph, toast, describe, fmtBytes, fmtFull, duration } from "../dom.js";
import { P, has, timedOutUntil } from "../perms.js";
import { retryable, retryDelay } from "../session.js";

// How long a send is tried again when it is rate limited, the server busy or not
// reached, before what was typed comes back to the box.
const SEND_PATIENCE_MS = 60000;

export const composerMethods = {
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
    // side's choice, which may change unseen: the composer stays open to try again); or
    // why the box is shut (a timeout: the placeholder that says so is hidden by a draft),
    // or slow (slowmode).
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
      // (the box keeps the focus, a press on Send too: a phone's keyboard stays up)
      { class: "composer", onsubmit: (ev) => { ev.preventDefault(); this.input.focus({ preventScroll: true }); this.send(); } },
      this.refusedNote,
      this.replyBar,
      this.fileBar,
      h("div", { class: "composer-row" }, this.attachBtn, this.fileInput, this.input, (this.sendBtn = h("button", { class: "btn btn-primary send-btn", type: "submit" }, "Send"))),
    );
  },

  updateComposer() {
    // A reply to a message deleted meanwhile could not be sent: the reply ends, said.
    const replied = this.replyTo && (this.store.timeline(this.channelId).find(this.replyTo.id) || this.replyTo);
    if (replied && replied.deleted) {
      this.replyTo = null;
      toast("The message you were replying to was deleted.", "info");
    }
    const can = this.ctx.can;
    const name = this.app.channelTitle(this.channelId);
    this.input.disabled = !can.send;
    this.sendBtn.disabled = !can.send;
    // A timeout ends with no event: the view is drawn again when it does.
    const until = timedOutUntil(this.server);
    clearTimeout(this.timeoutTimer);
    if (until) {
      const wait = Math.min(until - Date.now() + 100, 2 ** 31 - 1);
      this.timeoutTimer = setTimeout(() => {
        this.render();
        this.app.scheduleChrome();
      }, wait);
    }
    // Slowmode holds those it does not let by (MANAGE_MESSAGES or MANAGE_CHANNELS does).
    const slow = this.server && this.channel ? this.channel.rate_limit_per_user || 0 : 0;
    const held = slow > 0 && can.send && !has(this.perms, P.MANAGE_MESSAGES) && !has(this.perms, P.MANAGE_CHANNELS);
    const note = this.refused ? `${name} does not take direct messages from you, so what you send here is refused. You can try again if that changes.`
      : !can.send && until ? `You are timed out until ${fmtFull(until.toISOString())}: you can read, not send.`
      : held ? `Slowmode is on: one message every ${duration(slow)}.`
      : "";
    this.refusedNote.hidden = !note;
    if (this.refusedNote.textContent !== note) this.refusedNote.textContent = note; // (a live region: said once)
    this.input.placeholder = this.refused
      ? `${name} does not take direct messages from you`
      : can.send ? `Message ${this.server ? "#" : "@"}${name}`
      : until ? `You are timed out until ${fmtFull(until.toISOString())}`
      : "You do not have permission to send messages here";
    this.attachBtn.disabled = !(can.send && has(this.perms, P.ATTACH_FILES));
    if (this.replyTo) {
      this.replyBar.hidden = false;
      morph(
        this.replyBar,
        h("span", { id: "composer-reply" }, "Replying to ", h("strong", null, this.store.nameIn(this.server, this.replyTo.author))),
        h("button", { class: "icon-btn", type: "button", "aria-label": "Cancel reply", onclick: () => { this.replyTo = null; this.updateComposer(); } }, "✕"),
      );
      // (said with the box: Reply puts the focus there, and a screen reader says only
      // the box's name, "Message", where the eye sees whom the reply is to)
      this.input.setAttribute("aria-describedby", "composer-reply");
    } else {
      this.replyBar.hidden = true;
      this.input.removeAttribute("aria-describedby");
    }
    this.fileBar.hidden = !this.files.length;
    // (patched in place, as the history is kept: the composer is drawn again at every
    // message, and a press on Cancel reply or on a file's ✕ must survive it)
    morph(
      this.fileBar,
      this.files.map((f, i) =>
        h("li", { class: "file-chip" }, `${f.name} (${fmtBytes(f.size)})`, h("button", { class: "icon-btn", type: "button", "aria-label": `Remove ${f.name}`, onclick: () => { this.files.splice(i, 1); this.updateComposer(); } }, "✕")),
      ),
    );
  },

  addFiles(list) {
    this.files.push(...Array.from(list).slice(0, 10 - this.files.length));
    this.updateComposer();
    this.input.focus();
  },

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
  },

  onInput() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(200, this.input.scrollHeight)}px`;
    const now = Date.now();
    // (not where sending is refused: typing there is refused too, and says why)
    if (this.input.value && !this.refused && this.ctx.can.send && now - this.lastTyping > 8000) {
      this.lastTyping = now;
      this.session.call("POST", `/api/channels/${this.channelId}/typing`).catch((err) => {
        if (err.code === "CANNOT_MESSAGE_USER") {
          this.refused = true;
          this.updateComposer();
        }
      });
    }
  },

  // "@name" as typed becomes the mention the API reads (`<@id>`) when it names someone
  // who can be here: a member of this server, or a participant of this conversation.
  // Names the page has not met are looked up (a member list not loaded, a big server).
  // `kept` (an edit's): names that were mentions already, each back to its own id with
  // no question asked (someone who has left stays mentioned).
  async withMentions(text, kept = new Map()) {
    const typed = /(^|[\s(])@([A-Za-z0-9_.]{2,32})\b/g;
    const server = this.server;
    const conv = this.store.conversations.get(this.channelId);
    const byName = () => new Map([...this.store.users.values()].filter((u) => u.username).map((u) => [u.username.toLowerCase(), u]));
    let users = byName();
    const names = [...new Set([...text.matchAll(typed)].map((x) => x[2].toLowerCase()))].filter((n) => !kept.has(n));
    const unknown = names.filter((n) => !users.has(n)).slice(0, 10);
    if (unknown.length) {
      const found = await Promise.all(
        unknown.map((n) => this.session.call("GET", `/api/users/search?q=${encodeURIComponent(n)}&limit=25`).catch(() => [])),
      );
      for (const u of found.flat()) this.store.remember(u);
      users = byName();
    }
    const members = server ? this.store.members.get(server.id) : null;
    const here = new Map([...kept].map(([n, id]) => [n, id]));
    let asked = 0;
    for (const n of names) {
      const user = users.get(n);
      if (!user) continue;
      let ok;
      if (!server) ok = Boolean(conv && conv.participant_ids.includes(user.id));
      else if (!members || members.has(user.id)) ok = true;
      else if (members.complete || asked >= 5) ok = false; // (the whole list is here: not a member)
      else {
        // (a server past what the member list loads: asked one by one, a few at most)
        asked += 1;
        ok = await this.session.call("GET", `/api/servers/${server.id}/members/${user.id}`).then(() => true, () => false);
      }
      if (ok) here.set(n, user.id);
    }
    return text.replace(typed, (whole, lead, name) => {
      const id = here.get(name.toLowerCase());
      return id ? `${lead}<@${id}>` : whole;
    });
  },

  async send() {
    const typed = this.input.value;
    if ((!typed.trim() && !this.files.length) || this.resolving) return;
    // While names are looked up the box is read-only: what is sent is what was typed,
    // and Enter again sends nothing twice.
    this.resolving = true;
    this.input.readOnly = true;
    this.input.setAttribute("aria-busy", "true");
    let content;
    try {
      content = await this.withMentions(typed.trim());
    } finally {
      this.resolving = false;
      this.input.readOnly = false;
      this.input.removeAttribute("aria-busy");
    }
    const reply = this.replyTo;
    const files = this.files;
    const channelId = this.channelId;
    // A send given up comes back to the box with its nonce: sent again as it came back,
    // it is the same send (one that did reach the server, its answer lost, is answered
    // again, not posted twice). Only what the nonce carried is the same send: the text
    // as sent (its mentions resolved again), the reply, the very files (the box's list
    // changes in place, and may hold files or a reply chosen meanwhile); anything else
    // with its nonce is refused (NONCE_CONFLICT), and takes a new one.
    const unsent = this.unsent;
    this.unsent = null;
    const same =
      unsent &&
      unsent.channelId === channelId &&
      unsent.content === content &&
      unsent.replyId === (reply ? reply.id : null) &&
      unsent.files.length === files.length &&
      unsent.files.every((f, i) => f === files[i]);
    const nonce = same ? unsent.nonce : crypto.randomUUID().replace(/-/g, "");
    const body = { content, nonce, ...(reply ? { reply_to_id: reply.id } : {}) };
    const me = this.store.me;
    const pending = { id: `pending-${nonce}`, nonce, pending: true, kind: "default", content, author: me, created_at: new Date().toISOString(), reactions: [], attachments: [], reply_to: null, mentions: [], mention_roles: [] };
    this.pending.push(pending);
    if (this.store.heldUnread === channelId) this.store.heldUnread = null; // (a send reads the channel)
    this.input.value = ""; // (exactly what was sent: nothing could be typed meanwhile)
    this.input.style.height = "auto";
    this.replyTo = null;
    this.files = [];
    this.lastTyping = 0;
    this.render(true);
    let payload = body;
    if (files.length) {
      payload = new FormData();
      payload.append("payload_json", JSON.stringify(body));
      files.forEach((f, i) => payload.append(`file${i}`, f, f.name));
    }
    const url = `/api/channels/${channelId}/messages`;
    const post = async () => {
      // Rate limited (a burst past the channel's limit), the server busy or not reached:
      // the same send again after what the server asks (its nonce makes a repeat
      // harmless), for a minute at most, the pending message shown meanwhile.
      for (let attempt = 1, waited = 0; ; attempt += 1) {
        try {
          return await this.session.call("POST", url, payload);
        } catch (err) {
          const wait = retryDelay(err, attempt);
          if (!retryable(err) || waited + wait > SEND_PATIENCE_MS) throw err;
          waited += wait;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    };
    // One send at a time, in the order typed: one held back by the rate limit holds the
    // next behind it, so none overtakes another. One given up (no server for a minute)
    // takes those waiting behind it back to the box with it, in order: the server back a
    // moment later, they would go out before it.
    const ticket = (this.sendTickets = (this.sendTickets || 0) + 1);
    const turn = (this.sendQueue || Promise.resolve()).then(async () => {
      if (this.givenUp && this.givenUp.through >= ticket) throw this.givenUp.err;
      try {
        return await post();
      } catch (err) {
        if (retryable(err)) this.givenUp = { through: this.sendTickets, err };
        throw err;
      }
    });
    this.sendQueue = turn.catch(() => {});
    try {
      const m = await turn;
      this.store.messageArrived(m);
      this.refused = false;
    } catch (err) {
      // Its message came by the real-time connection: it was posted, its answer lost.
      const mine = (m) => m.nonce === nonce && m.author.id === this.store.me.id;
      if (this.store.timeline(channelId).list.some(mine)) return;
      // A direct conversation closed to us (their choice or a block: one answer) stays
      // readable; the composer says why the send failed, and what was typed is kept.
      const refused = err.code === "CANNOT_MESSAGE_USER";
      if (refused) this.refused = true;
      toast(refused ? `Not sent: ${this.app.channelTitle(this.channelId)} does not take direct messages from you.` : `Not sent: ${describe(err)}`);
      // What was being sent comes back to the composer (unless more was typed or
      // chosen meanwhile), to send again.
      // (after what a send refused before it put back: nothing typed is lost)
      const unsent = retryable(err) ? { channelId, content, nonce, files: [...files], replyId: reply ? reply.id : null } : null;
      // The channel left meanwhile (this view is gone): its next view takes it back.
      const here = this.app.view;
      if (!(here && here.channelId === channelId && here.input)) {
        const back = (this.app.sentBack ||= new Map());
        const held = back.get(channelId);
        back.set(channelId, held
          ? { typed: `${held.typed}\n${typed}`, files: held.files.length ? held.files : files, reply: held.reply || reply, unsent: null }
          : { typed, files, reply, unsent });
        return;
      }
      const alone = !here.input.value;
      here.input.value = here.input.value ? `${here.input.value}\n${typed}` : typed;
      if (!here.files.length) here.files = files;
      if (!here.replyTo) here.replyTo = reply;
      if (alone && unsent) here.unsent = unsent;
      if (here !== this) {
        here.render();
        here.updateComposer();
      }
    } finally {
      this.pending = this.pending.filter((p) => p !== pending);
      this.render();
      this.updateComposer();
    }
  },
};
