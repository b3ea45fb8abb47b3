// The call's page: a waiting room to test camera and microphone, then one RTCPeerConnection per other person,
// set up through the portal's socket, until the server says the visit has ended. No inline script (the portal's
// Content-Security-Policy forbids it): the page's settings and its texts, in the reader's language, are data-
// attributes of the element marked data-gatehouse-call. The server owns the clock; this page only shows it.
(() => {
  "use strict";
  const root = document.querySelector("[data-gatehouse-call]");
  if (!root) { return; }
  const role = root.getAttribute("data-role") || "";
  const supervisor = role === "supervisor";
  const part = (name) => root.querySelector(`[data-call-${name}]`);
  const ui = {
    preview: part("preview"), meter: part("meter"), join: part("join"), leave: part("leave"),
    status: part("status"), warning: part("warning"), clock: part("clock"), remotes: part("remotes"),
    controls: part("controls"), endForm: part("end-form"), reason: part("reason"), notice: part("notice"),
  };
  const config = {
    ice: parseJson(root.getAttribute("data-ice-servers"), []),
    relayOnly: root.getAttribute("data-relay-only") === "true",
    starts: Date.parse(root.getAttribute("data-starts") || ""),
    zone: root.getAttribute("data-zone") || undefined,
  };
  const lang = document.documentElement.lang || undefined;

  let state = "preview";
  let local = null;            // the camera and microphone, MediaStream
  let audioContext = null;
  let socket = null;
  let iceConfig = null;
  let endAt = null;            // performance.now() of the booked end, from the server's left_s
  let endsIso = null;
  let muted = false;
  const mutedSides = new Set();
  const peers = new Map();     // id -> {name, side, pc, figure, pending[]}; never a supervisor
  const silent = new Map();    // token -> {pc, pending[]}: a supervisor's connection, never shown
  const timers = [];
  let inbox = Promise.resolve();

  function parseJson(text, fallback) {
    try { return text ? JSON.parse(text) : fallback; } catch (_) { return fallback; }
  }

  function text(name, values) {
    let message = root.getAttribute(`data-text-${name}`) || "";
    for (const [key, value] of Object.entries(values || {})) { message = message.split(`{${key}}`).join(value); }
    return message;
  }

  function clockTime(iso) {
    const when = new Date(iso);
    try {
      return when.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", timeZone: config.zone });
    } catch (_) {
      return when.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    }
  }

  function duration(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  }

  function say(message) { if (ui.status) { ui.status.textContent = message; } }
  function warn(message) { if (ui.warning) { ui.warning.textContent = message; ui.warning.hidden = !message; } }
  function setState(next) { state = next; root.setAttribute("data-state", next); }

  // -- waiting room: preview and level meter --------------------------------------------------------------------

  async function startDevices() {
    if (supervisor || local) { return; }
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (error) {
      say(text("no-devices", { error: error && error.name ? error.name : String(error) }));
      return;
    }
    if (ui.preview) { ui.preview.srcObject = local; }
    const track = local.getAudioTracks()[0];
    if (!track || !ui.meter || !window.AudioContext) { return; }
    audioContext = new AudioContext();
    const analyser = audioContext.createAnalyser();
    analyser.fftSize = 512;
    audioContext.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    timers.push(window.setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const x of samples) { sum += x * x; }
      ui.meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }, 100));
    // Browsers start an AudioContext suspended until the person does something on the page.
    const resume = () => { if (audioContext && audioContext.state === "suspended") { audioContext.resume(); } };
    document.addEventListener("pointerdown", resume, { once: true });
    document.addEventListener("keydown", resume, { once: true });
  }

  function tick() {
    const now = performance.now();
    if (endAt !== null) {
      if (ui.clock) { ui.clock.textContent = text("left", { time: duration(endAt - now) }); }
    } else if (Number.isFinite(config.starts) && ui.clock) {
      const until = config.starts - Date.now();
      ui.clock.textContent = until > 0 ? text("starts-in", { time: duration(until) }) : "";
    }
  }

  // -- the socket -----------------------------------------------------------------------------------------------

  function join() {
    if (socket || ["ended", "refused", "replaced", "left"].includes(state)) { return; }
    if (audioContext && audioContext.state === "suspended") { audioContext.resume(); }
    const url = new URL(root.getAttribute("data-ws") || "", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    setState("connecting");
    say(text("connecting"));
    if (ui.join) { ui.join.disabled = true; }
    socket = new WebSocket(url.href);
    socket.addEventListener("message", (event) => {
      const message = parseJson(event.data, null);
      if (!message || typeof message.type !== "string") { return; }
      inbox = inbox.then(() => handle(message)).catch((error) => {
        console.error("gatehouse call:", message.type, error);
      });
    });
    socket.addEventListener("close", () => {
      socket = null;
      if (!["ended", "refused", "replaced", "left"].includes(state)) { finish("lost", text("lost")); }
    });
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
  }

  async function handle(message) {
    switch (message.type) {
      case "welcome": return welcome(message);
      case "open": return opened(message);
      case "peer-joined": return peerJoined(message.peer);
      case "peer-left": return dropPeer(message.id);
      case "silent-left": return dropSilent(message.id);
      case "offer": return message.silent ? answerSilent(message) : answer(message);
      case "answer": return answered(message);
      case "ice": return candidate(message);
      case "warning": return warning(message);
      case "muted": return setMuted(message.muted);
      case "side-muted": return sideMuted(message.side, message.muted);
      case "ended": return ended(message);
      case "replaced": return finish("replaced", text("replaced"));
      case "refused": return finish("refused", text(`refused-${message.code}`) || text("refused"));
      default: return undefined;
    }
  }

  async function welcome(message) {
    iceConfig = {
      iceServers: Array.isArray(message.ice_servers) && message.ice_servers.length ? message.ice_servers : config.ice,
      iceTransportPolicy: (message.relay_only || config.relayOnly) ? "relay" : "all",
    };
    endAt = performance.now() + message.left_s * 1000;
    endsIso = message.ends;
    for (const side of message.muted_sides || []) { mutedSides.add(side); }
    if (supervisor) { mutedSides.forEach((side) => pressed(side, true)); }
    if (message.muted) { await setMuted(true); }
    if (message.warning) { warn(text(`warning-${message.warning}`, { time: clockTime(endsIso) })); }
    if (ui.leave) { ui.leave.hidden = false; }
    if (ui.controls) { ui.controls.hidden = !supervisor; }
    if (message.phase === "open") {
      await opened(message);
      if (message.late && ui.notice) { ui.notice.textContent = text("late", { time: clockTime(endsIso) }); }
    } else {
      setState("waiting");
      say(text("waiting"));
    }
  }

  async function opened(message) {
    setState("in-call");
    if (typeof message.left_s === "number") { endAt = performance.now() + message.left_s * 1000; }
    say(message.peers && message.peers.length ? "" : text("alone"));
    for (const peer of message.peers || []) {
      listPeer(peer);
      await offer(peer.id);
    }
  }

  async function peerJoined(peer) {
    listPeer(peer);
    say("");
    if (supervisor) { await offer(peer.id); }  // otherwise the newcomer calls this page
  }

  // -- connections ----------------------------------------------------------------------------------------------

  function listPeer(peer) {
    dropPeer(peer.id);
    const figure = document.createElement("figure");
    figure.className = "call-remote";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = !supervisor && mutedSides.has(peer.side);
    const caption = document.createElement("figcaption");
    caption.textContent = peer.name;
    video.setAttribute("aria-label", peer.name);
    figure.append(video, caption);
    if (ui.remotes) { ui.remotes.append(figure); }
    peers.set(peer.id, { name: peer.name, side: peer.side, pc: null, figure, video, pending: [] });
  }

  function connection(entry, to) {
    const pc = new RTCPeerConnection(iceConfig || { iceServers: config.ice });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) { send({ type: "ice", to, candidate: event.candidate.toJSON() }); }
    });
    entry.pc = pc;
    entry.pending = [];
    return pc;
  }

  function addLocal(pc) {
    if (local) {
      for (const track of local.getTracks()) { pc.addTrack(track, local); }
    }
    for (const kind of ["audio", "video"]) {
      if (!pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
        pc.addTransceiver(kind, { direction: supervisor ? "recvonly" : "sendrecv" });
      }
    }
  }

  function showRemote(entry, pc) {
    pc.addEventListener("track", (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      if (entry.video && entry.video.srcObject !== stream) { entry.video.srcObject = stream; }
    });
  }

  async function offer(id) {
    const entry = peers.get(id);
    if (!entry) { return; }
    if (entry.pc) { entry.pc.close(); }
    const pc = connection(entry, id);
    showRemote(entry, pc);
    if (supervisor) {
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
    } else {
      addLocal(pc);
      await applyMute(pc);
    }
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "offer", to: id, sdp: pc.localDescription.sdp });
  }

  async function answer(message) {
    const entry = peers.get(message.from);
    if (!entry || supervisor) { return; }
    if (entry.pc) { entry.pc.close(); }
    const pc = connection(entry, message.from);
    showRemote(entry, pc);
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    addLocal(pc);
    await applyMute(pc);
    await pc.setLocalDescription(await pc.createAnswer());
    send({ type: "answer", to: message.from, sdp: pc.localDescription.sdp });
    await flush(entry);
  }

  // A supervisor's offer only receives: answer it sending this page's camera and microphone, and nothing else.
  // It is never listed nor shown; the server refuses an answer that would receive.
  async function answerSilent(message) {
    if (supervisor) { return; }
    dropSilent(message.from);
    const entry = { pc: null, pending: [] };
    silent.set(message.from, entry);
    const pc = connection(entry, message.from);
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      const track = local ? local.getTracks().find((t) => t.kind === kind) : null;
      transceiver.direction = track ? "sendonly" : "inactive";
      if (track) { await transceiver.sender.replaceTrack(kind === "audio" && muted ? null : track); }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    send({ type: "answer", to: message.from, sdp: pc.localDescription.sdp });
    await flush(entry);
  }

  async function answered(message) {
    const entry = peers.get(message.from);
    if (!entry || !entry.pc || entry.pc.signalingState !== "have-local-offer") { return; }
    await entry.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    await flush(entry);
  }

  async function candidate(message) {
    const entry = peers.get(message.from) || silent.get(message.from);
    if (!entry || !entry.pc || !message.candidate) { return; }
    if (!entry.pc.remoteDescription) { entry.pending.push(message.candidate); return; }
    await entry.pc.addIceCandidate(message.candidate);
  }

  async function flush(entry) {
    const waiting = entry.pending.splice(0);
    for (const c of waiting) { await entry.pc.addIceCandidate(c); }
  }

  function dropPeer(id) {
    const entry = peers.get(id);
    if (!entry) { return; }
    if (entry.pc) { entry.pc.close(); }
    if (entry.video) { entry.video.srcObject = null; }
    entry.figure.remove();
    peers.delete(id);
    if (state === "in-call" && peers.size === 0) { say(text("alone")); }
  }

  function dropSilent(token) {
    const entry = silent.get(token);
    if (entry && entry.pc) { entry.pc.close(); }
    silent.delete(token);
  }

  function connections() {
    return [...peers.values(), ...silent.values()].map((e) => e.pc).filter((pc) => pc && pc.signalingState !== "closed");
  }

  // -- mute, warnings, the end ----------------------------------------------------------------------------------

  // Muted by staff: the track is disabled and taken off every sender, so no sound leaves this page at all.
  async function applyMute(pc) {
    const track = local ? local.getAudioTracks()[0] : null;
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.receiver.track.kind !== "audio" || !track) { continue; }
      if (transceiver.direction === "recvonly" || transceiver.direction === "inactive") { continue; }
      await transceiver.sender.replaceTrack(muted ? null : track);
    }
  }

  async function setMuted(value) {
    muted = Boolean(value);
    if (local) { local.getAudioTracks().forEach((t) => { t.enabled = !muted; }); }
    for (const pc of connections()) { await applyMute(pc); }
    if (state !== "preview") { say(text(muted ? "muted" : "unmuted")); }
  }

  function sideMuted(side, value) {
    if (value) { mutedSides.add(side); } else { mutedSides.delete(side); }
    if (supervisor) { pressed(side, value); return; }
    for (const entry of peers.values()) {
      if (entry.side === side && entry.video) { entry.video.muted = Boolean(value); }
    }
    say(text(`side-${value ? "muted" : "unmuted"}-${side}`));
  }

  function pressed(side, value) {
    const button = root.querySelector(`[data-call-mute="${side}"]`);
    if (button) { button.setAttribute("aria-pressed", value ? "true" : "false"); }
  }

  function warning(message) {
    if (typeof message.left_s === "number") { endAt = performance.now() + message.left_s * 1000; }
    warn(text(`warning-${message.minutes_left}`, { time: clockTime(endsIso || new Date().toISOString()) }));
  }

  function ended(message) {
    let said;
    if (message.by === "time") { said = text("ended-time"); } else if (message.by === "shutdown") {
      said = text("ended-shutdown");
    } else {
      said = text("ended-staff", { reason: text(`reason-${message.reason}`) || message.reason });
    }
    finish("ended", said);
  }

  // Everything stops: connections closed, camera and microphone released, the socket closed.
  function finish(next, message) {
    setState(next);
    for (const id of [...peers.keys()]) { dropPeer(id); }
    for (const token of [...silent.keys()]) { dropSilent(token); }
    if (local) { local.getTracks().forEach((t) => t.stop()); }
    if (ui.preview) { ui.preview.srcObject = null; }
    if (audioContext) { audioContext.close(); audioContext = null; }
    timers.splice(0).forEach((t) => window.clearInterval(t));
    endAt = null;
    if (ui.clock) { ui.clock.textContent = ""; }
    warn("");
    say(message);
    if (ui.notice) { ui.notice.textContent = ""; }
    if (ui.join) { ui.join.disabled = true; }
    if (ui.leave) { ui.leave.hidden = true; }
    if (ui.controls) { ui.controls.hidden = true; }
    if (socket) { const s = socket; socket = null; s.close(1000); }
  }

  // -- for tests and for support staff: what the page is doing --------------------------------------------------

  async function stats() {
    const open = connections();
    const sums = { inboundAudioBytes: 0, inboundVideoBytes: 0, outboundBytes: 0, receivingFrom: 0,
                   connections: open.length };
    for (const pc of open) {
      const report = await pc.getStats();
      let inbound = 0;
      report.forEach((s) => {
        if (s.type === "inbound-rtp") {
          const bytes = s.bytesReceived || 0;
          inbound += bytes;
          if (s.kind === "audio") { sums.inboundAudioBytes += bytes; } else if (s.kind === "video") {
            sums.inboundVideoBytes += bytes;
          }
        } else if (s.type === "outbound-rtp") { sums.outboundBytes += s.bytesSent || 0; }
      });
      if (inbound > 0) { sums.receivingFrom += 1; }
    }
    return sums;
  }

  async function candidates() {
    const types = [];
    for (const pc of connections()) {
      const report = await pc.getStats();
      const pairs = [];
      report.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) { pairs.push(report.get(s.selectedCandidatePairId)); }
      });
      if (!pairs.length) {
        report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") { pairs.push(s); } });
      }
      for (const pair of pairs) {
        const candidate = pair && report.get(pair.localCandidateId);
        if (candidate) { types.push(candidate.candidateType); }
      }
    }
    return types;
  }

  window.gatehouseCall = Object.freeze({
    get state() { return state; },
    peers: () => [...peers.values()].map((p) => p.name),
    stats,
    candidates,
  });

  // -- wiring ---------------------------------------------------------------------------------------------------

  setState("preview");
  if (ui.join) { ui.join.addEventListener("click", () => { startDevices().then(join); }); }
  if (ui.leave) {
    ui.leave.addEventListener("click", () => finish("left", text("left-call")));
  }
  for (const button of root.querySelectorAll("[data-call-mute]")) {
    button.addEventListener("click", () => {
      send({ type: "mute", side: button.getAttribute("data-call-mute"),
             muted: button.getAttribute("aria-pressed") !== "true" });
    });
  }
  if (ui.endForm) {
    ui.endForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = ui.reason ? ui.reason.value.trim() : "";
      if (!reason) { say(text("reason-needed")); if (ui.reason) { ui.reason.focus(); } return; }
      send({ type: "end", reason });
    });
  }
  timers.push(window.setInterval(tick, 1000));
  tick();
  startDevices();
})();
