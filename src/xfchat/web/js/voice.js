// Voice: a WebRTC mesh, signalled through the gateway (README "Voice"). The newcomer
// offers to everyone already in the channel; those already there answer; candidates
// follow both ways. Audio flows browser to browser; XFChat only relays the signals.

const VOICE_STATE_UPDATE = 4;
const VOICE_SIGNAL = 12;
const SPEAKING_LEVEL = 0.02;

// Server-muted by a moderator, or suppressed (no SPEAK in the channel): the member's
// microphone is not sent and nobody plays them.
export function silenced(state) {
  return Boolean(state && (state.server_mute || state.suppress));
}

export class Voice {
  constructor(app) {
    this.app = app;
    this.store = app.store;
    this.rt = app.rt;
    this.channelId = null;
    this.peers = new Map(); // user id -> {pc, audio, pending candidates}
    this.stream = null;
    this.iceServers = [];
    this.muted = false;
    this.deafened = false;
    this.speaking = new Set();
    this.meters = new Map();
    this.audioCtx = null;
    this.meterTimer = null;
  }

  async join(channelId) {
    if (!this.rt.canVoice) throw new Error("Voice needs the live connection; it is reconnecting");
    if (!this.stream) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true }, video: false });
      this.meter(this.store.me.id, this.stream);
    }
    this.closePeers();
    this.channelId = channelId;
    this.icePolicy = null; // until voice.connected says it (peers made before it: relay)
    this.joining = true; // until voice.connected names our connection
    this.applyMute();
    this.rt.send(VOICE_STATE_UPDATE, { channel_id: channelId, self_mute: this.muted, self_deaf: this.deafened });
    this.changed();
  }

  leave() {
    if (this.channelId) this.rt.send(VOICE_STATE_UPDATE, { channel_id: null });
    this.reset();
  }

  reset() {
    this.channelId = null;
    this.connectionId = null;
    this.joining = false;
    this.rejoin = null;
    this.closePeers();
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    for (const m of this.meters.values()) m.source.disconnect();
    this.meters.clear();
    this.speaking.clear();
    clearInterval(this.meterTimer);
    this.meterTimer = null;
    this.changed();
  }

  closePeers() {
    for (const id of [...this.peers.keys()]) this.dropPeer(id);
  }

  toggle(what) {
    if (what === "mute") this.muted = !this.muted;
    else {
      this.deafened = !this.deafened;
      if (this.deafened) this.muted = true;
    }
    this.applyMute();
    if (this.channelId) this.rt.send(VOICE_STATE_UPDATE, { channel_id: this.channelId, self_mute: this.muted, self_deaf: this.deafened });
    this.changed();
  }

  mine() {
    return this.store.voice.get(this.store.me.id);
  }

  applyMute() {
    const state = this.mine();
    const serverMuted = silenced(state);
    const serverDeaf = state && state.server_deaf;
    if (this.stream) for (const t of this.stream.getAudioTracks()) t.enabled = !this.muted && !serverMuted;
    for (const [id, peer] of this.peers) {
      peer.audio.muted = this.deafened || Boolean(serverDeaf) || silenced(this.store.voice.get(id));
    }
  }

  changed() {
    this.store.emit("voice");
  }

  // --- the gateway's answers ---------------------------------------------------------

  async onDispatch(type, d) {
    if (type === "voice.connected") {
      this.joining = false;
      this.channelId = d.state.channel_id;
      this.connectionId = d.state.connection_id;
      this.iceServers = d.ice_servers || [];
      // "relay" when the server hides every peer's address behind its TURN relay.
      this.icePolicy = d.ice_transport_policy === "relay" ? "relay" : "all";
      for (const v of d.voice_states) this.store.voice.set(v.user_id, v);
      this.changed();
      for (const v of d.voice_states) if (v.user_id !== this.store.me.id) await this.call(v.user_id);
    } else if (type === "voice.signal") {
      await this.signal(d);
    } else if (type === "voice.error") {
      this.app.toastError(`Voice: ${d.message}`);
      if (d.op === VOICE_STATE_UPDATE && this.joining) this.reset();
    } else if (type === "voice.disconnected") {
      // The connection that held our state closed: the state ended with it. Rejoin
      // once the connection is back (ready will say so).
      if (this.channelId) {
        this.rejoin = this.channelId;
        this.closePeers();
      }
    }
  }

  // After a reconnect, our voice state is gone: join again.
  afterReady() {
    if (this.rejoin) {
      const id = this.rejoin;
      this.rejoin = null;
      this.join(id).catch((err) => this.app.toastError(err.message));
    }
  }

  onStates() {
    if (!this.channelId || this.joining || this.rejoin) return;
    const mine = this.mine();
    if (!mine || mine.connection_id !== this.connectionId) {
      // Left (a moderator's disconnect, the channel gone), or another tab took over.
      if (this.stream) this.reset();
      return;
    }
    if (mine.channel_id !== this.channelId) {
      this.channelId = mine.channel_id; // moved by a moderator: call those there
      this.closePeers();
      for (const v of this.store.voice.values()) {
        if (v.channel_id === this.channelId && v.user_id !== this.store.me.id) this.call(v.user_id).catch(() => {});
      }
    }
    for (const id of [...this.peers.keys()]) {
      const v = this.store.voice.get(id);
      if (!v || v.channel_id !== this.channelId) this.dropPeer(id);
    }
    this.applyMute();
  }

  // --- peers -------------------------------------------------------------------------

  peer(userId) {
    let p = this.peers.get(userId);
    if (p) return p;
    // (relay until voice.connected has said otherwise: never reveal an address early)
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.icePolicy === "all" ? "all" : "relay" });
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.dataset.userId = userId;
    document.body.appendChild(audio);
    p = { pc, audio, queued: [] };
    this.peers.set(userId, p);
    if (this.stream) for (const t of this.stream.getTracks()) pc.addTrack(t, this.stream);
    pc.onicecandidate = (ev) => this.send(userId, "candidate", ev.candidate ? ev.candidate.toJSON() : null);
    pc.ontrack = (ev) => {
      audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      this.meter(userId, audio.srcObject);
      this.applyMute();
    };
    return p;
  }

  dropPeer(userId) {
    const p = this.peers.get(userId);
    if (!p) return;
    p.pc.close();
    p.audio.remove();
    const m = this.meters.get(userId);
    if (m) m.source.disconnect();
    this.meters.delete(userId);
    this.speaking.delete(userId);
    this.peers.delete(userId);
  }

  send(to, kind, data) {
    this.rt.send(VOICE_SIGNAL, { to, kind, data });
  }

  async call(userId) {
    const { pc } = this.peer(userId);
    await pc.setLocalDescription(await pc.createOffer());
    this.send(userId, "offer", pc.localDescription.toJSON());
  }

  async signal(d) {
    if (d.channel_id !== this.channelId) return;
    const p = this.peer(d.from);
    const { pc } = p;
    if (d.kind === "offer") {
      await pc.setRemoteDescription(d.data);
      await pc.setLocalDescription(await pc.createAnswer());
      this.send(d.from, "answer", pc.localDescription.toJSON());
      for (const c of p.queued.splice(0)) await pc.addIceCandidate(c);
    } else if (d.kind === "answer") {
      await pc.setRemoteDescription(d.data);
      for (const c of p.queued.splice(0)) await pc.addIceCandidate(c);
    } else if (d.kind === "candidate" && d.data) {
      if (pc.remoteDescription) await pc.addIceCandidate(d.data);
      else p.queued.push(d.data);
    }
  }

  // --- who is speaking ---------------------------------------------------------------

  meter(userId, stream) {
    if (!this.audioCtx) this.audioCtx = new AudioContext();
    const old = this.meters.get(userId);
    if (old) old.source.disconnect();
    const source = this.audioCtx.createMediaStreamSource(stream);
    const analyser = this.audioCtx.createAnalyser();
    analyser.fftSize = 2048; // about 40 ms of sound per look
    source.connect(analyser);
    this.meters.set(userId, { source, analyser, data: new Float32Array(analyser.fftSize), loudAt: 0 });
    if (this.audioCtx.state === "suspended") this.audioCtx.resume().catch(() => {});
    if (!this.meterTimer) this.meterTimer = setInterval(() => this.measure(), 100);
  }

  // Speaking: loud within the last half second (so the mark does not flicker between
  // words, and a short sound is not missed between two looks).
  measure() {
    let changed = false;
    const now = performance.now();
    for (const [id, m] of this.meters) {
      m.analyser.getFloatTimeDomainData(m.data);
      let sum = 0;
      for (const x of m.data) sum += x * x;
      if (Math.sqrt(sum / m.data.length) > SPEAKING_LEVEL) m.loudAt = now;
      const loud = now - m.loudAt < 500 && !(id === this.store.me.id && (this.muted || silenced(this.mine())));
      if (loud !== this.speaking.has(id)) {
        changed = true;
        if (loud) this.speaking.add(id);
        else this.speaking.delete(id);
      }
    }
    if (changed) this.app.markSpeaking(this.speaking);
  }

  // Per peer, what has arrived (for the connection details, and for the tests).
  async stats() {
    const out = {};
    for (const [id, p] of this.peers) {
      let packets = 0;
      const local = new Set(); // the kinds of candidate this side gathered
      const report = await p.pc.getStats();
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived || 0;
        if (s.type === "local-candidate") local.add(s.candidateType);
      });
      const policy = p.pc.getConfiguration().iceTransportPolicy;
      out[id] = { state: p.pc.connectionState, packetsReceived: packets, policy, localCandidates: [...local].sort() };
    }
    return out;
  }
}
