// The client's copy of the user's world: built from `ready`, kept current by applying
// every event in order. Views subscribe to topics ("servers", "channel:<id>", ...) and
// redraw what changed.

// Whether the person is away from the page: it is hidden (another tab in front, the
// window minimised) or its window does not have the focus. What comes meanwhile is not
// seen (not read, and under a "New" divider when they are back).
export function away() {
  return document.visibilityState === "hidden" || !document.hasFocus();
}

export class Store {
  constructor() {
    this.listeners = new Map();
    this.reset();
  }

  reset() {
    this.me = null;
    this.servers = new Map();
    this.channels = new Map(); // server channels by id
    this.conversations = new Map();
    this.reads = new Map(); // channel id -> {last_read_seq, unread, mention_count}
    this.friends = new Map();
    this.incoming = new Map();
    this.outgoing = new Map();
    this.blocks = new Map();
    this.privacy = null; // {direct_messages}, once asked for (or changed elsewhere)
    this.mutes = new Map(); // channel or server id -> {kind, id, until} (see muted())
    this.notifySettings = new Map(); // channel or server id -> {kind, id, level, suppress_everyone}
    this.presences = new Map();
    // Presences applied, counted (never reset): a ready's whole set, or one user's
    // presence.updated. What ui/app.js askPresences compares its answer's age with.
    this.presenceTick = (this.presenceTick || 0) + 1;
    this.presencesFrom = this.presenceTick; // the tick of the latest ready
    this.presenceAt = new Map(); // user id -> the tick of their latest presence.updated
    // Presences that may no longer reach the page, or may still come through a server
    // whose member list is not loaded (see dropPresences, keepServersPresences):
    // ui/app.js checkPresences asks.
    this.presencesInDoubt = new Set();
    // Members who joined a server of yours with no presence held: joining changes no
    // presence, so no presence.updated says whether they are online; checkPresences asks.
    this.presencesUnknown = new Set();
    this.voice = new Map(); // user id -> voice state (one channel each)
    this.users = new Map();
    this.members = new Map(); // server id -> Map(user id -> member), loaded on demand
    this.messages = new Map(); // channel id -> Timeline
    this.typing = new Map(); // channel id -> Map(user id -> expiry ms)
    this.viewing = null; // the channel on screen
    this.atNewest = false; // whether its newest messages are on screen (ui/chat.js)
    // Where the "New" divider of this visit stands: above the first unread message after
    // this seq (null: none). Set when the channel is opened with something unread (its
    // read position then), or when others' messages come while the person is away (see
    // arrivedWhileAway); the reads acked meanwhile move the read position, not the divider.
    this.newAfter = null;
    this.heldUnread = null; // the channel on screen marked unread in this visit (markUnread)
  }

  on(topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic).add(fn);
    return () => this.listeners.get(topic).delete(fn);
  }

  emit(...topics) {
    for (const topic of topics) for (const fn of this.listeners.get(topic) || []) fn(topic);
  }

  // --- the state on connect ----------------------------------------------------------

  load(state) {
    const { viewing, newAfter, heldUnread, presences } = this;
    const members = this.members;
    this.reset();
    this.viewing = viewing;
    this.newAfter = newAfter;
    this.heldUnread = heldUnread;
    this.members = members;
    this.me = state.user;
    this.remember(state.user);
    for (const c of state.conversations) this.addConversation(c);
    for (const f of state.friends) this.addFriend(f.user, f.since);
    for (const r of state.friend_requests.incoming) this.incoming.set(r.id, r);
    for (const r of state.friend_requests.outgoing) this.outgoing.set(r.id, r);
    for (const r of [...this.incoming.values(), ...this.outgoing.values()]) this.remember(r.user);
    for (const b of state.blocks) this.blocks.set(b.id, b);
    for (const p of state.presences) this.presences.set(p.user_id, p);
    this.presences.set(this.me.id, { user_id: this.me.id, status: this.me.status, status_text: this.me.status_text });
    for (const v of state.voice_states) this.voice.set(v.user_id, v);
    for (const m of state.mutes || []) this.mutes.set(m.id, m);
    for (const n of state.notification_settings || []) this.notifySettings.set(n.id, n);
    for (const s of state.servers) this.addServer(s);
    this.keepServersPresences(presences);
    this.emit("all");
  }

  // A resumed ready: the log keeps no presence, so it says who is online now (the
  // people of your conversations and your friends: anyone absent is offline) and the
  // status and custom status you chose. The presences of the members of the lists shown
  // are fetched again (ui/members.js loadPresences); those of servers not listed here
  // are kept in doubt and asked (keepServersPresences).
  resume(state) {
    if (!state.presences || !this.me) return;
    const held = this.presences;
    this.presences = new Map(state.presences.map((p) => [p.user_id, p]));
    this.presencesFrom = ++this.presenceTick;
    this.presencesInDoubt.clear(); // (those held are replaced)
    this.presencesUnknown.clear(); // (a server's, if its list is shown, are asked again)
    this.me.status = state.status;
    if (state.status_text !== undefined) this.me.status_text = state.status_text;
    this.presences.set(this.me.id, { user_id: this.me.id, status: this.me.status, status_text: this.me.status_text });
    this.keepServersPresences(held);
    this.emit("presence");
  }

  // A ready (resumed, or fresh after a resync) carries your friends' and groups'
  // presences only; those `held` before it that a server whose members are not listed
  // here may carry (a co-member's, told by presence.updated through that server) it
  // leaves out, though the person may well be online still: replaced, they would show
  // offline until their next change. So each is kept as it was and put in doubt, as
  // when a server is left (dropPresences): ui/app.js asks the server whether it would
  // still show it (GET /api/users/@me/presences?user_ids=), and keeps it only if so. (One shown offline needs
  // nothing: offline either way. Someone of a listed server is asked again with the
  // list's presences; a friend's or a group member's absence from ready says offline.)
  keepServersPresences(held) {
    for (const [id, p] of held) {
      if (this.presences.has(id) || p.status === "offline" || this.presenceReaches(id) !== null) continue;
      this.presences.set(id, p);
      this.presencesInDoubt.add(id);
    }
  }

  // The channel on screen is now `channelId` (null: none): a visit begins, and where its
  // unread messages began is kept for it (see newAfter).
  view(channelId) {
    if (channelId === this.viewing) return;
    this.viewing = channelId;
    this.heldUnread = null; // (a visit reads as ever, after a "Mark unread" too)
    const read = channelId ? this.reads.get(channelId) : null;
    this.newAfter = read && read.unread > 0 ? read.last_read_seq : null;
  }

  // "Mark unread" in the channel on screen (ui/chat.js): what is after `seq` counts as
  // unread again, the messages seen as they came too, and so do those that come while
  // it stays on screen; the "New" line goes above the first of them. Whether the
  // counts are exact: a window reached by a jump holds neither the newest messages nor
  // all that are unread now, so what it holds after `seq` counts at least (the one
  // marked among them), and the caller has the server count the rest (was: left at 0,
  // the channel showed read).
  markUnread(channelId, seq) {
    const t = this.messages.get(channelId);
    if (t) for (const m of t.list) if (m.seq > seq) delete m.uncounted;
    this.heldUnread = channelId;
    this.newAfter = seq;
    this.apply("read_state.updated", { user_id: this.me.id, channel_id: channelId, last_read_seq: seq });
    if (t && t.holdsAfter(seq)) return true;
    const read = this.reads.get(channelId);
    const after = t ? t.list.filter((m) => m.seq > seq && m.author.id !== this.me.id && !m.deleted) : [];
    read.unread = Math.max(read.unread, after.length);
    read.mention_count = Math.max(read.mention_count, after.filter((m) => this.mentionsMe(m)).length);
    this.emit("reads");
    return false;
  }

  // Someone else's message `m` came into the channel on screen while the person was away
  // (`read`: its read state before it is counted): the "New" divider goes above it when
  // they are back (as Discord draws it), unless this visit's divider still marks
  // messages unread above it (one divider: at the first message unread since they left
  // or, when they had not read all of it, since the channel was opened).
  arrivedWhileAway(m, read) {
    const marking = this.newAfter !== null && read.last_read_seq <= this.newAfter && read.unread > 0;
    if (!marking) this.newAfter = m.seq - 1;
  }

  remember(user) {
    if (user && user.id) this.users.set(user.id, { ...this.users.get(user.id), ...user });
  }

  user(id) {
    return this.users.get(id) || { id, username: "unknown", display_name: null };
  }

  // The name to show for a user (an id, or a user as a message carries it) in `server`
  // (null: a conversation).
  nameIn(server, user) {
    const u = typeof user === "string" ? this.user(user) : user || {};
    if (server) {
      // The server nickname, as its member list shows it.
      const list = this.members.get(server.id);
      const member = (list && list.get(u.id)) || (server.member && server.member.user.id === u.id ? server.member : null);
      if (member && member.nickname) return member.nickname;
    }
    const known = this.users.get(u.id);
    return u.display_name || u.username || (known && (known.display_name || known.username)) || "Unknown";
  }

  addConversation(c) {
    const had = this.conversations.get(c.id) || {};
    this.conversations.set(c.id, { ...had, ...c });
    for (const p of c.participants || []) this.remember(p);
    if (c.last_read_seq !== undefined) {
      this.reads.set(c.id, { last_read_seq: c.last_read_seq, unread: c.unread, mention_count: c.mention_count });
    } else if (!this.reads.has(c.id)) {
      this.reads.set(c.id, { last_read_seq: 0, unread: 0, mention_count: 0 });
    }
  }

  addFriend(user, since) {
    this.remember(user);
    this.friends.set(user.id, { user, since });
  }

  addServer(s) {
    const server = { ...s, channels: [...(s.channels || [])], roles: [...(s.roles || [])] };
    delete server.read_states;
    delete server.voice_states;
    this.servers.set(s.id, server);
    if (s.member) this.remember(s.member.user);
    for (const ch of server.channels) this.channels.set(ch.id, ch);
    for (const r of s.read_states || []) this.reads.set(r.channel_id, r);
    for (const v of s.voice_states || []) this.voice.set(v.user_id, v);
  }

  dropServerChannels(server, ids) {
    const gone = new Set(ids);
    server.channels = server.channels.filter((c) => !gone.has(c.id));
    for (const id of ids) {
      this.channels.delete(id);
      this.messages.delete(id);
      this.reads.delete(id);
    }
    for (const [uid, v] of this.voice) if (gone.has(v.channel_id)) this.voice.delete(uid);
  }

  serverOf(channelId) {
    const ch = this.channels.get(channelId);
    return ch ? this.servers.get(ch.server_id) : null;
  }

  timeline(channelId) {
    if (!this.messages.has(channelId)) this.messages.set(channelId, new Timeline());
    return this.messages.get(channelId);
  }

  // --- mutes -------------------------------------------------------------------------

  // The mute of this channel, conversation or server in force now (null: none): one
  // whose `until` has passed is no mute (ui/app.js redraws when the next one ends).
  muteOf(id, now = Date.now()) {
    const m = id ? this.mutes.get(id) : null;
    return m && (m.until === null || Date.parse(m.until) > now) ? m : null;
  }

  // Whether a channel's unread messages are not shown: it is muted, or its server is.
  muted(channelId, serverId = null) {
    return Boolean(this.muteOf(channelId) || (serverId && this.muteOf(serverId)));
  }

  // When the next mute in force ends (ms since 1970), or null.
  nextMuteEnd(now = Date.now()) {
    let next = null;
    for (const m of this.mutes.values()) {
      const at = m.until === null ? NaN : Date.parse(m.until);
      if (at > now && (next === null || at < next)) next = at;
    }
    return next;
  }

  // --- events ------------------------------------------------------------------------

  apply(type, d) {
    // Own keys only: an event named after an Object.prototype member (__proto__,
    // constructor, ...) is no handler.
    if (typeof type !== "string" || !Object.hasOwn(HANDLERS, type)) return;
    HANDLERS[type](this, d);
  }

  messageArrived(m) {
    this.remember(m.author);
    const t = this.messages.get(m.channel_id);
    if (t) {
      t.insertLive(m, this.viewing !== m.channel_id ? null : this.atNewest);
      if (this.viewing !== m.channel_id) t.leftBehind();
    }
    const conv = this.conversations.get(m.channel_id);
    if (conv) {
      conv.last_message = m;
      this.emit("conversations");
    }
    const read = this.reads.get(m.channel_id) || { last_read_seq: 0, unread: 0, mention_count: 0 };
    if (m.author.id === this.me.id) {
      read.last_read_seq = Math.max(read.last_read_seq, m.seq);
      read.unread = 0;
      read.mention_count = 0;
    } else if (m.seq > read.last_read_seq && !(this.viewing === m.channel_id && this.atNewest && !away() && this.heldUnread !== m.channel_id)) {
      if (this.viewing === m.channel_id && away()) this.arrivedWhileAway(m, read);
      read.unread += 1;
      if (this.mentionsMe(m)) read.mention_count += 1;
    } else if (m.seq > read.last_read_seq) {
      // Seen as it came (not counted): its deletion before the read is acked takes
      // nothing off the count.
      const held = t && t.byId.get(m.id);
      if (held) held.uncounted = true;
      m.uncounted = true;
    }
    this.reads.set(m.channel_id, read);
    const typing = this.typing.get(m.channel_id);
    if (typing && typing.delete(m.author.id)) this.emit(`typing:${m.channel_id}`);
    this.emit(`channel:${m.channel_id}`, "reads", "message");
  }

  // A presence an answer told, asked for at tick `since`: taken unless a presence.updated
  // (or another answer) told of them after it was asked, and stamped, so that an answer
  // asked for before this one and arriving after it does not undo it. `p` null: the
  // answer said they are offline (or not this page's to see): dropped, stamped too.
  tellPresence(id, p, since) {
    if (!this.me || id === this.me.id || this.presenceAt.get(id) > since) return false;
    if (p) this.presences.set(id, p);
    else this.presences.delete(id);
    this.presenceAt.set(id, ++this.presenceTick);
    return true;
  }

  // Whether someone's presence.updated still reaches this page: true for yours, a
  // friend's, a group's, or a member's of a server whose member list is loaded; false
  // when none of those is theirs and every server's whole member list is loaded; null
  // when a server whose list is not loaded (or not whole) may be theirs: a server tells
  // its members' changes too, but such a one cannot say who is in it.
  presenceReaches(id) {
    if (!this.me || id === this.me.id || this.friends.has(id)) return true;
    for (const c of this.conversations.values()) if (c.kind === "group" && (c.participant_ids || []).includes(id)) return true;
    let unknown = false;
    for (const serverId of this.servers.keys()) {
      const list = this.members.get(serverId);
      if (list && list.has(id)) return true;
      if (!list || !list.complete) unknown = true;
    }
    return unknown ? null : false;
  }

  // The presences of `ids` that nothing keeps current any more (a friendship, a group or a
  // server they came through ended): dropped, so they show offline rather than stay as
  // they were last told (a direct conversation alone carries none). Not one that a
  // server whose members are not listed here may still carry (a co-member of another
  // server, a direct conversation's other person among them): dropping that one would
  // show someone online offline until their next change. Such a presence is kept, as it
  // is, and put in doubt: ui/app.js asks the server whether it would still show it,
  // and drops it only if not. (An offline presence goes at once: shown
  // offline either way.)
  dropPresences(ids) {
    let any = false;
    for (const id of ids) {
      const p = this.presences.get(id);
      const reaches = p ? this.presenceReaches(id) : true;
      if (reaches) continue;
      if (reaches === null && p.status !== "offline") {
        this.presencesInDoubt.add(id);
      } else {
        this.presences.delete(id);
        any = true;
      }
    }
    if (any) this.emit("presence");
  }

  mentionsMe(m) {
    if (this.blocks.has(m.author ? m.author.id : m.author_id)) return false; // (as the server counts)
    if (m.mentions.includes(this.me.id) || m.mention_everyone) return true;
    const server = this.serverOf(m.channel_id);
    return Boolean(server && server.member && m.mention_roles.some((r) => server.member.role_ids.includes(r)));
  }

  patchMessage(channelId, id, fn) {
    const t = this.messages.get(channelId);
    if (t && t.loading) t.missed = true;
    const m = t && t.find(id);
    if (m) {
      fn(m);
      this.emit(`channel:${channelId}`);
    }
  }

  // The loaded messages that preview message `id` (replies to it, notices of its pin)
  // get `fn`'s preview instead; true if there were any.
  patchReplies(channelId, id, fn) {
    const t = this.messages.get(channelId);
    let any = false;
    for (const m of t ? t.list : []) {
      if (m.reply_to && m.reply_to.id === id) {
        m.reply_to = fn(m.reply_to);
        any = true;
      }
    }
    return any;
  }

  // A `left` ends the state it names: not a newer one the same user holds through
  // another connection (a rejoin after a reconnect, another tab taking over).
  removeVoice(left) {
    const v = this.voice.get(left.user_id);
    if (v && v.channel_id === left.channel_id && (!left.connection_id || v.connection_id === left.connection_id)) {
      this.voice.delete(left.user_id);
    }
  }
}

// A channel's loaded messages: one contiguous window of seqs, oldest first.
// The live messages a timeline keeps whatever its window shows (see Timeline.recent).
const RECENT = 1000;
const KEPT = 50; // (a page, as ui/chat.js reads them)
// The most messages that arrive live into the window of the channel on screen: a channel
// flooded while it is open (as fast as its senders' rate limits let them, for as long
// as the tab stays open) held every message since it was opened, each one drawn and
// compared again at every event, so a tab left open on it slowed to a standstill.
const LIVE_WINDOW = 200;

export class Timeline {
  constructor() {
    this.list = [];
    this.byId = new Map();
    this.hasOlder = true;
    this.atEnd = false; // the window reaches the newest message
    this.loaded = false;
    // Every message that arrived live, the newest RECENT of them, kept even while the
    // window is not at the end (not loaded yet, or scrolled into the past): a page of
    // the newest messages was cut when it was read, and those that came after its cut
    // and before it arrived are here, not in it (see reachEnd).
    this.recent = new Map();
    // Pages being fetched, and whether a change to a message came meanwhile (the page,
    // read before it, may show that message as it was: ui/chat.js loads it again).
    this.loading = 0;
    this.missed = false;
    // Loads of the whole window (the newest page, a jump's page): numbered as they are
    // asked for; one lands only if none asked for after it landed first (`take`), and
    // `shown` is the one that did (a page of older or newer messages asked for before it
    // no longer joins the window).
    this.claims = 0;
    this.shown = 0;
    this.historyHidden = false; // (the history may not be read: ui/chat.js, loadLatest)
  }

  claim() {
    this.claims += 1;
    return this.claims;
  }

  // Whether the window load numbered `claim` may replace the window (and then it has).
  take(claim) {
    if (claim <= this.shown) return false;
    this.shown = claim;
    return true;
  }

  // The first message after `seq` that counts as unread (someone else's, not deleted),
  // when the window holds what follows `seq` up to it; null when there is none, or it is
  // older than the window (not loaded yet: its page comes as the view is scrolled up).
  firstUnreadAfter(seq, me) {
    const i = this.list.findIndex((m) => m.seq > seq);
    if (i < 0 || (i === 0 && this.hasOlder && this.list[0].seq > seq + 1)) return null;
    return this.list.slice(i).find((m) => !m.deleted && m.author.id !== me) || null;
  }

  // Whether the window holds every message after `seq` (so counts after it are exact).
  holdsAfter(seq) {
    return this.loaded && this.atEnd && (!this.hasOlder || (this.list.length > 0 && this.list[0].seq <= seq + 1));
  }

  set(messages, { hasOlder, atEnd }) {
    this.list = [];
    this.byId.clear();
    for (const m of messages) this.put(m);
    this.hasOlder = hasOlder;
    this.atEnd = false;
    this.loaded = true;
    if (atEnd) this.reachEnd();
  }

  // The window now reaches the newest message: the live ones past its newest join it.
  reachEnd() {
    const edge = this.newest;
    for (const m of this.recent.values()) if (m.seq > edge) this.put(m);
    this.atEnd = true;
  }

  // A message of this channel the page holds: in the window, or among the recent.
  find(id) {
    return this.byId.get(id) || this.recent.get(id);
  }

  put(m) {
    const had = this.byId.get(m.id);
    if (had) {
      Object.assign(had, m);
      return false;
    }
    this.byId.set(m.id, m);
    let i = this.list.length;
    while (i > 0 && this.list[i - 1].seq > m.seq) i -= 1;
    this.list.splice(i, 0, m);
    return true;
  }

  // A channel not on screen keeps the newest KEPT messages of its window (what it
  // scrolled through is read again if wanted), and none of `recent` once no page of it
  // is loading (the next page read is the newest): a tab left open in a busy server
  // holds a page a channel, not all that was ever said.
  leftBehind() {
    if (this.loading) return;
    this.recent.clear();
    if (!this.atEnd || this.list.length <= KEPT) return;
    for (const m of this.list.splice(0, this.list.length - KEPT)) this.byId.delete(m.id);
    this.hasOlder = !this.historyHidden; // (a history not to be read has nothing older to load)
  }

  // `following`, for the channel on screen (null for another, which leftBehind keeps
  // small): whether it shows its newest messages. Then the oldest go (their page is read
  // again if scrolled back to) and the window stays LIVE_WINDOW long, but for a message
  // being edited, which stays with all after it; else (scrolled up) the window stops at
  // LIVE_WINDOW: what comes after waits among the recent, the view offers to jump to
  // the present, and scrolling down loads it.
  insertLive(m, following = null) {
    this.recent.set(m.id, m);
    if (this.recent.size > RECENT) this.recent.delete(this.recent.keys().next().value);
    if (!this.loaded || !this.atEnd) return;
    if (following === false && !this.byId.has(m.id) && this.list.length >= LIVE_WINDOW && m.seq > this.newest) {
      this.atEnd = false;
      return;
    }
    this.put(m);
    if (!following || this.list.length <= LIVE_WINDOW) return;
    let cut = this.list.length - LIVE_WINDOW;
    const editing = this.list.findIndex((x) => x.editing);
    if (editing >= 0) cut = Math.min(cut, editing);
    if (cut <= 0) return;
    for (const x of this.list.splice(0, cut)) this.byId.delete(x.id);
    this.hasOlder = !this.historyHidden;
  }

  get oldest() {
    return this.list.length ? this.list[0].seq : null;
  }

  get newest() {
    return this.list.length ? this.list[this.list.length - 1].seq : 0;
  }
}

function reactionsWithMe(old, fresh) {
  const mine = new Set((old || []).filter((r) => r.me).map((r) => r.emoji));
  return (fresh || []).map((r) => ({ ...r, me: r.me ?? mine.has(r.emoji) }));
}

function react(store, d, delta) {
  if (!d.emoji) return; // (a deleted message's reaction, its emoji scrubbed from the log)
  store.patchMessage(d.channel_id, d.message_id, (m) => {
    const r = m.reactions.find((x) => x.emoji === d.emoji);
    const mine = d.user_id === store.me.id;
    if (r) {
      r.count += delta;
      if (mine) r.me = delta > 0;
      if (r.count <= 0) m.reactions = m.reactions.filter((x) => x !== r);
    } else if (delta > 0) {
      m.reactions.push({ emoji: d.emoji, count: 1, me: mine });
    }
  });
}

function updateServer(store, id, fn) {
  const s = store.servers.get(id);
  if (s) {
    fn(s);
    store.emit("servers", `server:${id}`);
  }
}

// A server channel as it is now: replaced where it was, or added (newly revealed).
function putChannel(store, server, ch) {
  const i = server.channels.findIndex((c) => c.id === ch.id);
  if (i >= 0) server.channels[i] = ch;
  else server.channels.push(ch);
  store.channels.set(ch.id, ch);
  if (!store.reads.has(ch.id)) store.reads.set(ch.id, { last_read_seq: 0, unread: 0, mention_count: 0 });
}

function setMember(store, d) {
  store.remember(d.user);
  const list = store.members.get(d.server_id);
  if (list) list.set(d.user.id, d);
  const s = store.servers.get(d.server_id);
  if (s && s.member && s.member.user.id === d.user.id) s.member = d;
  store.emit(`members:${d.server_id}`, `server:${d.server_id}`, "servers");
}

const HANDLERS = {
  "message.created": (s, d) => s.messageArrived(d),
  "message.updated": (s, d) => {
    s.remember(d.author);
    s.patchMessage(d.channel_id, d.id, (m) => {
      const reactions = reactionsWithMe(m.reactions, d.reactions);
      Object.assign(m, d, { reactions });
    });
    // The replies to it preview its new text (loaded or not, the original).
    const content = [...d.content].slice(0, 100).join("");
    if (s.patchReplies(d.channel_id, d.id, (r) => ({ ...r, content, author: d.author || r.author }))) s.emit(`channel:${d.channel_id}`);
  },
  "message.deleted": (s, d) => {
    const t = s.messages.get(d.channel_id);
    let changed = false;
    if (t && t.loading) t.missed = true;
    const m = t && t.find(d.id);
    if (m) {
      // An unread message gone is unread no more (and its mention with it).
      const read = s.reads.get(d.channel_id);
      if (read && !m.deleted && !m.uncounted && m.seq > read.last_read_seq && m.author.id !== s.me.id) {
        read.unread = Math.max(0, read.unread - 1);
        if (s.mentionsMe(m)) read.mention_count = Math.max(0, read.mention_count - 1);
        s.emit("reads");
      }
      Object.assign(m, { deleted: true, deleted_at: d.deleted_at, content: "", attachments: [], reactions: [], pinned: false });
      changed = true;
    }
    // Replies and pin notices say it is gone, whether it is loaded or not.
    if (s.patchReplies(d.channel_id, d.id, (r) => ({ ...r, deleted: true, content: "" }))) changed = true;
    if (changed) s.emit(`channel:${d.channel_id}`);
  },
  "message.pinned": (s, d) => {
    s.patchMessage(d.channel_id, d.message_id, (m) => (m.pinned = true));
    s.emit(`pins:${d.channel_id}`);
  },
  "message.unpinned": (s, d) => {
    s.patchMessage(d.channel_id, d.message_id, (m) => (m.pinned = false));
    s.emit(`pins:${d.channel_id}`);
  },
  "reaction.added": (s, d) => react(s, d, 1),
  "reaction.removed": (s, d) => react(s, d, -1),
  "read_state.updated": (s, d) => {
    if (d.user_id !== s.me.id) return;
    const read = s.reads.get(d.channel_id) || { unread: 0, mention_count: 0 };
    read.last_read_seq = d.last_read_seq;
    const t = s.messages.get(d.channel_id);
    if (t && t.holdsAfter(d.last_read_seq)) {
      // (not those seen here as they came: an ack's echo names the newest when it was
      // sent, and more may have come, watched, since)
      const after = t.list.filter((m) => m.seq > d.last_read_seq && m.author.id !== s.me.id && !m.deleted && !m.uncounted);
      read.unread = after.length;
      read.mention_count = after.filter((m) => s.mentionsMe(m)).length;
    }
    // (else the counts stay until ui/app.js has counted again what is unread now)
    s.reads.set(d.channel_id, read);
    s.emit("reads");
  },
  "typing.started": (s, d) => {
    if (d.user_id === s.me.id) return;
    if (!s.typing.has(d.channel_id)) s.typing.set(d.channel_id, new Map());
    s.typing.get(d.channel_id).set(d.user_id, Date.now() + d.expires_in * 1000);
    s.emit(`typing:${d.channel_id}`);
  },
  "conversation.created": (s, d) => {
    s.addConversation(d);
    s.emit("conversations");
  },
  "conversation.added": (s, d) => {
    s.addConversation(d);
    s.emit("conversations");
  },
  "conversation.updated": (s, d) => {
    s.addConversation(d);
    s.emit("conversations", `channel-meta:${d.id}`);
  },
  "conversation.removed": (s, d) => {
    const gone = s.conversations.get(d.id);
    s.conversations.delete(d.id);
    s.messages.delete(d.id);
    s.mutes.delete(d.id); // (leaving drops it: no mute.removed follows)
    s.notifySettings.delete(d.id); // (nor notification_settings.removed)
    s.emit("conversations", `gone:${d.id}`);
    if (gone) s.dropPresences(gone.participant_ids || []);
  },
  "participant.added": (s, d) => {
    const c = s.conversations.get(d.channel_id);
    if (!c) return;
    if (d.user) s.remember(d.user);
    if (!c.participant_ids.includes(d.user_id)) c.participant_ids.push(d.user_id);
    if (d.user && !c.participants.some((p) => p.id === d.user_id)) c.participants.push(d.user);
    s.emit("conversations", `channel-meta:${c.id}`);
  },
  "participant.removed": (s, d) => {
    const c = s.conversations.get(d.channel_id);
    if (!c) return;
    const left = d.user_id === s.me.id ? c.participant_ids : [d.user_id];
    c.participant_ids = c.participant_ids.filter((id) => id !== d.user_id);
    c.participants = c.participants.filter((p) => p.id !== d.user_id);
    s.emit("conversations", `channel-meta:${c.id}`);
    s.dropPresences(left);
  },
  "friend_request.created": (s, d) => {
    s.remember(d.user);
    (d.to_user_id === s.me.id ? s.incoming : s.outgoing).set(d.id, d);
    s.emit("friends");
  },
  "friend_request.accepted": (s, d) => dropRequest(s, d),
  "friend_request.declined": (s, d) => dropRequest(s, d),
  "friend_request.cancelled": (s, d) => dropRequest(s, d),
  "friend.added": (s, d) => {
    s.addFriend(d.user || s.user(d.user_id), new Date().toISOString());
    s.emit("friends");
  },
  "friend.removed": (s, d) => {
    s.friends.delete(d.user_id);
    // Their presence came through the friendship, unless a group or a server goes on
    // telling it; else shown offline from now (see dropPresences).
    s.dropPresences([d.user_id]);
    s.emit("friends");
  },
  "block.added": (s, d) => {
    s.blocks.set(d.user_id, d.user || s.user(d.user_id));
    s.friends.delete(d.user_id);
    s.emit("friends");
  },
  "block.removed": (s, d) => {
    s.blocks.delete(d.user_id);
    s.emit("friends");
  },
  "user.updated": (s, d) => {
    s.remember(d);
    if (d.id === s.me.id) Object.assign(s.me, d);
    const f = s.friends.get(d.id);
    if (f) f.user = { ...f.user, ...d };
    for (const c of s.conversations.values()) {
      c.participants = c.participants.map((p) => (p.id === d.id ? { ...p, ...d } : p));
    }
    for (const list of s.members.values()) {
      const m = list.get(d.id);
      if (m) m.user = { ...m.user, ...d };
    }
    for (const t of s.messages.values()) {
      for (const m of t.list) if (m.author.id === d.id) m.author = { ...m.author, ...d };
    }
    s.emit("all");
  },
  // (private: only your own sessions hear it; `ready` carries it as `user.email`)
  "email.updated": (s, d) => {
    s.me.email = d.email;
    s.emit("me");
  },
  "privacy.updated": (s, d) => {
    s.privacy = { direct_messages: d.direct_messages };
    s.emit("privacy");
  },
  "mute.updated": (s, d) => {
    s.mutes.set(d.id, d);
    s.emit("mutes");
  },
  "mute.removed": (s, d) => {
    s.mutes.delete(d.id);
    s.emit("mutes");
  },
  "notification_settings.updated": (s, d) => {
    s.notifySettings.set(d.id, d);
    s.emit("notify");
  },
  "notification_settings.removed": (s, d) => {
    s.notifySettings.delete(d.id);
    s.emit("notify");
  },
  "presence.updated": (s, d) => {
    s.presences.set(d.user_id, d);
    // Your own: the status and custom status you chose (no user.updated tells the
    // custom status: it is presence, not profile).
    if (s.me && d.user_id === s.me.id) Object.assign(s.me, { status: d.status, status_text: d.status_text });
    s.presenceAt.set(d.user_id, ++s.presenceTick);
    s.emit("presence");
  },
  "session.revoked": (s, d) => s.emit(`revoked:${d.session_id}`),
  "server.joined": (s, d) => {
    s.addServer(d);
    s.emit("servers", "reads");
  },
  "server.left": (s, d) => {
    const server = s.servers.get(d.id);
    if (server) s.dropServerChannels(server, server.channels.map((c) => c.id));
    // (leaving drops its mutes and its channels': no mute.removed follows)
    for (const id of [d.id, ...(d.channel_ids || []), ...(server ? server.channels.map((c) => c.id) : [])]) {
      s.mutes.delete(id);
      s.notifySettings.delete(id); // (nor notification_settings.removed)
    }
    const list = s.members.get(d.id);
    s.servers.delete(d.id);
    s.members.delete(d.id);
    s.emit("servers", `gone:${d.id}`);
    // Its members' presences no longer come through it: those of its members (every
    // presence held, when its member list was not loaded: any may have come through it)
    // that nothing else tells are dropped; those another server may tell (one whose
    // members are not listed here) are kept until it is asked (see dropPresences).
    s.dropPresences(list ? [...list.keys()] : [...s.presences.keys()]);
  },
  "server.updated": (s, d) => updateServer(s, d.id, (server) => Object.assign(server, d)),
  // (`channels` is empty when a change revealed many: each comes as its channel.updated)
  // (`read_states`: how far you read each, and what came while you could not see it)
  "channel.revealed": (s, d) => {
    updateServer(s, d.server_id, (server) => {
      for (const r of d.read_states || []) s.reads.set(r.channel_id, r);
      for (const ch of d.channels) putChannel(s, server, ch);
    });
    s.emit("reads");
  },
  "channel.hidden": (s, d) => {
    updateServer(s, d.server_id, (server) => s.dropServerChannels(server, d.channel_ids));
    for (const id of d.channel_ids) s.emit(`gone:${id}`);
  },
  "channel.updated": (s, d) =>
    updateServer(s, d.server_id, (server) => {
      putChannel(s, server, d);
      s.emit(`channel-meta:${d.id}`);
    }),
  "member.joined": (s, d) => {
    updateServer(s, d.server_id, (server) => (server.member_count += 1));
    setMember(s, d);
    if (s.me && d.user.id !== s.me.id && !s.presences.has(d.user.id)) s.presencesUnknown.add(d.user.id);
  },
  "member.updated": (s, d) => setMember(s, d),
  "member.removed": (s, d) => {
    updateServer(s, d.server_id, (server) => (server.member_count = Math.max(0, server.member_count - 1)));
    const list = s.members.get(d.server_id);
    if (list) list.delete(d.user_id);
    s.emit(`members:${d.server_id}`);
    s.dropPresences([d.user_id]);
  },
  "role.created": (s, d) => updateServer(s, d.server_id, (server) => upsertRole(server, d)),
  "role.updated": (s, d) => updateServer(s, d.server_id, (server) => upsertRole(server, d)),
  "role.deleted": (s, d) =>
    updateServer(s, d.server_id, (server) => {
      server.roles = server.roles.filter((r) => r.id !== d.id);
      if (server.member) server.member.role_ids = server.member.role_ids.filter((r) => r !== d.id);
    }),
  "voice.state_updated": (s, d) => {
    if (d.left) s.removeVoice(d);
    else s.voice.set(d.user_id, d);
    s.emit("voice");
  },
};

function upsertRole(server, role) {
  server.roles = server.roles.filter((r) => r.id !== role.id);
  server.roles.push(role);
  server.roles.sort((a, b) => b.position - a.position);
}

function dropRequest(s, d) {
  s.incoming.delete(d.id);
  s.outgoing.delete(d.id);
  s.emit("friends");
}
