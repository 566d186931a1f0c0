// The voxline playground: one WebRTC call to the agent of the server this page came from.
// No build step and nothing from elsewhere: plain browser APIs (WebRTC, WebAudio, EventSource).
"use strict";

const $ = (id) => document.getElementById(id);
const VOICED_RMS = 0.02;      // a 20 ms block of agent audio louder than this counts as speech

const state = {
  pc: null, channel: null, events: null, location: null, mic: null, audioContext: null,
  meterTimer: null, t0: 0, turns: [], lastSpeechStopped: null, agentItems: new Map(),
  rx: { voicedMs: 0, peak: 0, energy: 0, lastVoiced: 0, bargeAt: null, voicedAtBarge: 0 },
};

function token() {
  return $("token").value.trim();
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

function setStatus(s) {
  const el = $("status");
  el.textContent = s;
  el.dataset.state = s;
}

function logEvent(event) {
  const li = document.createElement("li");
  li.dataset.type = event.type;
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = ((event.t ?? 0) / 1000).toFixed(2);
  li.append(t, " ", event.type);
  const extra = event.text ?? event.reason ?? event.status ?? event.name ?? event.digit ?? event.message;
  if (extra) li.append(` ${extra}`);
  $("events").append(li);
  $("events").scrollTop = $("events").scrollHeight;
}

function say(who, text, itemId) {
  const li = document.createElement("li");
  li.className = who;
  if (itemId) li.dataset.item = itemId;
  li.textContent = text;
  $("transcript").append(li);
  return li;
}

function agentLine(itemId) {
  let li = state.agentItems.get(itemId);
  if (!li) {
    li = say("agent", "", itemId);
    state.agentItems.set(itemId, li);
  }
  return li;
}

function addTurn(latencyMs) {
  const n = state.turns.length + 1;
  const row = document.createElement("tr");
  row.innerHTML = `<td>${n}</td><td class="latency">${(latencyMs / 1000).toFixed(2)} s</td><td class="heard">in full</td>`;
  $("turns").querySelector("tbody").append(row);
  state.turns.push({ latencyMs, row });
}

function onTruncated(event) {
  const li = agentLine(event.item_id);
  li.classList.add("truncated");
  li.dataset.heardMs = event.audio_end_ms;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = `cut off: the model knows you heard ${(event.audio_end_ms / 1000).toFixed(2)} s of this`;
  li.append(badge);
  const turn = state.turns[state.turns.length - 1];
  if (turn) turn.row.querySelector(".heard").textContent = `${(event.audio_end_ms / 1000).toFixed(2)} s, then cut`;
}

function onEvent(event) {
  if (event.type !== "transcript.agent.delta") logEvent(event);  // the deltas show in the conversation
  switch (event.type) {
    case "call.connected": setStatus("connected"); break;
    case "speech.started":
      if (performance.now() - state.rx.lastVoiced < 500) {
        // The caller talks over the agent: how much agent audio still arrives before the next answer?
        state.rx.bargeAt = performance.now();
        state.rx.voicedAtBarge = state.rx.voicedMs;
      }
      break;
    case "response.created":
      if (state.rx.bargeAt !== null) {
        $("rx-stats").dataset.bargeInTailMs = Math.round(state.rx.voicedMs - state.rx.voicedAtBarge);
        $("rx-stats").dataset.bargeInWindowMs = Math.round(performance.now() - state.rx.bargeAt);
        state.rx.bargeAt = null;
      }
      break;
    case "speech.stopped": state.lastSpeechStopped = event.t; break;
    case "audio.started":
      if (state.lastSpeechStopped !== null) {
        addTurn(event.t - state.lastSpeechStopped);
        state.lastSpeechStopped = null;
      }
      break;
    case "transcript.caller": say("caller", event.text, event.item_id); break;
    case "transcript.agent.delta": {
      const li = agentLine(event.item_id);
      li.firstChild ? (li.firstChild.textContent += event.delta) : li.append(event.delta);
      break;
    }
    case "transcript.agent": {
      const li = agentLine(event.item_id);
      if (li.firstChild) li.firstChild.textContent = event.text; else li.append(event.text);
      break;
    }
    case "truncated": onTruncated(event); break;
    case "call.ended": ended(event.reason); break;
    default: break;
  }
}

function meter(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const v of buffer) sum += v * v;
  return Math.sqrt(sum / buffer.length);
}

function startMeters(local, remote) {
  const ctx = new AudioContext();
  state.audioContext = ctx;
  const mic = ctx.createAnalyser();
  ctx.createMediaStreamSource(local).connect(mic);
  const rx = ctx.createAnalyser();
  ctx.createMediaStreamSource(remote).connect(rx);
  const micBuf = new Float32Array(mic.fftSize);
  const rxBuf = new Float32Array(rx.fftSize);
  let last = performance.now();
  state.meterTimer = setInterval(() => {
    const now = performance.now();
    const dt = now - last;
    last = now;
    $("mic-level").value = Math.min(1, meter(mic, micBuf) * 4);
    const level = meter(rx, rxBuf);
    $("rx-level").value = Math.min(1, level * 4);
    const s = state.rx;
    s.energy += level * level * dt;
    s.peak = Math.max(s.peak, level);
    if (level > VOICED_RMS) {
      s.voicedMs += dt;
      s.lastVoiced = now;
    }
    const stats = $("rx-stats");
    stats.dataset.voicedMs = Math.round(s.voicedMs);
    stats.dataset.peak = s.peak.toFixed(3);
    stats.dataset.energy = s.energy.toFixed(3);
    stats.textContent = `heard ${(s.voicedMs / 1000).toFixed(1)} s of agent speech`;
  }, 20);
}

function gathered(pc) {
  // Non-trickle: the offer goes out with every candidate in it.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function call() {
  $("call").disabled = true;
  setStatus("connecting");
  try {
    const config = await (await fetch("/playground/config.json")).json();
    state.t0 = performance.now();
    // ?echo=off: no echo cancellation (headphones, or a test's fake microphone talking over the agent).
    const echo = new URLSearchParams(location.search).get("echo") !== "off";
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: echo, noiseSuppression: false, autoGainControl: false },
    });
    const pc = new RTCPeerConnection({ iceServers: config.ice_servers.map((urls) => ({ urls })) });
    state.pc = pc;
    for (const track of state.mic.getAudioTracks()) pc.addTrack(track, state.mic);
    state.channel = pc.createDataChannel("voxline");
    state.channel.onmessage = (m) => onEvent({ type: "channel", ...JSON.parse(m.data) });
    pc.ontrack = (e) => {
      const stream = e.streams[0] ?? new MediaStream([e.track]);
      const audio = $("agent-audio") ?? document.body.appendChild(Object.assign(document.createElement("audio"), { id: "agent-audio", autoplay: true }));
      audio.srcObject = stream;
      startMeters(state.mic, stream);
    };
    pc.onconnectionstatechange = () => {
      logEvent({ type: `webrtc.${pc.connectionState}`, t: performance.now() - state.t0 });
      if (pc.connectionState === "failed") ended("connection failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(config.webrtc_path, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...authHeaders() },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(`${response.status} ${await response.text()}`);
    state.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    const t = token();
    state.events = new EventSource(`${state.location}/events${t ? `?token=${encodeURIComponent(t)}` : ""}`);
    state.events.onmessage = (m) => onEvent(JSON.parse(m.data));
    state.events.addEventListener("end", () => state.events.close());
    $("mute").disabled = false;
    $("hangup").disabled = false;
  } catch (err) {
    setStatus("failed");
    logEvent({ type: "error", message: String(err), t: 0 });
    $("call").disabled = false;
  }
}

function ended(reason) {
  if (state.pc === null) return;
  setStatus("ended");
  logEvent({ type: "ended", reason, t: 0 });
  clearInterval(state.meterTimer);
  state.pc.close();
  state.pc = null;
  state.mic?.getTracks().forEach((t) => t.stop());
  $("mute").disabled = true;
  $("hangup").disabled = true;
  $("call").disabled = false;
}

async function hangup() {
  if (state.location) {
    await fetch(state.location, { method: "DELETE", headers: authHeaders() }).catch(() => {});
  }
  ended("hung up");
}

function mute() {
  const track = state.mic?.getAudioTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  $("mute").textContent = track.enabled ? "Mute" : "Unmute";
}

function keypad() {
  for (const digit of "123456789*0#") {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = digit;
    b.addEventListener("click", () => {
      if (state.channel?.readyState === "open") state.channel.send(JSON.stringify({ type: "dtmf", digit }));
    });
    $("keypad").append(b);
  }
}

$("token").value = new URLSearchParams(location.search).get("token") ?? "";
$("call").addEventListener("click", call);
$("hangup").addEventListener("click", hangup);
$("mute").addEventListener("click", mute);
keypad();
