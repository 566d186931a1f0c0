"""The sans-I/O Realtime core: framing, classification, state and statistics, with no socket."""

from __future__ import annotations

import base64
import json

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
    classify_error,
)

Type = OpenAI.RealtimeAPIClientType


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
    text = core.command(
        "conversation.item.truncate", {"item_id": "i", "content_index": 0, "audio_end_ms": 5}, 0
    )
    assert text == '{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":5}'
    assert json.loads(core.command("response.create", None, 0)) == {"type": "response.create"}
    # The reference's examples pass "type" too; it is accepted when it matches.
    assert json.loads(core.command("response.create", {"type": "response.create"}, 0)) == {
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
        RealtimeProtocol().command(event_type, parameters, 0)  # type: ignore[arg-type]


def test_every_server_type_is_classified_and_unknown_is_kept() -> None:
    core = RealtimeProtocol()
    for provider_type, constant in REALTIME_SERVER_TYPES.items():
        message = core.receive(json.dumps({"type": provider_type, "event_id": "e"}), 0)
        assert message.kind is MessageKind.EVENT
        assert message.name is constant
        assert message.data == {"type": provider_type, "event_id": "e"}
    message = core.receive('{"type":"output_audio_buffer.started","response_id":"r"}', 0)
    assert message.name is OpenAI.RealtimeAPIEvents.Unknown
    assert message.data["response_id"] == "r"


@pytest.mark.parametrize("text", ["not json", "[1,2]", '{"no":"type"}', '{"type": 5}'])
def test_garbage_is_invalid_not_an_exception(text: str) -> None:
    core = RealtimeProtocol()
    assert core.receive(text, 0).kind is MessageKind.INVALID
    assert core.invalid_frames == 1


def test_audio_deltas_become_audio_and_count_latency() -> None:
    core = RealtimeProtocol()
    core.command("response.create", {}, now=10.0)
    audio = bytes(range(256)) * 3  # 768 bytes = 16 ms of 24 kHz PCM16
    for beta in (False, True):
        event_type = "response.audio.delta" if beta else "response.output_audio.delta"
        delta = {"type": event_type, "delta": base64.b64encode(audio).decode(), "item_id": "a"}
        message = core.receive(json.dumps(delta), now=10.25)
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
    core.receive(json.dumps({"type": "session.updated", "session": session}), 0)
    assert core.input_format == PCMU_8K
    assert core.output_format.bytes_per_ms == 8
    assert not core.formats_set_by_scenario
    core.command("session.update", {"session": {"type": "realtime", "instructions": "x"}}, 0)
    assert not core.formats_set_by_scenario
    core.command("session.update", {"session": {"type": "realtime", "audio": {"output": {"format": {}}}}}, 0)
    assert core.formats_set_by_scenario


def test_usage_and_response_counters_sum_over_response_done() -> None:
    core = RealtimeProtocol()
    for tokens in (10, 5):
        usage = {"input_tokens": tokens, "output_tokens": 1, "total_tokens": tokens + 1}
        core.receive(json.dumps({"type": "response.done", "response": {"usage": usage}}), 0)
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
