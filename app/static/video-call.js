/* Branchless live video: the WebRTC + signalling client shared by the customer page
 * (/video) and the account manager's console (/console/sessions/{id}).
 *
 * Protocol: docs/video-sessions.md. One WebSocket per participant (cookie auth, same
 * origin); one sending RTCPeerConnection (publish/answer, ICE restart with `restart`)
 * and one receiving RTCPeerConnection per subscription offer (`offer`/`subscribed`).
 * Full SDP (ICE gathered before sending): Janus ignores mDNS candidates anyway.
 *
 * State for automated tests: window.videoCall = {wsState, publisherState,
 * subscriberState, remoteFrames, localFramesSent, peerPresent, role, sessionState,
 * reconnects, iceRestarts}; window.videoCallClient is the instance itself.
 */
(() => {
  "use strict";

  const csrfToken = () => (document.cookie.match(/(?:^|; )branchless_csrf=([^;]+)/) || [])[1] || "";

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.message) || `request failed (${status})`);
      this.status = status;
      this.code = (body && body.error) || "";
      this.body = body || {};
      this.retryAfter = retryAfter;
    }
  }

  /** JSON API call with the session cookie and the CSRF header; throws ApiError. */
  const api = async (url, options = {}) => {
    const headers = { "x-csrftoken": csrfToken(), ...(options.headers || {}) };
    let body = options.body;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const response = await fetch(url, { credentials: "same-origin", method: options.method || "GET", headers, body });
    let payload = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { payload = await response.json(); } catch (e) { payload = null; }
    }
    if (!response.ok) {
      const retry = parseInt(response.headers.get("retry-after") || "", 10);
      throw new ApiError(response.status, payload || { message: response.statusText }, Number.isFinite(retry) ? retry : null);
    }
    return payload;
  };

  const waitForIce = (pc, timeoutMs = 4000) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") { resolve(); return; }
    let timer = null;
    const check = () => {
      if (pc.iceGatheringState !== "complete") return;
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    timer = setTimeout(() => { pc.removeEventListener("icegatheringstatechange", check); resolve(); }, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });

  const fingerprint = (sdp) => ((sdp || "").match(/a=fingerprint:(\S+ \S+)/) || [])[1] || "";
  const sdpText = (sdp) => (typeof sdp === "string" ? sdp : (sdp && sdp.sdp) || "");

  /** Explains a getUserMedia failure to a person (Chinese + English). */
  const mediaErrorText = (error) => {
    const name = (error && error.name) || "";
    if (!navigator.mediaDevices) return "此页面需要 HTTPS 才能使用摄像头 · The camera needs a secure (HTTPS) page.";
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "摄像头或麦克风权限被拒绝，请在浏览器设置中允许后重试 · Camera or microphone permission was denied: allow it in your browser's settings, then try again.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
      return "未找到摄像头或麦克风 · No camera or microphone was found on this device.";
    }
    if (name === "NotReadableError" || name === "TrackStartError") {
      return "摄像头或麦克风正被其他应用使用 · The camera or microphone is in use by another app: close it and try again.";
    }
    return `无法打开摄像头 · The camera could not be opened (${name || error}).`;
  };

  /** A microphone level meter (WebAudio AnalyserNode) driving `bar`'s width; returns a stop function.
   * `onLevel(level)` gets 0..1 about ten times a second. */
  const micMeter = (stream, bar, onLevel) => {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || stream.getAudioTracks().length === 0) return () => {};
    const ctx = new Ctx();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const samples = new Uint8Array(analyser.fftSize);
    let running = true;
    let last = 0;
    const tick = () => {
      if (!running) return;
      analyser.getByteTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) { const v = (s - 128) / 128; sum += v * v; }
      const level = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      if (bar) bar.style.width = `${Math.round(level * 100)}%`;
      const now = performance.now();
      if (onLevel && now - last > 100) { last = now; onLevel(level); }
      setTimeout(tick, 50);
    };
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    tick();
    return () => { running = false; ctx.close().catch(() => {}); };
  };

  const MEDIA = { audio: true, video: { width: 640, height: 480 } };
  const RETRY_PUBLISH = new Set(["not_active", "media_server_unavailable", "media_error"]);

  class VideoCall {
    /**
     * @param {number} sessionId
     * @param {{localVideo?: HTMLVideoElement, remoteVideo?: HTMLVideoElement, on?: Object<string, Function>}} options
     *   on: hello, state, peer, analysis, liveness, ended, error, status, remote (callbacks by message type)
     */
    constructor(sessionId, options = {}) {
      this.sessionId = sessionId;
      this.localVideo = options.localVideo || null;
      this.remoteVideo = options.remoteVideo || null;
      this.on = options.on || {};
      this.stream = null;
      this.ws = null;
      this.publisher = null;
      this.subscriber = null;
      this.remoteStream = null;
      this.iceServers = [];
      this.session = null;
      this.ended = false;
      this.closedByUs = false;
      this.attempt = 0;
      this.reconnectTimer = null;
      this.iceTimers = { publisher: null, subscriber: null };
      this.publishing = false;
      this.republish = false;
      this.publishRetries = 0;
      this.stats = {
        wsState: "closed", publisherState: "new", subscriberState: "new", remoteFrames: 0, localFramesSent: 0,
        peerPresent: false, role: null, sessionState: null, reconnects: 0, iceRestarts: 0,
      };
      window.videoCall = this.stats;
      window.videoCallClient = this; // tests may feed messages to handle()
      this.statsTimer = setInterval(() => { this.pollStats().catch(() => {}); }, 1000);
      this.onOnline = () => { if (!this.ws && !this.ended && !this.closedByUs) { clearTimeout(this.reconnectTimer); this.connect(); } };
      window.addEventListener("online", this.onOnline);
    }

    emit(name, ...args) {
      const handler = this.on[name];
      if (!handler) return;
      try { handler(...args); } catch (e) { console.error(`video-call ${name} handler`, e); }
    }

    /** Camera and microphone (or a stream the page already opened for its device check). */
    async startMedia(stream) {
      this.stream = stream || await navigator.mediaDevices.getUserMedia(MEDIA);
      if (this.localVideo) {
        this.localVideo.muted = true;
        this.localVideo.srcObject = this.stream;
        this.localVideo.play().catch(() => {});
      }
      return this.stream;
    }

    connect() {
      if (this.ended || this.closedByUs) return;
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${proto}//${location.host}/ws/video/sessions/${this.sessionId}`);
      this.ws = ws;
      this.stats.wsState = "connecting";
      ws.onopen = () => {
        if (this.ws !== ws) return;
        this.attempt = 0;
        this.stats.wsState = "open";
        this.emit("status", "connected");
      };
      ws.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        this.handle(message).catch((e) => this.emit("error", { error: "client", message: String(e) }));
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.stats.wsState = "closed";
        if (this.ended || this.closedByUs) return;
        if (event.code >= 4000 && event.code < 5000) {
          // The server refused or replaced this connection: reconnecting would not help.
          this.emit("error", { error: `closed_${event.code}`, message: event.reason || "连接被服务器关闭 · The server closed the connection." });
          return;
        }
        this.scheduleReconnect();
      };
    }

    scheduleReconnect() {
      if (this.attempt >= 10) {
        this.emit("status", "lost");
        this.emit("error", { error: "connection_lost", message: "网络连接已断开 · The connection was lost. Reload the page to rejoin." });
        return;
      }
      const delay = Math.min(15000, 500 * 2 ** this.attempt);
      this.attempt += 1;
      this.stats.reconnects += 1;
      this.emit("status", "reconnecting", delay);
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(message));
        return true;
      }
      return false;
    }

    applySession(session) {
      if (!session) return;
      this.session = session;
      this.stats.sessionState = session.state;
    }

    async handle(message) {
      switch (message.type) {
        case "hello":
          this.iceServers = message.iceServers || [];
          this.stats.role = message.role || null;
          this.applySession(message.session);
          this.emit("hello", message);
          // A (re)connected socket starts from scratch on the server: publish again.
          if (this.session && this.session.state === "active") await this.publish(false);
          break;
        case "state":
          this.applySession(message.session);
          this.emit("state", message.session);
          if (this.session && this.session.state === "active" && !this.publisher) await this.publish(false);
          break;
        case "answer":
          if (this.publisher && this.publisher.signalingState === "have-local-offer") {
            await this.publisher.setRemoteDescription({ type: "answer", sdp: sdpText(message.sdp) });
            this.publishRetries = 0;
          }
          break;
        case "offer":
          await this.subscribe(sdpText(message.sdp), message.restart === true);
          break;
        case "candidate": {
          const pc = message.target === "subscriber" ? this.subscriber : this.publisher;
          if (pc) await pc.addIceCandidate(message.candidate || null).catch(() => {});
          break;
        }
        case "peer":
          this.stats.peerPresent = !!message.present;
          this.emit("peer", !!message.present);
          break;
        case "analysis":
          this.emit("analysis", message);
          break;
        case "liveness":
          this.emit("liveness", message);
          break;
        case "ended":
          this.ended = true;
          this.applySession(message.session);
          this.emit("ended", message.reason, message.session);
          this.close();
          break;
        case "error":
          this.emit("error", message);
          // A publish the server could not take (room not ready, media server restarting):
          // drop the half-open connection and offer again shortly.
          if (RETRY_PUBLISH.has(message.error) && this.publisher && this.publisher.signalingState === "have-local-offer"
              && this.publishRetries < 5) {
            this.publishRetries += 1;
            this.closePeer("publisher");
            setTimeout(() => {
              if (!this.publisher && this.session && this.session.state === "active") this.publish(false).catch(() => {});
            }, 3000);
          }
          break;
        default:
          break;
      }
    }

    newPeer(kind) {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      const key = `${kind}State`;
      this.stats[key] = pc.connectionState;
      pc.addEventListener("connectionstatechange", () => {
        if (this[kind] === pc) this.stats[key] = pc.connectionState;
      });
      pc.addEventListener("iceconnectionstatechange", () => this.watchIce(kind, pc));
      return pc;
    }

    /** iceconnectionstate failed/disconnected for more than 3 s: ICE restart (publisher)
     * or a fresh subscription offer (subscriber); re-armed while the network stays down. */
    watchIce(kind, pc) {
      if (this[kind] !== pc) return;
      const state = pc.iceConnectionState;
      if (state === "connected" || state === "completed") {
        clearTimeout(this.iceTimers[kind]);
        this.iceTimers[kind] = null;
        this.emit("status", "connected");
        return;
      }
      if (state !== "failed" && state !== "disconnected") return;
      this.emit("status", "unstable");
      if (this.iceTimers[kind]) return;
      this.iceTimers[kind] = setTimeout(() => {
        this.iceTimers[kind] = null;
        if (this[kind] !== pc || this.ended) return;
        const now = pc.iceConnectionState;
        if (now !== "failed" && now !== "disconnected") return;
        this.recover(kind);
        // Check again later: a restart over a network that is still down changes nothing.
        this.iceTimers[kind] = setTimeout(() => { this.iceTimers[kind] = null; this.watchIce(kind, pc); }, 5000);
      }, 3000);
    }

    recover(kind) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return; // the socket's reconnect re-publishes
      this.stats.iceRestarts += 1;
      this.emit("status", "restarting");
      if (kind === "publisher") this.publish(true).catch((e) => this.emit("error", { error: "client", message: String(e) }));
      else this.send({ type: "resubscribe" });
    }

    /** Sends our camera and microphone: a new connection, or an ICE restart of the current one. */
    async publish(iceRestart) {
      if (!this.stream || this.ended) return;
      if (this.publishing) { this.republish = true; return; }
      this.publishing = true;
      try {
        if (iceRestart && (!this.publisher || this.publisher.signalingState !== "stable")) iceRestart = false;
        if (!iceRestart) {
          this.closePeer("publisher");
          const pc = this.newPeer("publisher");
          for (const track of this.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
          this.publisher = pc;
        }
        const pc = this.publisher;
        const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : {});
        await pc.setLocalDescription(offer);
        await waitForIce(pc);
        if (this.publisher !== pc) return;
        this.send({ type: iceRestart ? "restart" : "publish", sdp: pc.localDescription.sdp });
      } finally {
        this.publishing = false;
        if (this.republish) { this.republish = false; await this.publish(false); }
      }
    }

    /** Answers the other participant's media offer: an ICE restart of the current subscription
     * (the server says so: `restart`) reuses its connection; anything else gets a new one. The
     * SDP cannot tell: Janus signs every handle's DTLS with one certificate (same fingerprint),
     * and a new subscription needs the new DTLS handshake only a new connection starts. */
    async subscribe(offerSdp, restart) {
      let pc = this.subscriber;
      const reuse = restart && pc && pc.connectionState !== "closed" && pc.signalingState === "stable"
        && pc.remoteDescription && fingerprint(pc.remoteDescription.sdp) === fingerprint(offerSdp);
      if (!reuse) {
        this.closePeer("subscriber");
        pc = this.newPeer("subscriber");
        pc.addEventListener("track", (event) => this.attachRemote(pc, event));
        this.subscriber = pc;
      }
      await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await waitForIce(pc);
      if (this.subscriber !== pc) return;
      this.send({ type: "subscribed", sdp: pc.localDescription.sdp });
    }

    attachRemote(pc, event) {
      if (this.subscriber !== pc) return;
      if (!this.remoteStream || this.remoteStream.pc !== pc) {
        this.remoteStream = new MediaStream();
        this.remoteStream.pc = pc;
      }
      this.remoteStream.addTrack(event.track);
      const video = this.remoteVideo;
      if (video && video.srcObject !== this.remoteStream) {
        video.srcObject = this.remoteStream;
        video.muted = false;
        // Autoplay with sound may be refused without a recent click: play muted and let the page offer "unmute".
        video.play().catch(() => { video.muted = true; video.play().catch(() => {}); this.emit("status", "muted"); });
      }
      this.emit("remote", this.remoteStream);
    }

    async pollStats() {
      if (this.subscriber) {
        const pc = this.subscriber;
        let frames = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === "inbound-rtp" && (r.kind || r.mediaType) === "video") frames += r.framesDecoded || 0;
        });
        if (this.subscriber === pc) this.stats.remoteFrames = frames;
      }
      if (this.publisher) {
        let frames = 0;
        (await this.publisher.getStats()).forEach((r) => {
          if (r.type === "outbound-rtp" && (r.kind || r.mediaType) === "video") frames += r.framesEncoded || 0;
        });
        this.stats.localFramesSent = frames;
      }
    }

    closePeer(kind) {
      const pc = this[kind];
      clearTimeout(this.iceTimers[kind]);
      this.iceTimers[kind] = null;
      this[kind] = null;
      this.stats[`${kind}State`] = "closed";
      if (pc) pc.close();
    }

    /** Says goodbye on the socket, then closes everything. */
    leave() {
      this.send({ type: "leave" });
      this.closedByUs = true;
      this.close();
    }

    /** Closes connections and the socket; `stopMedia` also turns the camera off. */
    close(stopMedia = true) {
      clearTimeout(this.reconnectTimer);
      clearInterval(this.statsTimer);
      window.removeEventListener("online", this.onOnline);
      this.pollStats().catch(() => {}).finally(() => {
        this.closePeer("publisher");
        this.closePeer("subscriber");
      });
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        this.stats.wsState = "closed";
        ws.close(1000);
      }
      if (stopMedia && this.stream) for (const track of this.stream.getTracks()) track.stop();
    }
  }

  VideoCall.api = api;
  VideoCall.ApiError = ApiError;
  VideoCall.micMeter = micMeter;
  VideoCall.mediaErrorText = mediaErrorText;
  VideoCall.MEDIA = MEDIA;
  window.VideoCall = VideoCall;
})();
