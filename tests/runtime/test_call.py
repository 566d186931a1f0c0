"""``Call`` over a leg: control, events, G.711 pass-through, recording and playback (virtual clock)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxline import CallEvents
from voxline.audio import FRAME_MS, PCM16_24K, PCMU_8K, AudioFormat, Frame
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.audio.wav import read_wav, write_wav
from voxline.eventtarget import Event
from voxline.media.clock import VirtualMediaClock
from voxline.media.player import Player
from voxline.runtime.call import Call, CallState, LegListener


class MemoryLeg:
    """A leg with no network: records what the call sends, lets the test speak as the caller."""

    media_format: AudioFormat = PCMU_8K
    reports_playback = False
    playout_batch_ms = FRAME_MS
    transport = "local"

    def __init__(self) -> None:
        self.listener: LegListener | None = None
        self.sent: list[tuple[bytes, int]] = []
        self.actions: list[Any] = []
        self.cleared = 0

    @property
    def call(self) -> LegListener:
        assert self.listener is not None
        return self.listener

    def attach(self, listener: LegListener) -> None:
        self.listener = listener

    def answer(self, headers: Mapping[str, str] | None) -> None:
        self.actions.append("answer")
        self.call.connected()

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        self.actions.append(("reject", code))

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        self.actions.append("hangup")

    def capture_frame(self, data: bytes, end_ms: int) -> None:
        self.sent.append((data, end_ms))

    def clear_buffer(self) -> None:
        self.cleared += 1

    def flush(self) -> None:
        pass

    def played_ms(self) -> int | None:
        return None

    def send_digits(self, digits: str) -> None:
        self.actions.append(("digits", digits))

    def speak(self, data: bytes, timestamp_ms: int) -> None:
        self.call.audio(Frame(data, PCMU_8K, timestamp_ms))


def collect(call: Call, *names: CallEvents) -> list[Event]:
    events: list[Event] = []
    for name in names:
        call.add_event_listener(name, events.append)
    return events


def test_answer_connect_hangup_and_events() -> None:
    leg = MemoryLeg()
    call = Call(leg, caller_id="+1555", destination="agent", headers={"X-Test": "1"})
    events = collect(call, CallEvents.Connected, CallEvents.Disconnected)
    assert (call.caller_id(), call.callerid(), call.destination(), call.headers()) == (
        "+1555",
        "+1555",
        "agent",
        {"X-Test": "1"},
    )
    call.answer()
    assert call.state() is CallState.CONNECTED
    with pytest.raises(RuntimeError, match="cannot answer"):
        call.answer()
    call.send_digits("12#")
    call.hangup()
    call.hangup()
    assert leg.actions == ["answer", ("digits", "12#"), "hangup"]
    assert [e.name for e in events] == [CallEvents.Connected, CallEvents.Disconnected]
    assert events[1].initiator == "local" and events[1].call is call


def test_reject_and_bad_input() -> None:
    leg = MemoryLeg()
    call = Call(leg)
    failed = collect(call, CallEvents.Failed)
    with pytest.raises(ValueError, match="code"):
        call.reject(200)
    call.reject(486)
    assert leg.actions == [("reject", 486)] and failed[0].code == 486
    with pytest.raises(ValueError, match="digits"):
        Call(MemoryLeg()).send_digits("12x")


def test_tones_remote_hangup_and_failure_from_the_leg() -> None:
    leg = MemoryLeg()
    call = Call(leg)
    events = collect(call, CallEvents.ToneReceived, CallEvents.Disconnected)
    call.answer()
    leg.call.tone("5")
    leg.call.disconnected("BYE", "remote")
    leg.call.disconnected("again", "remote")  # reported once
    assert [(e.name, e.extra) for e in events] == [
        (CallEvents.ToneReceived, {"call": call, "tone": "5"}),
        (CallEvents.Disconnected, {"call": call, "reason": "BYE", "initiator": "remote"}),
    ]


def test_audio_to_the_call_passes_through_or_is_converted_once() -> None:
    leg = MemoryLeg()
    call = Call(leg)
    source = Player(VirtualMediaClock(), tone(300, 40, 8000), 8000, media_format=PCMU_8K)
    call.answer()
    ulaw = ulaw_encode(tone(300, 20, 8000))
    call.receive_frame(Frame(ulaw, PCMU_8K, 100), source)
    assert leg.sent[0][0] is ulaw  # the very same bytes: no decode, no copy
    assert leg.sent[0][1] == 120  # where this audio ends on the source's timeline
    pcm24 = tone(300, 20, 24000)
    call.receive_frame(Frame(pcm24, PCM16_24K, 120), source)
    assert len(leg.sent[1][0]) <= 160  # converted to μ-law 8 kHz


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


def test_stereo_recording_has_the_caller_left_and_what_it_hears_right(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    leg = MemoryLeg()
    call = Call(leg, clock=clock)
    events = collect(call, CallEvents.RecordStarted, CallEvents.RecordStopped)
    call.answer()
    recorder = call.record(stereo=True, path=tmp_path / "call.wav")
    agent = Player(clock, tone(700, 400, 8000, 0.5), 8000, media_format=PCMU_8K)
    agent.send_media_to(call)
    caller_voice = ulaw_encode(tone(400, 400, 8000, 0.5))
    for i in range(40):  # 800 ms: the caller speaks for the first 400 ms, the agent plays meanwhile
        clock.advance(FRAME_MS)
        chunk = caller_voice[i * 160 : (i + 1) * 160] or b"\xff" * 160
        leg.speak(chunk, i * FRAME_MS)
    call.hangup()
    assert not recorder.recording
    audio = read_wav(tmp_path / "call.wav")
    assert audio.channels == 2 and audio.rate == 8000
    samples = np.frombuffer(audio.pcm, dtype="<i2").reshape(-1, 2)
    left, right = samples[:, 0], samples[:, 1]
    assert _rms(left[:3200]) > 5000 and _rms(left[3600:]) < 200  # the caller's 400 ms tone
    assert _rms(right[:3200]) > 5000 and _rms(right[3600:]) < 200  # the agent's 400 ms tone
    assert [e.name for e in events] == [CallEvents.RecordStarted, CallEvents.RecordStopped]
    assert events[0].url == str(tmp_path / "call.wav")


def test_playback_replaces_the_incoming_stream_and_finishes(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    leg = MemoryLeg()
    call = Call(leg, clock=clock)
    finished = collect(call, CallEvents.PlaybackFinished)
    call.answer()
    other = Player(clock, tone(300, 2000, 8000), 8000, media_format=PCMU_8K)
    other.send_media_to(call)
    wav = tmp_path / "prompt.wav"
    write_wav(wav, tone(500, 200, 16000), 16000)
    player = call.start_playback(wav)
    assert call.media_source is player and other.media_sinks == ()
    clock.advance(400)
    assert len(finished) == 1
    assert sum(len(d) for d, _ in leg.sent) == 200 * 8  # 200 ms of μ-law
    with pytest.raises(OSError, match=r"missing\.wav"):
        call.start_playback(tmp_path / "missing.wav")
