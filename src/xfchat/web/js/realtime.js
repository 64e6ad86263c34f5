// One real-time connection: the WebSocket gateway, or Server-Sent Events when the
// gateway cannot be reached. It starts from `ready` (the whole state), applies every
// event in order, and after any drop resumes from the last position it received
// (the gateway's RESUME, SSE's `since`): nothing is missed or repeated.

import { sessionGone, retryDelay } from "./session.js";

const SSE_TYPES = [
  "message.created", "message.updated", "message.deleted", "message.pinned", "message.unpinned",
  "reaction.added", "reaction.removed", "read_state.updated", "typing.started",
  "conversation.created", "conversation.added", "conversation.updated", "conversation.removed",
  "participant.added", "participant.removed",
  "friend_request.created", "friend_request.accepted", "friend_request.declined", "friend_request.cancelled",
  "friend.added", "friend.removed", "block.added", "block.removed",
  "user.updated", "presence.updated", "privacy.updated", "email.updated", "session.revoked",
  "mute.updated", "mute.removed", "notification_settings.updated", "notification_settings.removed",
  "server.joined", "server.left", "server.updated", "channel.revealed", "channel.hidden", "channel.history_hidden", "channel.updated",
  "member.joined", "member.updated", "member.removed", "role.created", "role.updated", "role.deleted",
  "voice.state_updated",
];

export class Realtime {
  // handlers: {ready(state), event(type, data), status(text|null), ended(reason), voice(type, data)}
  constructor(session, handlers) {
    this.session = session;
    this.on = handlers;
    this.last = null; // the last resume token received
    this.ws = null;
    this.es = null;
    this.stopped = false;
    this.failures = 0;
    this.wsFailures = 0;
    this.transport = "gateway";
    this.heartbeat = null;
    this.retry = null;
    this.connected = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    if (this.ws) this.ws.close(1000);
    if (this.es) this.es.close();
    this.ws = this.es = null;
  }

  get canVoice() {
    return this.transport === "gateway" && this.ws && this.ws.readyState === WebSocket.OPEN && this.connected;
  }

  send(op, d) {
    if (!this.canVoice) return false;
    this.ws.send(JSON.stringify({ op, d }));
    return true;
  }

  connect() {
    if (this.stopped) return;
    if (this.transport === "gateway") this.openGateway();
    else this.openSse();
  }

  schedule(delay) {
    this.connected = false;
    if (this.stopped) return;
    this.failures += 1;
    // Backing off to 3 s, with jitter, so a restarted server is not met by every
    // client at the same instant.
    const wait = delay ?? Math.min(3000, 250 * 2 ** Math.min(this.failures, 4)) * (0.5 + Math.random() / 2);
    if (this.failures > 1) this.on.status("Reconnecting…");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), wait);
  }

  dispatch(type, data, token) {
    if (type === "ready") {
      this.failures = 0;
      this.connected = true;
      this.on.status(null);
      if (token) this.last = token;
      this.on.ready(data);
      return;
    }
    if (token) this.last = token;
    this.on.event(type, data);
  }

  openGateway() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/gateway`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let hello = false;
    let beat = null; // this connection's heartbeat timer
    let unacked = false; // a heartbeat sent, its HEARTBEAT_ACK not yet received
    // The connection is over: closed, or taken for dead.
    const lost = (code, reason = "") => {
      clearInterval(beat);
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.on.voice("voice.disconnected", {});
      this.closed(code, hello, reason);
    };
    ws.onmessage = (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.op === 10) {
        hello = true;
        this.wsFailures = 0;
        const interval = frame.d.heartbeat_interval;
        clearInterval(beat);
        // A heartbeat still unacknowledged when the next is due: nothing gets through
        // (a network gone to sleep, a NAT that forgot us), though the browser may not
        // say the connection closed for many minutes. It is given up and resumed on a
        // new one (a code other than 1000, so the server keeps our place).
        beat = this.heartbeat = setInterval(() => {
          if (ws.readyState !== 1) return;
          if (unacked) {
            lost(4000);
            ws.close(4000, "heartbeat not acknowledged");
            return;
          }
          unacked = true;
          ws.send('{"op":1}');
        }, interval * 0.8);
        const token = this.session.access;
        ws.send(JSON.stringify(this.last ? { op: 6, d: { token, seq: this.last } } : { op: 2, d: { token } }));
      } else if (frame.op === 0) {
        if (frame.t.startsWith("voice.") && frame.t !== "voice.state_updated") this.on.voice(frame.t, frame.d);
        else this.dispatch(frame.t, frame.d, frame.s);
      } else if (frame.op === 11) {
        unacked = false;
      } else if (frame.op === 9) {
        this.last = null; // the log no longer has our place: start again from ready
      }
    };
    ws.onclose = (ev) => lost(ev.code, ev.reason);
  }

  // A WebSocket that never said HELLO while the server answers HTTP: something on the
  // way (a proxy) refuses WebSockets. Three of those in a row, and SSE takes over. (A
  // server that is down or restarting answers neither, and is simply waited for.)
  async gatewayRefused() {
    try {
      const res = await fetch("/health", { cache: "no-store" });
      if (!res.ok) return;
    } catch {
      return;
    }
    this.wsFailures += 1;
    if (this.wsFailures >= 3) this.transport = "sse";
  }

  async closed(code, hello, reason = "") {
    if (!hello) await this.gatewayRefused();
    if (code === 4012) return this.on.ended("revoked");
    // IDENTIFY or RESUME refused by the rate limit: its reason says when to try again
    // ("retry in N s"), and no sooner (each try is counted too).
    const wait = code === 4008 && /retry in (\d+) s/.exec(reason);
    if (wait) return this.schedule(Number(wait[1]) * 1000 * (1 + Math.random() / 4));
    if (code === 4010 || code === 4007) this.last = null;
    if (code === 4015 || code === 4004) {
      try {
        await this.session.refresh();
      } catch (err) {
        // Only a 401 ends the session; the server unreachable or busy is waited for.
        if (sessionGone(err)) return this.on.ended("expired");
        return this.schedule(retryDelay(err, this.failures + 1));
      }
    }
    this.schedule();
  }

  async openSse() {
    if (!this.session.access) {
      try {
        await this.session.refresh();
      } catch (err) {
        if (sessionGone(err)) return this.on.ended("expired");
        return this.schedule(retryDelay(err, this.failures + 1));
      }
    }
    const params = new URLSearchParams({ access_token: this.session.access || "", heartbeat: "true" });
    if (this.last) params.set("since", this.last);
    const es = new EventSource(`/api/events?${params}`);
    this.es = es;
    let heard = Date.now(); // when this stream last said anything
    let watch = null; // this stream's watch on its silence
    const handle = (type) => (ev) => {
      if (this.es !== es) return;
      heard = Date.now();
      this.dispatch(type, JSON.parse(ev.data), ev.lastEventId || null);
    };
    es.addEventListener("heartbeat", () => {
      heard = Date.now();
    });
    // An idle stream sends a heartbeat every `heartbeat_interval` ms: nothing for twice
    // that, and its packets no longer get through (a network gone to sleep, a NAT that
    // forgot us), though EventSource may not say so for many minutes. It is given up
    // and opened again from the last id.
    es.addEventListener("ready", (ev) => {
      const interval = JSON.parse(ev.data).heartbeat_interval;
      clearInterval(watch);
      if (!interval) return;
      watch = this.heartbeat = setInterval(() => {
        if (this.es !== es) return clearInterval(watch);
        if (Date.now() - heard > 2 * interval) {
          clearInterval(watch);
          es.close();
          this.es = null;
          this.schedule();
        }
      }, interval / 2);
    });
    es.addEventListener("ready", handle("ready"));
    for (const type of SSE_TYPES) es.addEventListener(type, handle(type));
    es.addEventListener("resync", () => {
      this.last = null;
    });
    es.addEventListener("closed", (ev) => {
      const info = JSON.parse(ev.data);
      clearInterval(watch);
      es.close();
      if (info.reason === "session_revoked") return this.on.ended("revoked");
      if (info.reason === "resync") this.last = null;
      else if (info.resume) this.last = info.resume;
      this.schedule();
    });
    es.onerror = () => {
      // EventSource retries by itself with Last-Event-ID; once it gives up, open a new
      // one with `since`. EventSource does not say why it gave up: the token is
      // refreshed first only when that can be why (it is expired, or about to be, or
      // several tries in a row failed); a busy server (429 TOO_MANY_CONNECTIONS, 503)
      // is simply waited for.
      if (es.readyState === EventSource.CLOSED && this.es === es) {
        clearInterval(watch);
        if (!this.session.accessStale && this.failures % 4 !== 3) return this.schedule();
        this.session.refresh().then(
          () => this.schedule(),
          (err) => (sessionGone(err) ? this.on.ended("expired") : this.schedule(retryDelay(err, this.failures + 1))),
        );
      }
    };
  }
}
