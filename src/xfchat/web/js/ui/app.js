// The logged-in client: layout, routes (#/friends, #/dm/<id>, #/s/<server>/<channel>),
// the real-time connection, and the panels around the chat.

import { h, replace, morph, avatar, displayName, toast, describe, dialog, confirmDialog } from "../dom.js";
import { Store } from "../store.js";
import { Realtime } from "../realtime.js";
import { ApiError, retryDelay } from "../session.js";
import { Voice } from "../voice.js";
import { Blobs } from "../blobs.js";
import { ChatView, showImage } from "./chat.js";
import { FriendsView } from "./friends.js";
import { renderRail, renderServerSidebar, renderHomeSidebar, renderUserPanel, convTitle, sortedChannels } from "./sidebar.js";
import { renderServerMembers, renderParticipants, loadPresences, reloadMembers } from "./members.js";
import { searchBox, renderSearch } from "./search.js";
import { openSettings } from "./settings.js";
import { openAccount } from "./account.js";
import { createGroupDialog } from "./groups.js";
import { addServerDialog, inviteDialog, invitePreview } from "./invites.js";
import { renderMessage } from "./message.js";
import { P, has, channelPermissions } from "../perms.js";
import { notifyButton, notifyMessage } from "./notify.js";

// (the events that move a channel's counts: see countsMove)
const COUNTED = new Set(["message.created", "message.updated", "message.deleted", "read_state.updated"]);
const PINS_GAP_MS = 1000; // (the pins panel drawn again at most this often: see showPins)
const PRESENCES_ASKED = 100; // (GET /api/users/@me/presences?user_ids= answers for at most this many)

export class App {
  constructor(root, session, onLogout) {
    this.root = root;
    this.session = session;
    this.onLogout = onLogout;
    this.store = new Store();
    this.route = { view: "loading" };
    this.view = null;
    this.narrow = window.matchMedia("(max-width: 760px)"); // a phone: one pane at a time
    this.panel = this.defaultPanel(); // what the right side shows: members | search | pins | none
    this.blobs = new Blobs(session);
    this.rt = new Realtime(session, {
      ready: (d) => this.onReady(d),
      event: (t, d) => this.onEvent(t, d),
      status: (text) => this.setStatus(text),
      ended: (why) => this.end(why),
      voice: (t, d) => this.voice.onDispatch(t, d).catch((err) => this.toastError(`Voice: ${err.message}`)),
    });
    this.voice = new Voice(this);
    this.readyOnce = false;
    this.countsInDoubt = new Set(); // server ids whose channels' counts the server counts again
    this.counted = 0; // (how many times every count came whole: a full ready)
  }

  start() {
    this.buildLayout();
    this.hashHandler = () => this.navigate();
    window.addEventListener("hashchange", this.hashHandler);
    const s = this.store;
    s.on("all", () => this.refreshChrome());
    for (const topic of ["servers", "conversations", "reads", "friends", "presence"]) s.on(topic, () => this.scheduleChrome());
    s.on("voice", () => {
      this.voice.onStates();
      this.scheduleChrome();
    });
    // A mute changed (or the state came): redraw, and again when the next one ends.
    s.on("mutes", () => this.mutesChanged());
    s.on("all", () => this.armMuteTimer());
    s.on(`revoked:${this.session.sessionId}`, () => this.end("revoked"));
    this.rt.start();
    window.xfchatDebug = { voiceStats: () => this.voice.stats(), voiceChannel: () => this.voice.channelId, transport: () => this.rt.transport };
  }

  end(why) {
    if (this.ended) return; // (a failed call and the real-time connection may both end it)
    this.ended = true;
    clearTimeout(this.muteTimer);
    if (this.deleting && why === "revoked") why = "deleted";
    this.voice.reset();
    this.rt.stop();
    window.removeEventListener("hashchange", this.hashHandler);
    if (this.view) this.view.destroy();
    // Nothing of the session stays on screen or reachable: its dialogs and popovers
    // (outside #app) are closed, its files' blob: URLs released.
    for (const open of document.querySelectorAll("dialog")) open.close();
    for (const pop of document.querySelectorAll("[popover], .emoji-picker")) pop.remove();
    this.blobs.releaseAll();
    if (why !== "logout") this.session.forget();
    this.onLogout(why);
  }

  async logout() {
    this.voice.leave();
    this.rt.stop();
    try {
      await this.session.logout();
    } catch {
      // The server was not reached: still logged in there, so here too.
      this.rt.start();
      this.toastError("Could not reach the server to log out. You are still logged in; try again.");
    }
  }

  toastError(text) {
    toast(text);
  }

  // --- real time ---------------------------------------------------------------------

  onReady(d) {
    if (!d.resumed) {
      this.store.load(d);
      this.countsInDoubt.clear(); // (counted now)
      this.counted += 1;
      // After a resync the messages we held may have gaps: reload the open channel (and
      // its pins, if shown: the pin events of the gap were never told).
      if (this.view instanceof ChatView) this.view.loadLatest();
      if (this.panel === "pins" && this.route.channelId) this.store.emit(`pins:${this.route.channelId}`);
    } else {
      this.store.resume(d);
    }
    // Presence is not in the log: the member lists shown are asked for theirs again, and
    // the servers not listed here for the presences the ready left in doubt (a
    // co-member's: store.keepServersPresences). After a full ready (a resync) nothing of
    // what the members did meanwhile was told either: the lists held are asked for again
    // whole (their presences with them), those of servers left dropped.
    for (const id of [...this.store.members.keys()]) {
      if (d.resumed) loadPresences(this, id).catch(() => {});
      else if (!this.store.servers.has(id)) this.store.members.delete(id);
      else reloadMembers(this, id).then(() => this.panel === "members" && this.renderMembers(), () => {});
    }
    if (this.store.presencesInDoubt.size || this.store.presencesUnknown.size) this.checkPresences();
    this.voice.afterReady();
    if (!this.readyOnce) {
      this.readyOnce = true;
      this.navigate();
    }
  }

  onEvent(type, d) {
    const unseen = type === "message.deleted" && !this.store.messages.get(d.channel_id)?.find(d.id);
    // (names taken before the event drops what they name)
    const serverName = type === "server.left" ? this.store.servers.get(d.id)?.name : null;
    const hidden = type === "channel.hidden" && d.channel_ids.includes(this.route.channelId) ? this.channelTitle(this.route.channelId) : null;
    const recount = type === "message.created" && this.recounts?.get(d.channel_id);
    const before = recount && recount.running ? this.store.reads.get(d.channel_id)?.unread : null;
    // Your read position moved (another device of yours) in a channel whose unread
    // messages this page does not all hold (never opened, or only its newest page kept):
    // the store cannot count them, so they are counted again here.
    const readFrom = type === "read_state.updated" && d.user_id === this.store.me?.id && !this.store.messages.get(d.channel_id)?.holdsAfter(d.last_read_seq) ? this.store.reads.get(d.channel_id)?.last_read_seq || 0 : null;
    const strangers = this.strangersIn(type, d);
    const counting = this.countsBefore(type, d);
    this.store.apply(type, d);
    if (type === "message.created") notifyMessage(this, d);
    if (counting) this.countsAfter(type, d, counting);
    if (strangers) this.askPresences();
    if (this.store.presencesInDoubt.size || this.store.presencesUnknown.size) this.checkPresences();
    if (before != null && this.store.reads.get(d.channel_id)?.unread > before) recount.arrived.push({ id: d.id, mention: this.store.mentionsMe(d) });
    this.countsMove(type, d);
    if (unseen) this.recountUnread(d.channel_id, d.seq);
    if (readFrom !== null) this.recountRead(d.channel_id, readFrom);
    // Mentions by someone you block do not count (the server's counts say so at the next
    // ready): the channels whose count a block or an unblock may change are counted again.
    if (type === "block.added" || type === "block.removed") {
      for (const [channelId, read] of this.store.reads) if (type === "block.added" ? read.mention_count : read.unread) this.scheduleRecount(channelId);
    }
    // Being moved away is said, with why (a moderator's act, or a deletion).
    if (serverName && d.reason !== "left") {
      const why = { kicked: `You were kicked from ${serverName}.`, banned: `You were banned from ${serverName}.`, deleted: `${serverName} was deleted.` };
      toast(why[d.reason] || `You are no longer in ${serverName}.`, "info");
    }
    if (hidden) {
      toast(d.reason === "deleted" ? `#${hidden} was deleted.` : `You can no longer see #${hidden}.`, "info");
      location.hash = `#/s/${d.server_id}`; // the server's first channel still visible
    } else if ((type === "server.left" && d.id === this.route.serverId) || (type === "conversation.removed" && d.id === this.route.channelId)) {
      location.hash = "#/friends";
    }
    if (type === "member.updated" || type === "role.updated" || type === "channel.updated") this.scheduleChrome();
  }

  // A group or a friendship that brings you someone whose presence you did not see (no
  // group with them, not a friend; a direct conversation alone shows no presence): no
  // presence.updated said whether they are online, so the presences ready would carry
  // are asked for (their changes reach you from then on). A presence held from before
  // does not count: nothing kept it current once you shared nothing.
  strangersIn(type, d) {
    const s = this.store;
    let ids = [];
    if (type === "conversation.created" || type === "conversation.added") ids = d.kind === "group" ? d.participant_ids || [] : [];
    else if (type === "participant.added" && s.conversations.has(d.channel_id)) ids = [d.user_id];
    else if (type === "friend.added") ids = [d.user_id];
    if (!ids.length || !s.me) return false;
    const known = new Set([s.me.id, ...s.friends.keys()]);
    for (const c of s.conversations.values()) if (c.kind === "group") for (const id of c.participant_ids || []) known.add(id);
    return ids.some((id) => !known.has(id));
  }

  // After a quiet spell (0.5-2 s, with jitter: a group's change reaches all its members
  // at once, and several changes are one request), one request at a time, asked again
  // when more strangers came meanwhile. A presence.updated or a ready that arrives
  // while it runs is newer than its answer and wins.
  askPresences() {
    this.presencesAgain = true;
    if (this.presencesAsked) return;
    this.presencesAsked = true;
    setTimeout(() => this.askPresencesNow().finally(() => (this.presencesAsked = false)), 500 + Math.random() * 1500);
  }

  async askPresencesNow() {
    while (this.presencesAgain && !this.ended) {
      this.presencesAgain = false;
      const since = this.store.presenceTick;
      let now;
      try {
        now = await this.session.call("GET", "/api/users/@me/presences");
      } catch {
        continue; // (shown offline until their next change or the next ready)
      }
      if (this.ended || this.store.presencesFrom > since) continue; // (a ready's are newer)
      for (const p of now) this.store.tellPresence(p.user_id, p, since);
      this.store.emit("presence");
    }
  }

  // Presences the store put in doubt (store.dropPresences, store.keepServersPresences):
  // someone a friendship, a group or a server no longer brings, or whom a ready left
  // out, who may still share a server whose members this page has not listed. What a
  // person expects is the truth: online if they are online and still reach this page,
  // not offline until their next change because a server they share was never opened
  // here. So the server is asked who of them it would show (`GET
  // /api/users/@me/presences?user_ids=`, a hundred a request, after a quiet spell of
  // 0.5-2 s with jitter: a member leaving reaches every member at once, and a restarted
  // server sees every page resume at once); someone it lists keeps their presence (as
  // it says it now), someone it leaves out is dropped (sharing nothing now, or offline:
  // shown offline either way). When it could not say (an error), the presence is kept
  // as last told rather than shown wrongly offline. A presence.updated or a ready that
  // comes meanwhile is newer and wins.
  checkPresences() {
    if (this.presencesChecked) return; // (the check under way takes up those that came meanwhile)
    this.presencesChecked = true;
    setTimeout(() => this.checkPresencesNow().finally(() => (this.presencesChecked = false)), 500 + Math.random() * 1500);
  }

  async checkPresencesNow() {
    const s = this.store;
    while ((s.presencesInDoubt.size || s.presencesUnknown.size) && !this.ended) {
      const doubted = [...new Set([...s.presencesInDoubt, ...s.presencesUnknown])].sort().slice(0, PRESENCES_ASKED);
      // (one joined with no presence held: taken if the answer lists them)
      const unknown = new Set(doubted.filter((id) => s.presencesUnknown.has(id)));
      for (const id of doubted) {
        s.presencesInDoubt.delete(id);
        s.presencesUnknown.delete(id);
      }
      const since = s.presenceTick;
      let shown;
      try {
        shown = await this.session.call("GET", `/api/users/@me/presences?user_ids=${doubted.join(",")}`);
      } catch {
        // (kept as last told; a newcomer has none, so they are asked again, after a
        // wait that doubles with each failure, 1 s to a minute)
        if (unknown.size) {
          this.presencesBackoff = Math.min(60000, (this.presencesBackoff || 500) * 2);
          setTimeout(() => {
            for (const id of unknown) s.presencesUnknown.add(id);
            this.checkPresences();
          }, this.presencesBackoff);
        }
        continue;
      }
      this.presencesBackoff = 0;
      if (this.ended) return;
      if (s.presencesFrom > since) continue; // (a ready replaced every presence meanwhile)
      const found = new Map(shown.map((p) => [p.user_id, p]));
      let any = false;
      for (const id of doubted) if ((s.presences.has(id) || unknown.has(id)) && s.tellPresence(id, found.get(id) || null, since)) any = true;
      if (any) s.emit("presence");
    }
  }

  // --- counts no event moves ------------------------------------------------------------
  // Some changes move a server's unread and mention counts with no message to count
  // (README, unread counts): a reveal too large to carry read states (`channels` and
  // `read_states` empty), a role of yours given, taken or deleted (a role's mentions
  // count for whoever holds it), and a text channel whose history you may no longer
  // read (`channel.history_hidden`) or may read again (no event says so: a role's, an
  // override's or your member's change, judged here by perms.js before and after it).
  // The server counts them again (countServersAgain).
  countsBefore(type, d) {
    const s = this.store;
    if (type === "channel.revealed" && d.channel_ids?.length && !d.channels?.length) return { doubt: d.server_id };
    if (type === "channel.history_hidden") return { doubt: d.server_id };
    let serverId = null;
    if (type === "member.updated") serverId = d.user?.id === s.me?.id ? d.server_id : null;
    else if (type === "role.updated" || type === "role.deleted" || type === "channel.updated") serverId = d.server_id;
    else if (type === "server.updated") serverId = d.id; // (a new owner)
    const server = serverId && s.servers.get(serverId);
    if (!server || !server.member) return null;
    // (a channel's change is its own: a category's children each come as theirs)
    const only = type === "channel.updated" ? d.id : null;
    return { server: serverId, only, roles: [...server.member.role_ids].sort().join(), history: this.historyStates(server, only) };
  }

  countsAfter(type, d, before) {
    if (before.doubt) {
      if (type === "channel.history_hidden") this.historyMoved(d.channel_ids);
      return this.countServersAgain(before.doubt);
    }
    const server = this.store.servers.get(before.server);
    if (!server || !server.member) return;
    const history = this.historyStates(server, before.only);
    const changed = [...history].filter(([id, state]) => state !== before.history.get(id));
    if ([...server.member.role_ids].sort().join() !== before.roles || changed.length) this.countServersAgain(before.server);
    // (readable again, or no longer, and still seen: a channel no longer seen is left to
    // its channel.hidden)
    const was = (id) => before.history.get(id);
    this.historyMoved(changed.filter(([id, state]) => state && was(id) && (state === "read") !== (was(id) === "read")).map(([id]) => id));
  }

  // Channels whose history became readable or not: the open one is loaded as it is now;
  // the others' windows, kept from an earlier visit, are dropped (as
  // store.dropServerChannels does), so that opening one loads it anew (a window held
  // while the history was hidden would show the notice and no history; one held from
  // before would offer older pages the server now refuses).
  historyMoved(ids) {
    const open = this.view instanceof ChatView ? this.view.channelId : null;
    for (const id of ids) {
      if (id === open) this.view.loadLatest();
      else this.store.messages.delete(id);
    }
  }

  // Of a server's text channels (or only the one named): id -> "read" (you may read its
  // history), "seen" (you see it only) or "" (you do not see it).
  historyStates(server, only) {
    const state = (perms) => (has(perms, P.READ_MESSAGE_HISTORY) ? "read" : has(perms, P.VIEW_CHANNEL) ? "seen" : "");
    return new Map(server.channels.filter((c) => c.kind === "text" && (!only || c.id === only)).map((c) => [c.id, state(channelPermissions(server, c))]));
  }

  // One GET /api/users/@me/state after a quiet spell of 1 s and a random share of 5 s,
  // or of 5 ms a member of the server up to a minute (a role change reaches every member
  // holding it at once: ten thousand pages ask over 50 s, not at once; several changes
  // are one request); its
  // read states replace those of the servers in doubt. A message of one of those
  // servers that comes while it is asked may or may not be counted in its answer, so
  // then it is asked again, at most three times in a row (the last answer is kept). A
  // server the answer leaves out (past its 4 MiB of servers) keeps its counts; a full
  // ready meanwhile counted everything.
  countServersAgain(serverId) {
    this.countsInDoubt.add(serverId);
    if (this.countsAsked) return;
    this.countsAsked = true;
    const members = this.store.servers.get(serverId)?.member_count || 0;
    const spread = Math.min(60000, Math.max(5000, 5 * members));
    // (a request that failed leaves the servers doubted while it ran: asked after a spell of their own)
    const next = () => {
      this.countsAsked = false;
      const left = this.countsInDoubt.values().next();
      if (!left.done && !this.ended) this.countServersAgain(left.value);
    };
    setTimeout(() => this.countServersNow().finally(next), 1000 + Math.random() * spread);
  }

  async countServersNow() {
    const s = this.store;
    for (let tries = 1; this.countsInDoubt.size && !this.ended; tries++) {
      const doubted = new Set(this.countsInDoubt);
      this.countsInDoubt.clear();
      const counted = this.counted;
      this.countsMoved = false; // (set by a message of a doubted server: see countsMove)
      this.countsDoubted = doubted;
      let state;
      try {
        state = await this.session.call("GET", "/api/users/@me/state");
      } catch {
        return; // (a badge is a nicety: the next ready counts it again)
      } finally {
        this.countsDoubted = null;
      }
      if (this.ended || this.counted !== counted) continue;
      if (this.countsMoved && tries < 3) {
        for (const id of doubted) this.countsInDoubt.add(id);
        await new Promise((done) => setTimeout(done, 1000 + Math.random() * 2000)); // (not at once: a busy server's pages would all ask again together)
        continue;
      }
      for (const server of state.servers || []) {
        const mine = doubted.has(server.id) && s.servers.get(server.id);
        if (!mine) continue;
        const known = new Set(mine.channels.map((c) => c.id));
        for (const r of server.read_states || []) if (known.has(r.channel_id)) s.reads.set(r.channel_id, r);
      }
      s.emit("reads");
    }
  }

  // A message came, changed, went or was read in a channel of a server being counted
  // again.
  countsMove(type, d) {
    if (!this.countsDoubted || !COUNTED.has(type)) return;
    const server = this.store.serverOf(d.channel_id);
    if (server && this.countsDoubted.has(server.id)) this.countsMoved = true;
  }

  // A message this page never loaded was deleted: if it was unread, the channel's
  // unread and mention counts are counted again from what is unread now. One recount
  // per channel at a time, after a quiet spell (0.5-2 s, with jitter: a bulk delete
  // reaches every viewer at once), run once more if deletions came meanwhile.
  recountUnread(channelId, seq) {
    const read = this.store.reads.get(channelId);
    if (!read || seq <= read.last_read_seq || !(read.unread || read.mention_count)) return;
    this.scheduleRecount(channelId);
  }

  // The read position moved from `from`: forward, the counts can only fall (none to
  // count at 0); back (marked unread), they may rise.
  recountRead(channelId, from) {
    const read = this.store.reads.get(channelId);
    if (!read || (read.last_read_seq >= from && !(read.unread || read.mention_count))) return;
    this.scheduleRecount(channelId);
  }

  scheduleRecount(channelId) {
    this.recounts = this.recounts || new Map(); // channel id -> {timer, running, again}
    let r = this.recounts.get(channelId);
    if (!r) this.recounts.set(channelId, (r = { timer: null, running: false, again: false, arrived: [] }));
    if (r.running) {
      r.again = true;
      return;
    }
    clearTimeout(r.timer);
    r.timer = setTimeout(() => this.runRecount(channelId, r), 500 + Math.random() * 1500);
  }

  async runRecount(channelId, r) {
    r.timer = null;
    r.running = true;
    r.again = false;
    const read = this.store.reads.get(channelId);
    const since = read ? read.last_read_seq : 0;
    r.arrived = []; // (messages counted while the page is asked for: see onEvent)
    try {
      if (!read || this.ended) return;
      const { data, headers } = await this.session.call("GET", `/api/channels/${channelId}/messages?after=${since}&limit=100`, null, { raw: true });
      const now = this.store.reads.get(channelId);
      if (!now || now.last_read_seq !== since) return; // (read meanwhile)
      const seen = data.reduce((top, m) => Math.max(top, m.seq || 0), since);
      const unread = data.filter((m) => !m.deleted && m.author && m.author.id !== this.store.me.id);
      const mentions = unread.filter((m) => this.store.mentionsMe(m)).length;
      if (headers.get("X-Has-More") === "true") {
        // More than a page: the count stays as it is (at the server's cap, "100+", a
        // deletion cannot be placed), the mentions no fewer than the page shows.
        now.mention_count = Math.max(mentions, Math.min(now.mention_count, now.unread));
      } else {
        // Counted as they arrived during the request, and not in its answer: kept.
        const answered = new Set(data.map((m) => m.id));
        const extra = r.arrived.filter((a) => !answered.has(a.id));
        now.unread = unread.length + extra.length;
        now.mention_count = mentions + extra.filter((a) => a.mention).length;
      }
      this.store.emit("reads");
    } catch {
      // (a badge is a nicety: the next ready or read counts it again)
    } finally {
      r.running = false;
      if (r.again && !this.ended) {
        r.again = false;
        r.timer = setTimeout(() => this.runRecount(channelId, r), 500 + Math.random() * 1500);
      } else if (!r.timer) this.recounts.delete(channelId);
    }
  }

  setStatus(text) {
    this.statusBar.hidden = !text;
    this.statusBar.textContent = text || "";
  }

  // --- layout ------------------------------------------------------------------------

  buildLayout() {
    // Picking a server on a phone keeps the drawer open: a channel is picked next.
    this.rail = h("nav", { class: "rail", "aria-label": "Servers", onclick: () => (this.keepNav = true) });
    this.sideList = h("div", { class: "side-list" });
    this.userPanel = h("div", { class: "user-area" });
    const pick = (ev) => {
      const link = ev.target.closest("a");
      if (!link || !this.root.classList.contains("nav-open")) return;
      // (a phone: the drawer goes, and the focus with it; it is given to the page picked)
      this.root.classList.remove("nav-open");
      if (link.getAttribute("href") === location.hash) this.focusMain();
      else this.focusAfterNav = true;
    };
    this.sidebar = h("nav", { class: "sidebar", "aria-label": "Channels", onclick: pick }, this.sideList, this.userPanel);
    this.searchForm = searchBox(this);
    this.searchInput = this.searchForm.querySelector("input");
    // (the head's buttons and title are patched in place, beside the search box that is
    // never redrawn: see renderHead)
    this.headButtons = h("span", { class: "head-buttons" });
    this.headTitle = h("span", { class: "head-title" });
    this.headActions = h("div", { class: "head-actions", hidden: true }, this.headButtons, this.searchForm);
    this.mainHead = h("header", { class: "main-head" }, this.headTitle, this.headActions);
    this.mainBody = h("div", { class: "main-body" });
    this.main = h("main", { class: "main", id: "main" }, this.mainHead, this.mainBody);
    this.aside = h("aside", { class: "aside", "aria-label": "Details" });
    this.statusBar = h("div", { class: "status-bar", role: "status", hidden: true });
    this.root.className = "app";
    replace(
      this.root,
      h("a", { class: "skip-link", href: "#main", onclick: (ev) => { ev.preventDefault(); this.view && this.view.focusComposer && this.view.focusComposer(); } }, "Skip to the conversation"),
      this.statusBar,
      h("div", { class: "layout" }, this.rail, this.sidebar, this.main, this.aside),
    );
    replace(this.mainBody, h("p", { class: "empty-note" }, "Connecting…"));
    this.root.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && !ev.defaultPrevented && this.root.classList.contains("nav-open")) {
        ev.preventDefault();
        this.closeNav();
      }
    });
  }

  // A phone's drawer of servers and channels (☰). The button is under it while it is
  // open, so the focus goes in with it (to the channel or server shown), and comes back
  // out when it closes (Escape: to ☰; a pick: to the heading of the page picked, which a
  // screen reader then says; not the message box, whose focus would bring a phone's
  // keyboard up over the messages).
  openNav() {
    this.focusAfterNav = false;
    this.root.classList.add("nav-open");
    const current = this.sidebar.querySelector('[aria-current="page"]') || this.rail.querySelector('[aria-current="page"]');
    const to = current || this.sidebar.querySelector("a, button") || this.rail.querySelector("a, button");
    if (to) to.focus();
  }

  closeNav() {
    this.root.classList.remove("nav-open");
    const toggle = this.mainHead.querySelector(".nav-toggle");
    if (toggle) toggle.focus();
  }

  focusMain() {
    const title = this.main.querySelector("h1");
    if (title) title.focus();
  }

  scheduleChrome() {
    if (this.chromeQueued) return;
    this.chromeQueued = true;
    requestAnimationFrame(() => {
      this.chromeQueued = false;
      this.refreshChrome();
    });
  }

  refreshChrome() {
    if (!this.store.me) return;
    const focus = this.chromeFocus();
    morph(this.rail, renderRail(this));
    const server = this.route.view === "server" ? this.store.servers.get(this.route.serverId) : null;
    morph(this.sideList, server ? renderServerSidebar(this, server) : renderHomeSidebar(this));
    morph(this.userPanel, renderUserPanel(this));
    this.renderHead();
    if (this.panel === "members") this.renderMembers();
    this.root.classList.toggle("show-aside", this.panel !== "none" && this.route.view !== "friends");
    if (focus) focus();
  }

  // The chrome is redrawn on every store event (a presence change, a new message's
  // unread mark): a keyboard user's focus on a link or button there would fall back to
  // the page at each. Returns what puts it on the element drawn in its place (a link to
  // the same place, whatever its label now says: "general" became "general, unread" as
  // a message came in; else the same kind of control with the same label), if it is in
  // the chrome.
  chromeFocus() {
    const active = document.activeElement;
    const areas = [this.rail, this.sideList, this.userPanel, this.mainHead, this.aside];
    const area = active && active !== document.body ? areas.find((a) => a.contains(active)) : null;
    if (!area) return null;
    const key = (el) => el.getAttribute("href") ? `${el.tagName}|${el.getAttribute("href")}` : `${el.tagName}||${el.getAttribute("aria-label") || el.textContent.trim()}`;
    const was = key(active);
    return () => {
      if (area.contains(active) && key(active) === was) return; // (kept: the search box, or a control morph() kept)
      const again = [...area.querySelectorAll("a, button")].find((el) => key(el) === was);
      if (again) again.focus({ preventScroll: true });
    };
  }

  markSpeaking(set) {
    for (const el of document.querySelectorAll(".voice-member")) el.classList.toggle("speaking", set.has(el.dataset.userId));
  }

  // --- routes ------------------------------------------------------------------------

  firstChannel(server) {
    const groups = sortedChannels(server);
    for (const g of groups) for (const c of g.channels) if (c.kind === "text") return c;
    return null;
  }

  navigate() {
    if (!this.store.me) return;
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    if (parts[0] === "invite") {
      // An invite link: say where it leads over the page one was on (or the friends).
      history.replaceState(null, "", this.route.view === "loading" ? "#/friends" : this.hashOf(this.route));
      invitePreview(this, parts[1] || ""); // (a code is letters and digits: nothing to decode)
      if (this.route.view !== "loading") return;
      parts.splice(0, parts.length, "friends");
    }
    let route;
    if (parts[0] === "s" && this.store.servers.has(parts[1])) {
      const server = this.store.servers.get(parts[1]);
      const ch = this.store.channels.get(parts[2]);
      const channel = ch && ch.server_id === server.id && ch.kind === "text" ? ch : this.firstChannel(server);
      route = { view: "server", serverId: server.id, channelId: channel ? channel.id : null };
    } else if (parts[0] === "dm" && this.store.conversations.has(parts[1])) {
      route = { view: "dm", channelId: parts[1] };
    } else {
      route = { view: "friends" };
    }
    const same = this.route.view === route.view && this.route.channelId === route.channelId && this.view;
    this.route = route;
    this.store.view(route.channelId || null);
    if (!this.keepNav) this.root.classList.remove("nav-open"); // (a phone's drawer)
    this.keepNav = false;
    if (!same) {
      if (this.view) this.view.destroy();
      if (this.panel === "search" || this.panel === "pins") this.panel = this.defaultPanel();
      if (route.channelId) {
        this.view = new ChatView(this, route.channelId);
        this.view.mount(this.mainBody);
        if (this.pendingJump) {
          const id = this.pendingJump;
          this.pendingJump = null;
          setTimeout(() => this.view.jumpTo(id), 0);
        }
      } else if (route.view === "friends") {
        this.view = new FriendsView(this);
        this.view.mount(this.mainBody);
      } else {
        this.view = null;
        replace(this.mainBody, h("p", { class: "empty-note" }, "No text channel here that you can see."));
      }
    }
    this.refreshChrome();
    if (this.focusAfterNav) {
      this.focusAfterNav = false;
      this.focusMain();
    }
  }

  hashOf(route) {
    if (route.view === "server") return route.channelId ? `#/s/${route.serverId}/${route.channelId}` : `#/s/${route.serverId}`;
    return route.view === "dm" ? `#/dm/${route.channelId}` : "#/friends";
  }

  channelTitle(channelId) {
    const ch = this.store.channels.get(channelId);
    if (ch) return ch.name;
    const conv = this.store.conversations.get(channelId);
    return conv ? convTitle(this.store, conv) : "unknown";
  }

  openMessage(channelId, messageId) {
    // (on a phone the panel a result or a pin was picked in covers the message)
    if (this.narrow.matches && this.panel !== "none") this.closePanel();
    const ch = this.store.channels.get(channelId);
    const hash = ch ? `#/s/${ch.server_id}/${channelId}` : `#/dm/${channelId}`;
    if (this.route.channelId === channelId && this.view instanceof ChatView) {
      this.view.jumpTo(messageId);
    } else {
      this.pendingJump = messageId;
      location.hash = hash;
    }
  }

  // --- the main header and the right side --------------------------------------------

  // The head's title and buttons are patched in place (morph: a press on one survives
  // the redraw that every new message's unread mark brings); the search box beside them
  // stays in the document as it is: see searchBox.
  renderHead() {
    const r = this.route;
    const navToggle = h("button", { class: "icon-btn nav-toggle", type: "button", "aria-label": "Open navigation", "aria-expanded": "false", onclick: () => this.openNav() }, "☰");
    // Friends, and before the first route: no channel, so only ☰ (a phone still shows
    // the hidden head for it).
    const bare = r.view === "friends" || r.view === "loading";
    this.mainHead.hidden = bare;
    this.headActions.hidden = bare;
    // A new channel (or none), or the results closed, empties the box; typing never
    // re-renders it.
    const scopeKey = bare ? r.view : `${r.view}/${r.serverId}/${r.channelId}`;
    if (scopeKey !== this.searchScopeKey || (this.searchShown && this.panel !== "search")) this.searchInput.value = "";
    this.searchScopeKey = scopeKey;
    this.searchShown = this.panel === "search";
    if (bare) {
      morph(this.headTitle, navToggle);
      morph(this.headButtons);
      return;
    }
    const ch = this.store.channels.get(r.channelId);
    const conv = this.store.conversations.get(r.channelId);
    const toggle = (panel, labelText, icon) =>
      h("button", { class: ["icon-btn", this.panel === panel && "on"], type: "button", "aria-pressed": String(this.panel === panel), "aria-label": labelText, title: labelText, onclick: () => this.togglePanel(panel) }, icon);
    morph(
      this.headButtons,
      ch || conv ? this.muteButton("channel", r.channelId, ch ? "channel" : "conversation") : null,
      ch || conv ? this.notifyButton("channel", r.channelId, ch ? "channel" : "conversation") : null,
      conv ? h("button", { class: "icon-btn", type: "button", "aria-label": "Start a voice call", title: "Start a voice call", onclick: () => this.joinVoice(conv.id) }, "📞") : null,
      toggle("pins", "Pinned messages", "📌"),
      toggle("members", "Member list", "👥"),
    );
    morph(
      this.headTitle,
      navToggle,
      h("h1", { class: "main-title", tabindex: "-1" }, h("span", { class: "channel-icon", "aria-hidden": "true" }, ch ? "#" : conv && conv.kind === "group" ? "👥" : "@"), h("span", { class: "title-text" }, this.channelTitle(r.channelId))),
      ch && ch.topic ? h("span", { class: "topic" }, ch.topic) : null,
    );
  }

  searchScope() {
    const r = this.route;
    return r.view === "server" ? { server_id: r.serverId } : { conversation_id: r.channelId };
  }

  togglePanel(panel) {
    this.panel = this.panel === panel ? "none" : panel;
    if (this.panel === "pins") this.showPins(this.route.channelId);
    this.refreshChrome();
  }

  defaultPanel() {
    return this.narrow.matches ? "none" : "members";
  }

  closePanel() {
    this.panel = this.defaultPanel();
    this.refreshChrome();
  }

  renderMembers() {
    const r = this.route;
    if (r.view === "server") {
      const server = this.store.servers.get(r.serverId);
      if (server) renderServerMembers(this, server, this.aside);
    } else if (r.view === "dm") {
      const conv = this.store.conversations.get(r.channelId);
      if (conv) renderParticipants(this, conv, this.aside);
    }
  }

  showSearch(query, scope) {
    this.panel = "search";
    this.root.classList.add("show-aside");
    this.refreshChrome();
    renderSearch(this, query, scope, this.aside);
  }

  async showPins(channelId) {
    this.panel = "pins";
    this.root.classList.add("show-aside");
    // This opening of the panel: an earlier one's listener (closed, opened again, or
    // another channel's) finds it is no longer the one shown and goes, drawing nothing.
    const shown = {};
    this.pinsShown = shown;
    const gone = () => this.panel !== "pins" || this.pinsShown !== shown;
    const draw = async () => {
      if (gone()) return off();
      try {
        const pins = await this.session.call("GET", `/api/channels/${channelId}/pins`);
        if (gone()) return off(); // (closed, or another channel, while they came)
        const server = this.store.serverOf(channelId);
        const ctx = { store: this.store, server, name: (user) => this.store.nameIn(server, user), can: {}, reactors: new Map(), whoReacted: () => {}, jump: () => {}, loadImage: (u, img) => this.blobs.show(u, img), openImage: (a) => showImage(this.blobs, a), download: (a) => this.blobs.download(a), showPins: () => {}, panel: true };
        replace(
          this.aside,
          h("header", { class: "panel-head" }, h("h2", null, "Pinned messages"), h("button", { class: "icon-btn", type: "button", "aria-label": "Close pins", onclick: () => this.closePanel() }, "✕")),
          pins.length
            ? h("ol", { class: "pins" }, pins.map((m) => h("li", { class: "pin" }, h("ol", { class: "messages" }, renderMessage(m, true, ctx)), h("button", { class: "btn btn-small", type: "button", onclick: () => this.openMessage(channelId, m.id) }, "Jump"))))
            : h("p", { class: "muted pad" }, "No pinned messages yet."),
        );
      } catch (err) {
        toast(describe(err));
      }
    };
    // Drawn again when a pin comes or goes: one request at a time, and at most one a
    // PINS_GAP_MS, for all the changes told meanwhile. (Asked at every event, a member
    // pinning and unpinning as fast as they may, in a conversation where anyone may,
    // had this page fetch and draw up to 50 messages ten times a second, spending its own
    // rate limit on it: its person's sends were refused.)
    let busy = false;
    let again = false;
    let last = -Infinity;
    const redraw = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          const wait = last + PINS_GAP_MS - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          last = performance.now();
          await draw();
        } while (again && !gone());
      } finally {
        busy = false;
      }
    };
    const off = this.store.on(`pins:${channelId}`, redraw);
    this.refreshChrome();
    await redraw();
  }

  // --- people, servers, voice --------------------------------------------------------

  // Users the page has not met (mentioned by id in a message): asked for once, in
  // batches of up to 100; the views are drawn again when they come. Ids the server
  // refuses (a 4xx) are not asked for again; a batch not answered (a 5xx, the network)
  // is asked again later, with a back-off, not at every redraw.
  lookupUsers(ids) {
    this.askedUsers = this.askedUsers || new Set();
    const want = [...new Set(ids.map((id) => id.toLowerCase()))].filter((id) => !this.store.users.has(id) && !this.askedUsers.has(id));
    for (const id of want) this.askedUsers.add(id);
    for (let i = 0; i < want.length; i += 100) this.askUsers(want.slice(i, i + 100), 0);
  }

  askUsers(part, failures) {
    this.session
      .call("GET", `/api/users?ids=${part.join(",")}`)
      .then((users) => {
        for (const u of users) this.store.remember(u);
        if (users.length) this.store.emit("users");
      })
      .catch((err) => {
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) return; // (kept as asked)
        if (this.ended || failures >= 5) return;
        setTimeout(() => this.askUsers(part, failures + 1), retryDelay(err, failures + 1));
      });
  }

  profile(user) {
    const me = user.id === this.store.me.id;
    // The custom status is presence, not profile: it comes with the presence held
    // (none while they are offline or invisible; your own always).
    const p = this.store.presences.get(user.id);
    const text = p ? p.status_text : null;
    const d = dialog(displayName(user), [
      h("div", { class: "profile" }, avatar(user, "lg"), h("div", null, h("strong", null, displayName(user)), h("p", { class: "muted" }, `@${user.username}`), text ? h("p", { class: "custom-status" }, text) : null, h("p", { class: "muted" }, p ? p.status : "offline"))),
      me ? null : h("div", { class: "row-end" }, h("button", { class: "btn btn-primary", type: "button", onclick: () => { d.close(); this.openDirect(user.id); } }, "Message")),
    ]);
  }

  async openDirect(userId) {
    try {
      this.showConversation(await this.session.call("POST", "/api/conversations", { kind: "direct", user_id: userId }));
    } catch (err) {
      const who = displayName(this.store.user(userId));
      toast(err.code === "CANNOT_MESSAGE_USER" ? `${who} does not take direct messages from you.` : describe(err));
    }
  }

  showConversation(conv) {
    this.store.addConversation(conv);
    location.hash = `#/dm/${conv.id}`;
    this.store.emit("conversations");
  }

  openAccount() {
    openAccount(this);
  }

  createGroup() {
    createGroupDialog(this);
  }

  addServerDialog() {
    addServerDialog(this);
  }

  inviteDialog(server) {
    inviteDialog(this, server);
  }

  // --- mutes: a muted channel, conversation or server shows no unread (its mentions
  // still count); only this account's clients change (the server counts as ever).

  mutesChanged() {
    this.armMuteTimer();
    this.scheduleChrome();
  }

  // Redraw when the next mute ends (timers of at most an hour: a long one re-arms).
  armMuteTimer() {
    clearTimeout(this.muteTimer);
    const next = this.store.nextMuteEnd();
    if (next === null || this.ended) return;
    const wait = Math.min(Math.max(next - Date.now(), 0) + 50, 3600 * 1000);
    this.muteTimer = setTimeout(() => this.mutesChanged(), wait);
  }

  // The head's (or the server's) mute button: unmute at once, or choose for how long.
  muteButton(kind, id, noun) {
    const on = Boolean(this.store.muteOf(id));
    const label = `${on ? "Unmute" : "Mute"} ${noun}`;
    return h("button", { class: ["icon-btn", on && "on"], type: "button", "aria-pressed": String(on), "aria-label": label, title: label, onclick: () => (on ? this.unmute(kind, id) : this.muteDialog(kind, id, noun)) }, on ? "🔕" : "🔔");
  }

  // The head's (or the server's) notification settings button (ui/notify.js).
  notifyButton(kind, id, noun) {
    return notifyButton(this, kind, id, noun);
  }

  muteDialog(kind, id, noun) {
    const choices = [
      ["For 15 minutes", 15 * 60],
      ["For 1 hour", 3600],
      ["For 8 hours", 8 * 3600],
      ["For 24 hours", 24 * 3600],
      ["Until I turn it back on", null],
    ];
    const pick = async (seconds, button) => {
      const until = seconds === null ? null : new Date(Date.now() + seconds * 1000).toISOString();
      button.disabled = true;
      try {
        this.store.apply("mute.updated", await this.session.call("PUT", `/api/users/@me/mutes/${kind}/${id}`, { until }));
        d.close();
      } catch (err) {
        button.disabled = false;
        toast(describe(err));
      }
    };
    const list = h("ul", { class: "mute-choices" }, choices.map(([text, seconds]) => h("li", null, h("button", { class: "btn", type: "button", onclick: (ev) => pick(seconds, ev.currentTarget) }, text))));
    const d = dialog(`Mute ${noun}`, [h("p", { class: "muted" }, "Its unread messages are not shown; mentions of you still are."), list]);
    list.querySelector("button").focus();
  }

  async unmute(kind, id) {
    try {
      await this.session.call("DELETE", `/api/users/@me/mutes/${kind}/${id}`);
      this.store.apply("mute.removed", { kind, id });
    } catch (err) {
      toast(describe(err));
    }
  }

  async leaveServer(server) {
    if (!(await confirmDialog("Leave server", `Leave ${server.name}?`, "Leave"))) return;
    try {
      await this.session.call("DELETE", `/api/servers/${server.id}/members/@me`);
    } catch (err) {
      toast(describe(err));
    }
  }

  openSettings(server) {
    openSettings(this, server);
  }

  async joinVoice(channelId) {
    if (this.voice.channelId === channelId) return;
    const ch = this.store.channels.get(channelId);
    if (ch && !has(channelPermissions(this.store.servers.get(ch.server_id), ch), P.CONNECT)) return toast("You may not join this voice channel");
    try {
      await this.voice.join(channelId);
    } catch (err) {
      toast(`Voice: ${describe(err)}`);
    }
  }

  voiceToggle(what) {
    this.voice.toggle(what);
  }
}
