"""The sans-I/O session core on its own: pacing and turn timing without sockets or clocks."""

from __future__ import annotations

import base64
import json
from typing import Any

from voxline.audio import PCM16_24K
from voxline.audio.tone import silence, tone
from voxline.testing.realtime.core import RealtimeSessionCore
from voxline.testing.realtime.engine import (
    EnergySpeechDetector,
    ScriptedEngine,
    ScriptedResponse,
    ScriptedTranscriber,
)
from voxline.testing.schema import default_validator


def make_core(engine: ScriptedEngine | None = None, pace: float | None = None) -> RealtimeSessionCore:
    core = RealtimeSessionCore(
        kind="realtime",
        model="gpt-realtime",
        now=1_800_000_000.0,
        engine=engine or ScriptedEngine(),
        detector=EnergySpeechDetector(),
        transcriber=ScriptedTranscriber(),
        validator=default_validator(),
        pace=pace,
    )
    core.start()
    return core


def drain(core: RealtimeSessionCore) -> list[dict[str, Any]]:
    out = []
    while core.outbox:
        item = core.outbox.popleft()
        assert isinstance(item, dict)
        out.append(item)
    return out


def send(core: RealtimeSessionCore, event_type: str, **fields: Any) -> None:
    core.receive_text(json.dumps({"type": event_type, **fields}))


def test_session_created_expires_an_hour_after_now() -> None:
    core = make_core()
    (created,) = drain(core)
    assert created["session"]["expires_at"] == 1_800_003_600


def test_paced_response_is_due_by_its_audio_position() -> None:
    engine = ScriptedEngine()
    engine.queue.append(ScriptedResponse(text="x", audio=tone(300.0, 600, 24000), chunk_ms=200, delay_ms=50))
    core = make_core(engine, pace=1.0)
    drain(core)
    send(core, "response.create")
    assert [e["type"] for e in drain(core)] == ["response.created"]
    due_before_audio: list[float] = []
    while True:
        due = core.next_due_ms()
        assert due is not None
        event = core.next_response_event()
        assert event is not None
        if event["type"] == "response.output_audio.delta":
            due_before_audio.append(due)
        if event["type"] == "response.done":
            break
    # 200 ms chunks at real time after a 50 ms delay: each chunk is due when the previous one has played.
    assert due_before_audio == [50.0, 250.0, 450.0]
    assert core.next_due_ms() is None
    assert [e["type"] for e in drain(core)] == ["rate_limits.updated"]


def test_unpaced_response_is_always_due_and_stall_holds_it() -> None:
    engine = ScriptedEngine()
    engine.queue.append(
        ScriptedResponse(text="x", audio=tone(300.0, 600, 24000), chunk_ms=100, stall_after_ms=200)
    )
    core = make_core(engine)
    drain(core)
    send(core, "response.create")
    sent = []
    while core.next_due_ms() is not None:
        assert core.next_due_ms() == 0.0
        event = core.next_response_event()
        assert event is not None
        sent.append(event["type"])
    assert sent.count("response.output_audio.delta") == 2
    assert core.response_active
    core.release()
    assert core.next_due_ms() == 0.0


def test_turn_timing_comes_from_samples_not_from_delivery() -> None:
    core = make_core()
    drain(core)
    audio = silence(1000, PCM16_24K) + tone(440.0, 1000, 24000) + silence(1000, PCM16_24K)
    # All of it in one append: a live server would see the same timestamps.
    send(core, "input_audio_buffer.append", audio=base64.b64encode(audio).decode("ascii"))
    events = drain(core)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (700, 2200)
    assert events[-1]["type"] == "response.created"
