"""Test a scenario end to end over real sockets: a runtime started from the scenario file with the
fake Realtime server wired in, callers per transport that speak text (espeak-ng) or a WAV file and
give back what they heard, and assertions on what the model received.

The pytest plugin (:mod:`voxline.testing.pytest_plugin`) wraps these in fixtures; they work without
pytest too::

    async with FakeRealtimeServer() as fake:
        async with running(Path("agent.py"), fake) as rt:
            heard = await twilio_call(rt, say="Where is my order?")
            model = await Conversation.of(fake)
            model.assert_tool_called("check_order")
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxline.audio import Frame
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.resample import Resampler
from voxline.audio.wav import read_wav
from voxline.realtime_server.server import RealtimeConnection, RealtimeServer
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.sip.endpoint import SipEndpoint

from .carrier_callers import TwilioTestCaller, VoxEngineStreamSpec, VoxEngineTestCaller

__all__ = [
    "Conversation",
    "Heard",
    "RunningRuntime",
    "running",
    "sip_call",
    "speech",
    "speech_pcm",
    "twilio_call",
    "voxengine_call",
    "wav_ulaw",
]

TEST_TOKEN = "test-token"
TEST_API_KEY = "sk-test-key"
SILENCE = b"\xff"  # μ-law silence, one sample
_FRAME = 160  # 20 ms of μ-law at 8 kHz


@dataclass
class RunningRuntime:
    """A started runtime: where to call it (``sip_uri``, ``twilio_url``, ``media_url``)."""

    runtime: Runtime
    token: str

    @property
    def sip_uri(self) -> str:
        if self.runtime.sip is None:
            raise RuntimeError("this runtime has no SIP listener: start it with sip=True")
        return f"sip:agent@127.0.0.1:{self.runtime.sip.port}"

    def _http(self, path: str) -> str:
        if self.runtime.http_port is None:
            raise RuntimeError("this runtime has no HTTP listener: start it with http=True")
        return f"ws://127.0.0.1:{self.runtime.http_port}{path}?token={self.token}"

    @property
    def twilio_url(self) -> str:
        return self._http(self.runtime.config.twilio_path)

    @property
    def media_url(self) -> str:
        return self._http(self.runtime.config.media_path)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call session has ended."""
        async with asyncio.timeout(timeout):
            while self.runtime.sessions:
                await asyncio.sleep(0.01)


@asynccontextmanager
async def running(
    scenario: str | Path,
    fake: RealtimeServer,
    *,
    sip: bool = True,
    http: bool = True,
    secrets: Mapping[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[RunningRuntime]:
    """``voxline run SCENARIO`` on loopback ports with the scenario's Realtime clients sent to
    ``fake`` (through ``Runtime(realtime_base_url=...)``). ``settings``: any ``voxline run`` setting
    by its TOML key (``mark_interval_ms=20``...). ``secrets``: the scenario's secrets (default:
    ``OPENAI_API_KEY`` set to a test key)."""
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario),
            "sip": "127.0.0.1:0" if sip else "off",
            "http": "127.0.0.1:0" if http else "off",
            "token": TEST_TOKEN,
            "idle_session_s": 0.2,
            **settings,
        },
        env={},
    )
    runtime = Runtime(
        config,
        Secrets(env=dict(secrets) if secrets is not None else {"OPENAI_API_KEY": TEST_API_KEY}),
        realtime_base_url=fake.base_url,
    )
    runtime.check_scenario()
    await runtime.start()
    try:
        yield RunningRuntime(runtime, TEST_TOKEN)
    finally:
        await runtime.shutdown(grace_s=0)


# -- what the callers say ----------------------------------------------------------------------------------


def speech_pcm(text: str, *, rate: int = 24000, voice: str | None = None) -> bytes:
    """``text`` spoken by espeak-ng, as PCM16 mono at ``rate`` (24 kHz: what the model sends, for
    ``ScriptedResponse(audio=...)``); raises ``RuntimeError`` naming the Debian package when
    espeak-ng is missing."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("speech() needs espeak-ng: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "say.wav"
        argv = [espeak, "-w", str(out), *(["-v", voice] if voice else []), text]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        return _wav_pcm(out, rate)


def speech(text: str, *, pause_before_ms: int = 0, voice: str | None = None) -> bytes:
    """``text`` spoken by espeak-ng, as μ-law 8 kHz (what a phone line carries), after
    ``pause_before_ms`` of line silence."""
    return SILENCE * (8 * pause_before_ms) + ulaw_encode(speech_pcm(text, rate=8000, voice=voice))


def _wav_pcm(path: str | Path, rate: int) -> bytes:
    wav = read_wav(path)
    if wav.channels != 1:
        raise ValueError(f"{path}: the WAV file must be mono, not {wav.channels} channels")
    if wav.rate == rate:
        return wav.pcm
    resampler = Resampler(wav.rate, rate)
    return resampler.process(wav.pcm) + resampler.flush()


def wav_ulaw(path: str | Path) -> bytes:
    """A mono WAV file as μ-law 8 kHz."""
    return ulaw_encode(_wav_pcm(path, 8000))


def _audio(say: str | None, wav: str | Path | None, audio: bytes | None, pause_before_ms: int) -> bytes:
    given = [x is not None for x in (say, wav, audio)]
    if sum(given) != 1:
        raise TypeError("give exactly one of say=, wav= or audio= (μ-law 8 kHz bytes)")
    if say is not None:
        return speech(say, pause_before_ms=pause_before_ms)
    lead = SILENCE * (8 * pause_before_ms)
    return lead + (wav_ulaw(wav) if wav is not None else bytes(audio or b""))


# -- callers -----------------------------------------------------------------------------------------------


@dataclass
class Heard:
    """What a caller got back: ``audio`` (μ-law 8 kHz, everything the runtime sent), ``clears``
    (barge-ins the carrier was told of; SIP has none), ``errors`` (protocol problems seen)."""

    audio: bytes
    clears: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return len(self.audio) / 8

    @property
    def voiced_ms(self) -> float:
        """Milliseconds of the audio that are not line silence."""
        return sum(1 for b in self.audio if b not in (0xFF, 0x7F)) / 8

    def pcm(self) -> bytes:
        """The audio as PCM16 8 kHz: for a recogniser (``voxline.local.asr``), a WAV file, a check."""
        return ulaw_decode(self.audio)


async def twilio_call(
    rt: RunningRuntime,
    *,
    say: str | None = None,
    wav: str | Path | None = None,
    audio: bytes | None = None,
    pause_before_ms: int = 0,
    custom_parameters: Mapping[str, str] | None = None,
    linger_ms: float = 3000.0,
) -> Heard:
    """A Twilio Media Streams call to ``rt``: says ``say`` (or plays ``wav``, or sends ``audio``)
    after ``pause_before_ms`` of silence, lingers up to ``linger_ms`` for the answer, hangs up."""
    caller = TwilioTestCaller(
        rt.twilio_url,
        _audio(say, wav, audio, pause_before_ms),
        custom_parameters=custom_parameters,
        linger_ms=linger_ms,
    )
    await caller.run()
    return Heard(bytes(caller.received), caller.clears, list(caller.errors))


async def voxengine_call(
    rt: RunningRuntime,
    *,
    say: str | None = None,
    wav: str | Path | None = None,
    audio: bytes | None = None,
    pause_before_ms: int = 0,
    custom_parameters: Mapping[str, str] | None = None,
    linger_ms: float = 3000.0,
) -> Heard:
    """A VoxEngine WebSocket media call (one untagged μ-law stream) to ``rt``."""
    spec = VoxEngineStreamSpec(
        None, _audio(say, wav, audio, pause_before_ms), "ULAW", dict(custom_parameters or {})
    )
    caller = VoxEngineTestCaller(rt.media_url, [spec], linger_ms=linger_ms)
    await caller.run()
    return Heard(caller.received(None), caller.clears.get(None, 0), list(caller.errors))


async def sip_call(
    rt: RunningRuntime,
    *,
    say: str | None = None,
    wav: str | Path | None = None,
    audio: bytes | None = None,
    pause_before_ms: int = 0,
    linger_ms: float = 3000.0,
    caller_id: str = "sip-test-caller",
) -> Heard:
    """A SIP call over UDP with RTP (PCMU) to ``rt``, placed by voxline's own SIP user agent: sends
    the audio paced at real time, keeps listening ``linger_ms``, then hangs up (BYE)."""
    sent = _audio(say, wav, audio, pause_before_ms)
    received = bytearray()
    async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
        leg = await caller.call(rt.sip_uri, caller_id=caller_id)

        def on_audio(frame: Frame) -> None:
            received.extend(frame.data)

        leg.on_audio = on_audio
        await asyncio.wait_for(leg.wait_connected(), 10)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, offset in enumerate(range(0, len(sent), _FRAME)):
            leg.send_audio(sent[offset : offset + _FRAME].ljust(_FRAME, SILENCE))
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))
        end = loop.time() + linger_ms / 1000
        while loop.time() < end:  # silence while listening: the line stays up
            leg.send_audio(SILENCE * _FRAME)
            await asyncio.sleep(0.02)
        leg.hangup()
        await asyncio.wait_for(leg.wait_ended(), 5)
    return Heard(bytes(received))


# -- assertions on the conversation ------------------------------------------------------------------------


@dataclass
class Conversation:
    """What the model (the fake Realtime server) saw of one session: every client event it received,
    the session as configured, the caller's audio, tool outputs and truncations."""

    connection: RealtimeConnection

    @classmethod
    async def of(cls, fake: RealtimeServer, timeout: float = 10.0) -> Conversation:
        """The first session the fake has accepted (waits for it)."""
        return cls(await fake.wait_for_session(timeout=timeout))

    @property
    def received(self) -> list[dict[str, Any]]:
        return self.connection.received

    def received_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.received]

    @property
    def session(self) -> dict[str, Any]:
        return self.connection.session

    @property
    def caller_audio(self) -> bytes:
        """The caller's audio as the model got it (in the session's input format)."""
        return self.connection.input_audio

    def tool_outputs(self) -> dict[str, Any]:
        """``{call_id: output}`` of every ``function_call_output`` item the scenario sent."""
        return {
            item["call_id"]: item.get("output")
            for item in (
                e.get("item", {}) for e in self.received if e.get("type") == "conversation.item.create"
            )
            if item.get("type") == "function_call_output"
        }

    def truncations(self) -> list[dict[str, Any]]:
        """Every ``conversation.item.truncate`` (a barge-in cut the model's answer)."""
        return [e for e in self.received if e.get("type") == "conversation.item.truncate"]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Until the model has received ``count`` client events of ``event_type``."""
        return await self.connection.wait_for(event_type, count=count, timeout=timeout)

    def assert_received(self, event_type: str) -> None:
        types = self.received_types()
        assert event_type in types, f"the model never received {event_type!r}; it got {types}"

    def assert_tool_output(self, call_id: str, expected: Any = None) -> None:
        outputs = self.tool_outputs()
        assert call_id in outputs, f"no function_call_output for call {call_id!r}; outputs: {outputs}"
        if expected is not None:
            assert outputs[call_id] == expected, f"call {call_id!r}: {outputs[call_id]!r} != {expected!r}"

    def assert_truncated(self) -> dict[str, Any]:
        cuts = self.truncations()
        assert cuts, f"the model's answer was never truncated; it got {self.received_types()}"
        return cuts[0]

    def assert_not_truncated(self) -> None:
        assert not self.truncations(), f"unexpected truncation: {self.truncations()}"
