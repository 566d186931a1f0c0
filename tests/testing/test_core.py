"""The sans-I/O session core on its own: pacing and turn timing without sockets or clocks."""

from __future__ import annotations

import base64
import json
from typing import Any

from voxline.audio import PCM16_24K
from voxline.audio.tone import silence, tone
from voxline.testing.realtime.core import Abort, RealtimeSessionCore
from voxline.testing.realtime.engine import (
    EnergySpeechDetector,
    ResponseEngine,
    ScriptedEngine,
    ScriptedResponse,
    ScriptedTranscriber,
)
from voxline.testing.schema import default_validator


def make_core(engine: ResponseEngine | None = None, pace: float | None = None) -> RealtimeSessionCore:
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
    for item in core.data_to_send():
        assert isinstance(item, dict)
        out.append(item)
    return out


def send(core: RealtimeSessionCore, event_type: str, now_ms: float = 0.0, **fields: Any) -> None:
    core.receive_text(json.dumps({"type": event_type, **fields}), now_ms)


def test_session_created_expires_an_hour_after_now() -> None:
    core = make_core()
    (created,) = drain(core)
    assert created["session"]["expires_at"] == 1_800_003_600


def test_paced_response_is_due_by_its_audio_position() -> None:
    engine = ScriptedEngine()
    engine.queue.append(ScriptedResponse(text="x", audio=tone(300.0, 600, 24000), chunk_ms=200, delay_ms=50))
    core = make_core(engine, pace=1.0)
    drain(core)
    send(core, "response.create", now_ms=10_000.0)
    assert [e["type"] for e in drain(core)] == ["response.created"]
    due_before_audio: list[float] = []
    while True:
        deadline = core.next_deadline()
        assert deadline is not None
        core.tick(deadline - 1)  # not due yet: nothing
        assert core.data_to_send() == []
        core.tick(deadline)
        event, *after = drain(core)
        if event["type"] == "response.output_audio.delta":
            due_before_audio.append(deadline - 10_000.0)
        if event["type"] == "response.done":
            assert [e["type"] for e in after] == ["rate_limits.updated"]
            break
        assert after == []  # one event a tick
    # 200 ms chunks at real time after a 50 ms delay: each chunk is due when the previous one has played.
    assert due_before_audio == [50.0, 250.0, 450.0]
    assert core.next_deadline() is None


def test_unpaced_response_is_always_due_and_stall_holds_it() -> None:
    engine = ScriptedEngine()
    engine.queue.append(
        ScriptedResponse(text="x", audio=tone(300.0, 600, 24000), chunk_ms=100, stall_after_ms=200)
    )
    core = make_core(engine)
    drain(core)
    send(core, "response.create", now_ms=5.0)
    drain(core)
    sent = []
    while (deadline := core.next_deadline()) is not None:
        assert deadline == 5.0
        core.tick(5.0)
        sent += [e["type"] for e in drain(core)]
    assert sent.count("response.output_audio.delta") == 2
    assert core.response_active
    core.release()
    assert core.next_deadline() == 5.0


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


class _Later:
    """An engine answer the test resolves itself (the I/O layer would await it)."""

    def __await__(self) -> Any:  # pragma: no cover - never awaited here
        yield
        return None


class _AwaitingEngine:
    def respond(self, request: Any) -> Any:
        return _Later()


def test_an_awaited_plan_starts_the_pace_when_it_is_resolved() -> None:
    core = make_core(_AwaitingEngine(), pace=1.0)
    drain(core)
    send(core, "response.create", now_ms=100.0)
    assert [e["type"] for e in drain(core)] == ["response.created"]
    (work,) = core.events_received()
    assert work.kind == "response" and core.events_received() == []
    assert core.next_deadline() is None  # nothing to stream before the engine answered
    plan = ScriptedResponse(text="x", audio=tone(300.0, 400, 24000), chunk_ms=200, delay_ms=20)
    core.resolve(work, plan, 900.0)
    assert core.next_deadline() == 920.0


def test_a_response_released_from_a_stall_before_any_audio_starts_its_clock_at_the_next_tick() -> None:
    engine = ScriptedEngine()
    engine.queue.append(
        ScriptedResponse(text="x", audio=tone(300.0, 400, 24000), chunk_ms=200, delay_ms=50, stall_after_ms=0)
    )
    core = make_core(engine, pace=1.0)
    drain(core)
    send(core, "response.create", now_ms=0.0)
    drain(core)
    assert core.next_deadline() is None  # held
    core.release()
    assert core.next_deadline() == float("-inf")  # due at once: the tick learns the time
    core.tick(1000.0)
    assert core.data_to_send() == []  # the delay counts from here
    assert core.next_deadline() == 1050.0
    core.tick(1050.0)
    assert [e["type"] for e in drain(core)] == ["response.output_item.added"]


def test_connection_lost_stops_the_stream_and_drop_after_ms_aborts() -> None:
    engine = ScriptedEngine()
    engine.queue.append(ScriptedResponse(text="x", audio=tone(300.0, 600, 24000), chunk_ms=100))
    engine.queue.append(
        ScriptedResponse(text="y", audio=tone(300.0, 600, 24000), chunk_ms=100, drop_after_ms=100)
    )
    core = make_core(engine)
    send(core, "response.create")
    core.connection_lost()
    assert core.closed and core.next_deadline() is None
    core.tick(0.0)
    assert [e["type"] for e in drain(core)] == ["session.created", "response.created"]

    core = make_core(engine)
    send(core, "response.create")
    out: list[Any] = []
    while (deadline := core.next_deadline()) is not None:
        core.tick(deadline)
        out += core.data_to_send()
    assert isinstance(out[-1], Abort) and core.closed
    deltas = [e for e in out if isinstance(e, dict) and e["type"] == "response.output_audio.delta"]
    assert len(deltas) == 1
