"""The sans-I/O Realtime core: framing, classification, state and statistics, with no socket."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from voxline import OpenAI
from voxline.audio import PCM16_24K, PCMU_8K
from voxline.openai.events import REALTIME_SERVER_TYPES
from voxline.openai.realtime import realtime_url
from voxline.openai.realtime_protocol import (
    ERROR_CODES,
    ErrorClass,
    MessageKind,
    RealtimeProtocol,
    ServerMessage,
    classify_error,
)

Type = OpenAI.RealtimeAPIClientType


def command(core: RealtimeProtocol, event_type: str, parameters: Any, now: float = 0) -> str:
    """The one text frame ``send`` queues."""
    core.send(event_type, parameters, now)
    (text,) = core.data_to_send()
    return text


def receive(core: RealtimeProtocol, text: str, now: float = 0) -> ServerMessage:
    core.receive_text(text, now)
    (message,) = core.events_received()
    return message


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.openai.com/", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:8000/", "ws://127.0.0.1:8000/v1/realtime?model=gpt-realtime"),
        ("http://host/proxy/", "ws://host/proxy/v1/realtime?model=gpt-realtime"),
        ("wss://host/v1/realtime", "wss://host/v1/realtime?model=gpt-realtime"),
        ("https://h/?api-version=1", "wss://h/v1/realtime?api-version=1&model=gpt-realtime"),
    ],
)
def test_url_from_base_url(base_url: str, expected: str) -> None:
    assert realtime_url(base_url, "gpt-realtime", Type.REALTIME) == expected


def test_transcription_sessions_use_the_transcription_intent() -> None:
    url = realtime_url("https://api.openai.com/", "gpt-realtime", Type.TRANSCRIPTION)
    assert url == "wss://api.openai.com/v1/realtime?intent=transcription"


def test_command_is_the_parameters_plus_type_in_order() -> None:
    core = RealtimeProtocol()
    text = command(
        core, "conversation.item.truncate", {"item_id": "i", "content_index": 0, "audio_end_ms": 5}, 0
    )
    assert text == '{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":5}'
    assert json.loads(command(core, "response.create", None, 0)) == {"type": "response.create"}
    # The reference's examples pass "type" too; it is accepted when it matches.
    assert json.loads(command(core, "response.create", {"type": "response.create"}, 0)) == {
        "type": "response.create"
    }


@pytest.mark.parametrize(
    ("event_type", "parameters", "error", "needle"),
    [
        ("response.create", {"type": "response.cancel"}, ValueError, "type"),
        ("response.create", ["x"], TypeError, "parameters"),
        ("session.update", {"session": "nope"}, TypeError, "session"),
        ("session.update", {"session": {"x": object()}}, TypeError, "JSON"),
        ("bogus.event", {}, ValueError, "bogus.event"),
    ],
)
def test_bad_command_input_names_the_problem(
    event_type: str, parameters: object, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        command(RealtimeProtocol(), event_type, parameters, 0)  # type: ignore[arg-type]


def test_every_server_type_is_classified_and_unknown_is_kept() -> None:
    core = RealtimeProtocol()
    for provider_type, constant in REALTIME_SERVER_TYPES.items():
        message = receive(core, json.dumps({"type": provider_type, "event_id": "e"}), 0)
        assert message.kind is MessageKind.EVENT
        assert message.name is constant
        assert message.data == {"type": provider_type, "event_id": "e"}
    message = receive(core, '{"type":"brand_new.event","response_id":"r"}', 0)
    assert message.name is OpenAI.RealtimeAPIEvents.Unknown
    assert message.data["response_id"] == "r"


@pytest.mark.parametrize("text", ["not json", "[1,2]", '{"no":"type"}', '{"type": 5}'])
def test_garbage_is_invalid_not_an_exception(text: str) -> None:
    core = RealtimeProtocol()
    assert receive(core, text, 0).kind is MessageKind.INVALID
    assert core.invalid_frames == 1


def test_audio_deltas_become_audio_and_count_latency() -> None:
    core = RealtimeProtocol()
    command(core, "response.create", {}, now=10.0)
    audio = bytes(range(256)) * 3  # 768 bytes = 16 ms of 24 kHz PCM16
    for beta in (False, True):
        event_type = "response.audio.delta" if beta else "response.output_audio.delta"
        delta = {"type": event_type, "delta": base64.b64encode(audio).decode(), "item_id": "a"}
        message = receive(core, json.dumps(delta), now=10.25)
        assert message.kind is MessageKind.AUDIO
        assert message.audio == audio
    stats = core.statistics()
    assert stats["audio_received_ms"] == 32.0
    assert stats["first_audio_latency"]["count"] == 1
    assert stats["first_audio_latency"]["last_ms"] == 250.0


def test_formats_follow_session_updated_and_scenario_choice() -> None:
    core = RealtimeProtocol()
    assert core.input_format == PCM16_24K
    session = {
        "audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcma"}}}
    }
    receive(core, json.dumps({"type": "session.updated", "session": session}), 0)
    assert core.input_format == PCMU_8K
    assert core.output_format.bytes_per_ms == 8
    assert not core.formats_set_by_scenario
    command(core, "session.update", {"session": {"type": "realtime", "instructions": "x"}}, 0)
    assert not core.formats_set_by_scenario
    command(core, "session.update", {"session": {"type": "realtime", "audio": {"output": {"format": {}}}}}, 0)
    assert core.formats_set_by_scenario


def test_usage_and_response_counters_sum_over_response_done() -> None:
    core = RealtimeProtocol()
    for tokens in (10, 5):
        usage = {"input_tokens": tokens, "output_tokens": 1, "total_tokens": tokens + 1}
        receive(core, json.dumps({"type": "response.done", "response": {"usage": usage}}), 0)
    stats = core.statistics()
    assert stats["responses"] == 2
    assert stats["usage"] == {"input_tokens": 15, "output_tokens": 2, "total_tokens": 17}


@pytest.mark.parametrize(("code", "expected"), sorted(ERROR_CODES.items()))
def test_error_taxonomy(code: str, expected: ErrorClass) -> None:
    assert classify_error({"type": "error", "error": {"code": code}}) is expected


def test_unlisted_or_missing_error_codes_are_recoverable() -> None:
    assert classify_error({"error": {"code": "something_new"}}) is ErrorClass.RECOVERABLE
    assert classify_error({"error": {"code": None}}) is ErrorClass.RECOVERABLE
    assert classify_error({}) is ErrorClass.RECOVERABLE


def test_the_core_reports_a_silent_server_once_per_silence() -> None:
    core = RealtimeProtocol(silence_timeout_s=2.0)
    core.append_audio(b"\xff" * 160, 0.0)  # starts the count
    core.append_audio(b"\xff" * 160, 1.9)
    assert core.events_received() == []
    core.append_audio(b"\xff" * 160, 2.0)
    core.append_audio(b"\xff" * 160, 3.0)
    (silent,) = core.events_received()
    assert silent.kind is MessageKind.SILENT and silent.data == {"silent_s": 2.0}
    core.receive_text('{"type":"rate_limits.updated","rate_limits":[]}', 3.5)  # the server speaks
    core.events_received()
    core.append_audio(b"\xff" * 160, 5.6)
    assert [m.kind for m in core.events_received()] == [MessageKind.SILENT]
    assert len(core.data_to_send()) == 5  # every append was queued, in order


def test_format_negotiation_does_not_count_as_the_scenarios_choice() -> None:
    core = RealtimeProtocol()
    session = {"session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}}
    core.send("session.update", session, 0, by_scenario=False)
    assert core.input_format == PCMU_8K and not core.formats_set_by_scenario
    core.send("session.update", session, 0)
    assert core.formats_set_by_scenario
