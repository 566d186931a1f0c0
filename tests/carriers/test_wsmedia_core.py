"""The VoxEngine WebSocket media core without I/O: tagged streams, encodings, both directions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from voxline.audio import PCM16_8K, PCM16_16K, PCMA_8K, PCMU_8K, AudioFormat
from voxline.carriers import Ignored, ProtocolError
from voxline.carriers.wsmedia import (
    VoxEngineMediaSocket,
    WsMediaMedia,
    WsMediaStart,
    WsMediaStop,
    encoding_for_format,
    format_for_encoding,
)


def start(
    seq: int, encoding: str | None, rate: int | None = None, tag: str | None = None, **extra: Any
) -> str:
    fmt: dict[str, Any] = {}
    if encoding is not None:
        fmt["encoding"] = encoding
    if rate is not None:
        fmt["sampleRate"] = rate
    body: dict[str, Any] = {"mediaFormat": fmt, **extra}
    if tag is not None:
        body["tag"] = tag
    return json.dumps({"event": "start", "sequenceNumber": seq, "start": body})


def media(seq: int, tag: str | None, chunk: int, timestamp: int, payload: bytes) -> str:
    body: dict[str, Any] = {
        "chunk": chunk,
        "timestamp": timestamp,
        "payload": base64.b64encode(payload).decode(),
    }
    if tag is not None:
        body["tag"] = tag
    return json.dumps({"event": "media", "sequenceNumber": seq, "media": body})


@pytest.mark.parametrize(
    ("encoding", "rate", "fmt"),
    [
        ("PCM8", 8000, PCM16_8K),
        ("PCM16", 16000, PCM16_16K),
        ("ULAW", 8000, PCMU_8K),
        ("ALAW", 8000, PCMA_8K),
        ("audio/x-mulaw", 8000, PCMU_8K),
        ("PCM16", None, PCM16_16K),
        (None, None, PCM16_8K),  # the documented default encoding is PCM8
    ],
)
def test_start_encodings(encoding: str | None, rate: int | None, fmt: AudioFormat) -> None:
    core = VoxEngineMediaSocket()
    event = core.receive(start(0, encoding, rate))
    assert isinstance(event, WsMediaStart)
    assert event.media_format == fmt and event.tag is None


def test_custom_parameters_arrive_as_a_json_string() -> None:
    core = VoxEngineMediaSocket()
    event = core.receive(start(0, "PCM16", 16000, tag="t1", customParameters='{"test":"123","n":4}'))
    assert isinstance(event, WsMediaStart)
    assert event.custom_parameters == {"test": "123", "n": "4"} and event.tag == "t1"
    as_object = core.receive(start(1, "ULAW", tag="t2", customParameters={"a": "b"}))
    assert isinstance(as_object, WsMediaStart) and as_object.custom_parameters == {"a": "b"}


def test_two_tagged_streams_keep_their_own_state() -> None:
    core = VoxEngineMediaSocket()
    core.receive(start(0, "ULAW", tag="a"))
    core.receive(start(1, "PCM16", 16000, tag="b"))
    # Timestamps are sample counts from any start value; frame times are relative to the first.
    a1 = core.receive(media(2, "a", 1, 1000, b"\xff" * 160))
    b1 = core.receive(media(3, "b", 1, 5, b"\x00" * 640))
    a2 = core.receive(media(4, "a", 2, 1160, b"\xff" * 160))
    b2 = core.receive(media(5, "b", 2, 325, b"\x00" * 640))
    assert a1 == WsMediaMedia("a", b"\xff" * 160, 1, 0) and a2 == WsMediaMedia("a", b"\xff" * 160, 2, 20)
    assert isinstance(b1, WsMediaMedia) and isinstance(b2, WsMediaMedia)
    assert (b1.timestamp_ms, b2.timestamp_ms) == (0, 20)
    stop = core.receive(
        json.dumps({"event": "stop", "sequenceNumber": 6, "stop": {"tag": "a", "mediaInfo": {"duration": 1}}})
    )
    assert stop == WsMediaStop("a", {"duration": 1})
    assert core.inbound_tags == ["b"]
    # Stream a is over, b goes on.
    assert isinstance(core.receive(media(7, "a", 3, 1320, b"\xff" * 160)), ProtocolError)
    assert core.stats["sequence_gaps"] == 0


def test_tag_at_the_top_level_is_accepted() -> None:
    core = VoxEngineMediaSocket()
    event = core.receive(json.dumps({"event": "start", "sequenceNumber": 0, "tag": "x", "start": {}}))
    assert isinstance(event, WsMediaStart) and event.tag == "x"


def test_outbound_stream_messages() -> None:
    core = VoxEngineMediaSocket()
    core.start_stream("out", PCM16_16K, {"k": "v"})
    core.send_audio("out", bytes(1280 + 100))  # 40 ms and a bit
    core.stop_stream("out")
    sent = [json.loads(t) for t in core.data_to_send()]
    assert [m["sequenceNumber"] for m in sent] == [0, 1, 2, 3, 4]
    assert sent[0] == {
        "event": "start",
        "sequenceNumber": 0,
        "start": {
            "mediaFormat": {"encoding": "PCM16", "sampleRate": 16000, "channels": 1},
            "customParameters": '{"k": "v"}',
            "tag": "out",
        },
    }
    medias = [m["media"] for m in sent[1:4]]
    assert [m["chunk"] for m in medias] == [1, 2, 3]
    assert [m["timestamp"] for m in medias] == [0, 320, 640]  # samples
    assert all(m["tag"] == "out" for m in medias)
    assert [len(base64.b64decode(m["payload"])) for m in medias] == [640, 640, 100]
    assert sent[4] == {
        "event": "stop",
        "sequenceNumber": 4,
        "stop": {"tag": "out", "mediaInfo": {"bytesSent": 1380, "duration": 0.043125}},
    }
    assert core.sent_ms("out") == 0  # the stream is over


def test_untagged_outbound_stream_has_no_tag_key() -> None:
    core = VoxEngineMediaSocket(chunk_ms=0)
    core.start_stream(None, PCMU_8K)
    core.send_audio(None, b"\xff" * 400)
    sent = [json.loads(t) for t in core.data_to_send()]
    assert "tag" not in sent[0]["start"] and "tag" not in sent[1]["media"]
    assert len(base64.b64decode(sent[1]["media"]["payload"])) == 400


def test_clear_drops_only_that_tags_unsent_media_and_leaves_no_sequence_gap() -> None:
    core = VoxEngineMediaSocket()
    core.start_stream("a", PCMU_8K)
    core.start_stream("b", PCMU_8K)
    core.send_audio("a", b"\xff" * 480)
    core.send_audio("b", b"\xd5" * 320)
    core.clear("a")
    sent = [json.loads(t) for t in core.data_to_send()]
    assert [(m["event"], m.get(m["event"], {}).get("tag")) for m in sent] == [
        ("start", "a"),
        ("start", "b"),
        ("media", "b"),
        ("media", "b"),
        ("clear", "a"),
    ]
    assert [m["sequenceNumber"] for m in sent] == list(range(5))


def test_outbound_commands_are_checked() -> None:
    core = VoxEngineMediaSocket()
    with pytest.raises(RuntimeError, match="no outbound stream with tag 'x'"):
        core.send_audio("x", b"\xff")
    with pytest.raises(ValueError, match="no VoxEngine WebSocket encoding"):
        core.start_stream("x", AudioFormat("pcm16", 24000))
    with pytest.raises(ValueError, match="chunk_ms"):
        VoxEngineMediaSocket(chunk_ms=-20)


def test_encoding_names_round_trip() -> None:
    for name in ("PCM8", "PCM16", "ULAW", "ALAW"):
        assert encoding_for_format(format_for_encoding(name)) == name
    with pytest.raises(ValueError, match="'OPUS' is not supported"):
        format_for_encoding("OPUS")


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("{{{", 1007, "not JSON"),
        ('{"sequenceNumber": 0}', 1007, "no string 'event'"),
        (media(0, "a", 1, 0, b"\xff" * 160), 1002, "media before start for tag 'a'"),
        (start(0, "OPUS", 48000), 1003, "OPUS"),
        (start(0, "PCM8", 16000), 1003, "sampleRate is 16000"),
        (start(0, "ULAW", customParameters="{not json"), 1007, "customParameters"),
        (start(0, "ULAW", tag=None, customParameters=5), 1007, "customParameters"),
        ('{"event": "start", "start": {"tag": 7}}', 1007, "start.tag must be a string"),
    ],
)
def test_bad_input_is_a_protocol_error(text: str, code: int, reason: str) -> None:
    core = VoxEngineMediaSocket()
    event = core.receive(text)
    assert isinstance(event, ProtocolError)
    assert event.close_code == code and reason in event.reason


def test_second_start_on_a_running_tag_is_a_protocol_error() -> None:
    core = VoxEngineMediaSocket()
    core.receive(start(0, "ULAW", tag="a"))
    event = core.receive(start(1, "ULAW", tag="a"))
    assert isinstance(event, ProtocolError) and event.close_code == 1002


def test_unknown_events_custom_events_and_stray_stops_are_ignored() -> None:
    core = VoxEngineMediaSocket()
    assert core.receive('{"event": "mark", "sequenceNumber": 0}') == Ignored("mark", "unknown event")
    assert isinstance(core.receive('{"customEvent": "Hello", "payload": {}}'), Ignored)
    assert isinstance(core.receive('{"event": "stop", "sequenceNumber": 1, "stop": {"tag": "q"}}'), Ignored)
    assert core.stats["unknown_events"] == 1 and core.stats["custom_events"] == 1
    assert core.stats["ignored_stops"] == 1


def test_audio_dropped_by_a_clear_leaves_no_gap_in_chunk_or_timestamp() -> None:
    core = VoxEngineMediaSocket()
    core.start_stream("a", PCMU_8K)
    core.send_audio("a", b"\xff" * 480)  # three chunks
    written = [json.loads(core.next_outgoing() or "") for _ in range(2)]  # start + the first chunk
    assert written[1]["media"]["chunk"] == 1
    core.clear("a")
    core.send_audio("a", b"\x7f" * 160)
    rest = [json.loads(t) for t in core.data_to_send()]
    assert [m["event"] for m in rest] == ["clear", "media"]
    assert (rest[1]["media"]["chunk"], rest[1]["media"]["timestamp"]) == (2, 160)
    assert core.sent_ms("a") == 80  # the position timeline still counts the cleared audio
    core.stop_stream("a")
    assert json.loads(core.data_to_send()[0])["stop"]["mediaInfo"]["bytesSent"] == 320
    with pytest.raises(RuntimeError, match="clear: no outbound stream with tag 'a'"):
        core.clear("a")


def test_streams_beyond_the_limit_are_refused() -> None:
    core = VoxEngineMediaSocket(max_streams=2)
    assert isinstance(core.receive(start(0, "ULAW", tag="a")), WsMediaStart)
    assert isinstance(core.receive(start(1, "ULAW", tag="b")), WsMediaStart)
    refused = core.receive(start(2, "ULAW", tag="c"))
    assert isinstance(refused, ProtocolError) and refused.close_code == 1008
    with pytest.raises(ValueError, match="max_streams"):
        VoxEngineMediaSocket(max_streams=0)


DEEP = "[" * 30000 + "]" * 30000


@pytest.mark.parametrize(
    "text",
    [
        DEEP,
        start(0, "ULAW", customParameters=DEEP),  # a JSON string holding the nesting
        '{"event": "start", "start": {"mediaFormat": {"encoding": "ULAW", "sampleRate": "'
        + "8" * 5000
        + '"}}}',
        '{"event": "start", "sequenceNumber": ' + "9" * 5000 + "}",
    ],
    ids=["deep-array", "deep-custom-parameters-string", "5000-digit-string", "5000-digit-number"],
)
def test_deep_nesting_and_huge_numbers_are_invalid_payload(text: str) -> None:
    event = VoxEngineMediaSocket().receive(text)
    assert isinstance(event, ProtocolError) and event.close_code == 1007


def test_custom_parameters_nested_just_under_the_parser_limit_are_refused_not_raised() -> None:
    for depth in range(600, 1000):  # where the limit falls depends on the stack depth of the caller
        nested = "[" * depth + "]" * depth
        for params in ('{"a": ' + nested + "}", json.dumps('{"a": ' + nested + "}")):
            event = VoxEngineMediaSocket().receive(
                '{"event": "start", "start": {"customParameters": ' + params + "}}"
            )
            assert isinstance(event, WsMediaStart | ProtocolError)
            if isinstance(event, ProtocolError):
                assert event.close_code == 1007 and "nested too deeply" in event.reason
