"""``voxline demo``: a phone call to the example agent, start to finish, in under a minute.

What happens (see docs/demo.md):

1. The runtime starts on 127.0.0.1 with ``examples/inbound_agent.py``. Its Realtime clients reach the
   embedded offline backend (:mod:`voxline.local.server`), or OpenAI with ``backend="openai"``
   (``voxline demo --backend openai``, with ``OPENAI_API_KEY``).
2. A built-in SIP caller (:class:`voxline.sip.SipEndpoint`) calls the agent over real SIP/RTP on
   127.0.0.1, waits for the greeting, then says each prepared line (espeak-ng speech, G.711) once
   the agent has finished speaking -- detected from the audio it receives going quiet.
3. The terminal shows the conversation live: what the caller said, what the agent heard and said,
   the Realtime event timeline and the latency of each turn (end of the caller's speech to the
   first agent audio the caller hears).
4. The call is recorded on the runtime side (caller left, agent right; a runtime observer attaches
   :meth:`voxline.media.recorder.Recorder.stereo` to the scenario's call and client, the scenario is
   unchanged), every Realtime message is traced, and ``conversation.json`` sums the turns up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

import numpy as np

from .audio import PCMU_8K, AudioFormat, Frame
from .audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .eventtarget import Event

__all__ = [
    "DEFAULT_LINES",
    "DemoError",
    "DemoOptions",
    "default_scenario_path",
    "run_browser_demo",
    "run_demo",
]

log = logging.getLogger("voxline.demo")

DEFAULT_LINES = ("what are your opening hours", "check my order 1 2 3 4", "goodbye")
CALLER_VOICE = "en-us+m3"
LEVEL_VOICED = 500.0  # mean |sample| of a 20 ms frame above which the caller hears the agent speak
ANSWER_QUIET_MS = 600  # the agent has finished when it has been quiet this long (and is not replying)


class DemoError(RuntimeError):
    """The demo could not run or the call went wrong (the message says what to do)."""


@dataclass
class DemoOptions:
    out: Path = Path("voxline-demo")
    scenario: Path | None = None
    rules: Path | None = None
    backend: str = "local"  # "local": the embedded offline backend; "openai": needs OPENAI_API_KEY
    lines: Sequence[str] = DEFAULT_LINES
    turn_timeout_s: float = 20.0
    color: bool | None = None  # None: when stdout is a terminal


def default_scenario_path() -> Path:
    """``examples/inbound_agent.py`` of a checkout, else the copy shipped with the package."""
    checkout = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"
    if checkout.is_file():
        return checkout
    from importlib import resources

    return Path(str(resources.files("voxline.local").joinpath("data", "inbound_agent.py")))


# -- the terminal view --------------------------------------------------------------------------------


class _View:
    """Plain lines on the terminal: ``  12.34  who  what``; colours only on a TTY."""

    COLORS: ClassVar[dict[str, str]] = {
        "caller": "36",
        "agent": "32",
        "event": "2",
        "call": "35",
        "error": "31",
        "note": "33",
    }

    def __init__(self, stream: TextIO, color: bool | None, t0: float) -> None:
        self.stream = stream
        self.color = stream.isatty() if color is None else color
        self.t0 = t0

    def _paint(self, kind: str, text: str) -> str:
        if not self.color:
            return text
        return f"\x1b[{self.COLORS.get(kind, '0')}m{text}\x1b[0m"

    def line(self, kind: str, who: str, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        self.stream.write(f"{elapsed:7.2f}  {self._paint(kind, f'{who:<8}')} {self._paint(kind, text)}\n")
        self.stream.flush()

    def plain(self, text: str, kind: str = "note") -> None:
        self.stream.write(self._paint(kind, text) + "\n")
        self.stream.flush()


# -- what the demo watches in the runtime --------------------------------------------------------------


@dataclass
class _Turn:
    said: str
    heard: str | None = None  # what the Realtime backend transcribed
    replies: list[str] = field(default_factory=list)
    function_calls: list[str] = field(default_factory=list)
    latency_ms: float | None = None


@dataclass
class _Watch:
    """State shared by the runtime observer, the caller and the view."""

    view: _View
    out: Path
    turns: list[_Turn] = field(default_factory=list)
    greeting: list[str] = field(default_factory=list)
    call: Any = None
    client: Any = None
    recorder: Any = None
    voice: Any = None  # a half-cascade's speech player
    responses_active: int = 0
    function_call_pending: bool = False
    errors: list[str] = field(default_factory=list)

    def replies(self) -> list[str]:
        return self.turns[-1].replies if self.turns else self.greeting

    @property
    def agent_busy(self) -> bool:
        return self.responses_active > 0 or self.function_call_pending

    def observe(self, session: Any, resource: Any) -> None:
        """Runtime observer: every call and Realtime client the scenario's session adopts."""
        from .media.tts import TTSPlayer
        from .openai.realtime import RealtimeAPIClient
        from .runtime.call import Call

        if isinstance(resource, Call) and self.call is None:
            self.call = resource
        elif isinstance(resource, RealtimeAPIClient) and self.client is None:
            self.client = resource
            self._listen(resource)
        elif isinstance(resource, TTSPlayer) and self.voice is None:
            # Half-cascade: the agent's voice is the player's, not the (text-mode) client's.
            self.voice = resource
            if self.recorder is not None:
                self.recorder.stop()
                self.recorder = None
        if self.call is not None and self.client is not None and self.recorder is None:
            from .media.clock import AsyncioMediaClock
            from .media.recorder import Recorder

            self.recorder = Recorder.stereo(
                AsyncioMediaClock.for_loop(),
                self.out / "recording.wav",
                left=self.call,
                right=self.voice or self.client,
                rate=8000,
            )

    def _listen(self, client: Any) -> None:
        from . import OpenAI

        ev = OpenAI.RealtimeAPIEvents
        handlers: dict[Any, Callable[[dict[str, Any]], None]] = {
            ev.InputAudioBufferSpeechStarted: lambda d: self.view.line("event", "event", "speech started"),
            ev.InputAudioBufferSpeechStopped: lambda d: self.view.line("event", "event", "speech stopped"),
            ev.ConversationItemInputAudioTranscriptionCompleted: self._heard,
            ev.ResponseCreated: self._response_created,
            ev.ResponseOutputAudioTranscriptDone: self._agent_said,
            ev.ResponseOutputItemDone: self._item_done,
            ev.ResponseDone: self._response_done,
            ev.Error: self._error,
        }
        for name, handler in handlers.items():
            client.add_event_listener(name, self._handler(handler))

    def _handler(self, handler: Callable[[dict[str, Any]], None]) -> Callable[[Event], None]:
        def on_event(event: Event) -> None:
            data = event.data if isinstance(event.data, dict) else {}
            handler(data)

        return on_event

    def _heard(self, data: dict[str, Any]) -> None:
        transcript = str(data.get("transcript") or "")
        if self.turns and self.turns[-1].heard is None:
            self.turns[-1].heard = transcript
        self.view.line("agent", "heard", f'"{transcript}"')

    def _response_created(self, data: dict[str, Any]) -> None:
        self.responses_active += 1
        self.function_call_pending = False
        self.view.line("event", "event", "response created")

    def _agent_said(self, data: dict[str, Any]) -> None:
        transcript = str(data.get("transcript") or "")
        self.replies().append(transcript)
        self.view.line("agent", "Voxy", f'"{transcript}"')

    def _item_done(self, data: dict[str, Any]) -> None:
        item = data.get("item") or {}
        if item.get("type") == "function_call":
            call = f"{item.get('name')}({item.get('arguments')})"
            if self.turns:
                self.turns[-1].function_calls.append(call)
            self.function_call_pending = True
            self.view.line("event", "function", call)

    def _response_done(self, data: dict[str, Any]) -> None:
        self.responses_active = max(0, self.responses_active - 1)
        response = data.get("response") or {}
        status = response.get("status")
        self.view.line("event", "event", f"response done ({status})")
        if status == "failed":
            self.errors.append(f"a response failed: {response.get('status_details')}")

    def _error(self, data: dict[str, Any]) -> None:
        error = data.get("error") or {}
        message = f"Realtime error {error.get('code')}: {error.get('message')}"
        self.errors.append(message)
        self.view.line("error", "error", message)


# -- the caller --------------------------------------------------------------------------------------


class _Ear:
    """What the caller hears: the time of the last voiced frame and the first one after a mark."""

    def __init__(self, fmt: AudioFormat) -> None:
        self._decode = alaw_decode if fmt.encoding == "pcma" else ulaw_decode
        self.last_voiced = 0.0
        self.voiced_since_mark: float | None = None
        self._mark = 0.0

    def on_audio(self, frame: Frame) -> None:
        samples = np.frombuffer(self._decode(frame.data), dtype="<i2")
        if samples.size and float(np.abs(samples).mean()) >= LEVEL_VOICED:
            now = time.monotonic()
            self.last_voiced = now
            if self.voiced_since_mark is None and now >= self._mark:
                self.voiced_since_mark = now

    def mark(self) -> None:
        self._mark = time.monotonic()
        self.voiced_since_mark = None


def _trim(pcm: bytes, rate: int, level: int = 64) -> bytes:
    """Speech without the silence espeak-ng puts around it (so "end of speech" is the last word)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > level)
    if loud.size == 0:
        return pcm
    pad = rate // 50
    return samples[max(0, loud[0] - pad) : loud[-1] + pad].tobytes()


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def _agent_finished(watch: _Watch, ear: _Ear, timeout: float, what: str) -> None:
    """The agent spoke (audio reached the caller) and is done: quiet, and no response under way."""
    await _until(lambda: ear.voiced_since_mark is not None, timeout, what)

    def done() -> bool:
        quiet = time.monotonic() - ear.last_voiced >= ANSWER_QUIET_MS / 1000
        return quiet and not watch.agent_busy

    await _until(done, timeout, f"the end of {what}")


# -- the demo ----------------------------------------------------------------------------------------


def _preflight(options: DemoOptions, env: dict[str, str]) -> None:
    from .local.tts import EspeakNotFoundError, Synthesizer

    if options.backend not in ("local", "openai"):
        raise DemoError(f"backend must be 'local' or 'openai', not {options.backend!r}")
    if options.backend == "openai":
        if not env.get("OPENAI_API_KEY"):
            raise DemoError(
                "--backend openai needs OPENAI_API_KEY (the default, --backend local, needs none)"
            )
        if options.rules is not None:
            raise DemoError("--rules is for the embedded backend (--backend local)")
    try:
        Synthesizer()
    except EspeakNotFoundError as exc:
        raise DemoError(str(exc)) from None
    if options.backend == "local":
        from .local.server import LocalBackendUnavailableError, missing_local_modules

        missing = missing_local_modules()
        if missing:
            raise DemoError(
                f"{LocalBackendUnavailableError(missing)} (or --backend openai with OPENAI_API_KEY)"
            )


async def _demo(options: DemoOptions, view: _View, env: dict[str, str]) -> tuple[_Watch, dict[str, Any]]:
    _preflight(options, env)
    from .local.tts import Synthesizer
    from .runtime.server import Runtime, RuntimeConfig
    from .runtime.session import Secrets
    from .sip.endpoint import SipEndpoint

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("realtime-*.jsonl"):
        old.unlink()
    scenario = options.scenario or default_scenario_path()
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario),
            "sip": "127.0.0.1:0",
            "http": "off",
            "idle_session_s": 0.5,
            "trace": True,
        },
        env={},
    )
    runtime = Runtime(config, Secrets(env=env))
    watch = _Watch(view, out)
    runtime.observers.append(watch.observe)
    backend = None
    if options.backend == "local":
        from .local.server import use_local_backend

        backend = await use_local_backend(
            runtime, rules=options.rules, announce=lambda m: view.line("note", "backend", m)
        )
    else:
        view.line("note", "backend", "--backend openai: the agent runs on OpenAI's Realtime API")
    caller = SipEndpoint("127.0.0.1", 0, transports=("udp",))
    summary: dict[str, Any] = {"backend": "embedded offline" if backend else "OpenAI"}
    try:
        await runtime.start()
        await caller.start()
        assert runtime.sip is not None
        target = f"sip:agent@127.0.0.1:{runtime.sip.port}"
        view.line("note", "runtime", f"{scenario.name} answers SIP on 127.0.0.1:{runtime.sip.port}")
        voice = Synthesizer(CALLER_VOICE, 170, output_rate=8000)
        leg = await caller.call(target, caller_id="demo-caller", display_name="voxline demo")
        await asyncio.wait_for(leg.wait_connected(), 10)
        fmt = leg.audio_format or PCMU_8K
        view.line("call", "call", f"connected to {target} ({fmt.encoding})")
        ear = _Ear(fmt)
        leg.on_audio = ear.on_audio
        ear.mark()
        await _agent_finished(watch, ear, options.turn_timeout_s, "the agent's greeting")
        for line in options.lines:
            turn = _Turn(line)
            watch.turns.append(turn)
            speech = _trim(await voice.synthesize_async(line), 8000)
            view.line("caller", "caller", f'"{line}"')
            leg.send_audio(alaw_encode(speech) if fmt.encoding == "pcma" else ulaw_encode(speech))
            await _until(lambda: leg.queued_ms == 0, 30, "the caller's audio to be sent")
            ear.mark()
            spoke_at = time.monotonic()
            await _until(lambda: ear.voiced_since_mark is not None, options.turn_timeout_s, "an answer")
            assert ear.voiced_since_mark is not None
            turn.latency_ms = (ear.voiced_since_mark - spoke_at) * 1000
            view.line("event", "latency", f"{turn.latency_ms / 1000:.2f} s (end of speech to first audio)")
            await _agent_finished(watch, ear, options.turn_timeout_s, f"the answer to {line!r}")
        leg.hangup()
        view.line("call", "call", "caller hung up")
        await asyncio.wait_for(leg.wait_ended(), 5)
        await _until(lambda: not runtime.sessions, 5, "the session to end")
    finally:
        if watch.recorder is not None:
            watch.recorder.stop()
        await caller.close()
        await runtime.shutdown(grace_s=0)
        if backend is not None:
            await backend.close()
    return watch, summary


def _normal(text: str) -> str:
    from .local.grammar import normalise

    return normalise(text)


def _report(watch: _Watch, summary: dict[str, Any], local: bool, elapsed: float) -> tuple[int, str]:
    out = watch.out
    recording = out / "recording.wav"
    traces = sorted(out.glob("realtime-*.jsonl"))
    latencies = [t.latency_ms for t in watch.turns if t.latency_ms is not None]
    understood = sum(1 for t in watch.turns if t.heard is not None and _normal(t.heard) == _normal(t.said))
    conversation = {
        **summary,
        "greeting": watch.greeting,
        "turns": [
            {
                "caller_said": t.said,
                "agent_heard": t.heard,
                "agent_replies": t.replies,
                "function_calls": t.function_calls,
                "latency_ms": round(t.latency_ms) if t.latency_ms is not None else None,
            }
            for t in watch.turns
        ],
        "recording": str(recording),
        "traces": [str(p) for p in traces],
        "errors": watch.errors,
        "duration_s": round(elapsed, 2),
    }
    (out / "conversation.json").write_text(json.dumps(conversation, indent=2) + "\n", encoding="utf-8")
    watch.view.plain(f"recording (caller left, agent right): {recording}")
    for trace in traces:
        watch.view.plain(f"trace of the Realtime session:       {trace}")
    watch.view.plain(f"conversation summary:                {out / 'conversation.json'}")
    median = f"{statistics.median(latencies) / 1000:.2f} s" if latencies else "n/a"
    line = (
        f"voxline demo: {len(watch.turns)} turn{'' if len(watch.turns) == 1 else 's'} "
        f"on the {summary['backend']} backend, "
        f"{understood}/{len(watch.turns)} understood, median latency {median}, {elapsed:.1f} s"
    )
    problems = list(watch.errors)
    if local and understood < len(watch.turns):
        problems.append("the agent misheard the caller")
    if problems:
        return 1, f"{line} -- FAILED: {'; '.join(problems)}"
    return 0, line


async def _browser_demo(options: DemoOptions, http: str, view: _View, env: dict[str, str]) -> None:
    """The example agent on the embedded backend, answering the playground page (docs/webrtc.md)."""
    _preflight(options, env)
    from .runtime.server import Runtime, RuntimeConfig, parse_hostport
    from .runtime.session import Secrets

    scenario = options.scenario or default_scenario_path()
    config = RuntimeConfig.load({"scenario": str(scenario), "sip": "off", "http": http}, env={})
    runtime = Runtime(config, Secrets(env=env))
    backend = None
    if options.backend == "local":
        from .local.server import use_local_backend

        backend = await use_local_backend(
            runtime, rules=options.rules, announce=lambda m: view.line("note", "backend", m)
        )
    try:
        await runtime.start()
        host = parse_hostport(http, "http")[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        view.plain(f"voxline demo: {scenario.name} answers WebRTC calls from the playground page:")
        view.plain(f"  http://{shown}:{runtime.http_port}/playground", "call")
        view.plain("open it in a browser, press Call and talk (Ctrl-C stops the demo)")
        await runtime.serve_forever()
    finally:
        await runtime.shutdown(grace_s=0)
        if backend is not None:
            await backend.close()


def run_browser_demo(
    options: DemoOptions,
    http: str = "127.0.0.1:8080",
    *,
    stream: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """``voxline demo --browser``: serve the playground against the example agent until stopped."""
    stream = stream if stream is not None else sys.stdout
    env = dict(os.environ) if env is None else env
    view = _View(stream, options.color, time.monotonic())
    try:
        asyncio.run(_browser_demo(options, http, view, env))
    except KeyboardInterrupt:
        return 0
    except (DemoError, ValueError, SyntaxError, OSError) as exc:
        from .local.server import setup_error_message

        view.plain(f"voxline demo: {setup_error_message(exc)}", "error")
        return 1
    return 0


def run_demo(options: DemoOptions, *, stream: TextIO | None = None, env: dict[str, str] | None = None) -> int:
    """Run the demo; the exit code (0: the conversation went as expected)."""
    stream = stream if stream is not None else sys.stdout
    env = dict(os.environ) if env is None else env
    t0 = time.monotonic()
    view = _View(stream, options.color, t0)
    local = options.backend == "local"
    previous_trace_dir = os.environ.get("VOXLINE_TRACE_DIR")
    os.environ["VOXLINE_TRACE_DIR"] = str(options.out)  # where the runtime's Realtime traces go
    try:
        watch, summary = asyncio.run(_demo(options, view, env))
    except (DemoError, ValueError, SyntaxError) as exc:  # a bad rules file or responder: file and line
        from .local.server import setup_error_message

        view.plain(f"voxline demo: {setup_error_message(exc)}", "error")
        return 1
    except Exception as exc:  # a clear line for the terminal; the traceback in the log
        log.debug("demo failed", exc_info=exc)
        view.plain(f"voxline demo: failed: {type(exc).__name__}: {exc}", "error")
        return 1
    finally:
        if previous_trace_dir is None:
            os.environ.pop("VOXLINE_TRACE_DIR", None)
        else:
            os.environ["VOXLINE_TRACE_DIR"] = previous_trace_dir
    code, line = _report(watch, summary, local, time.monotonic() - t0)
    view.plain(line, "note" if code == 0 else "error")
    return code
