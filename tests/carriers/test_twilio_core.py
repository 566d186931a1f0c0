"""The Twilio Media Streams core without I/O: every message type, mark/ack bookkeeping, bad input."""

from __future__ import annotations

import base64
import inspect
import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxline.audio import PCMU_8K
from voxline.carriers import Ignored, ProtocolError
from voxline.carriers import twilio as twilio_module
from voxline.carriers._base import BadMessage, string_parameters
from voxline.carriers.twilio import (
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioMediaStream,
    TwilioStart,
    TwilioState,
    TwilioStop,
)

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA362a0fb4c4b5ef9a1b6b1a4e4b8fa0b1"
ACCOUNT = "AC" + "a" * 32

# The message shapes of Twilio's "Media Streams - WebSocket Messages" page.
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT,
        "streamSid": SID,
        "callSid": CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe"},
    },
    "streamSid": SID,
}


def media(seq: int, chunk: int, timestamp: int, payload: bytes, track: str = "inbound") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(timestamp),
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": SID,
        }
    )


def mark_echo(seq: int, name: str) -> str:
    return json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": SID, "mark": {"name": name}})


def started(**kwargs: int) -> TwilioMediaStream:
    core = TwilioMediaStream(**kwargs)
    core.receive(json.dumps(CONNECTED))
    assert isinstance(core.receive(json.dumps(START)), TwilioStart)
    return core


def test_every_message_from_twilio_is_parsed() -> None:
    core = TwilioMediaStream()
    connected = core.receive(json.dumps(CONNECTED))
    assert connected == TwilioConnected("Call", "1.0.0")
    assert core.state is TwilioState.CONNECTED

    start = core.receive(json.dumps(START))
    assert isinstance(start, TwilioStart)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (SID, CALL, ACCOUNT)
    assert start.custom_parameters == {"FirstName": "Jane", "LastName": "Doe"}
    assert start.tracks == ("inbound",)
    assert start.media_format == PCMU_8K
    assert core.state is TwilioState.STARTED and core.stream_sid == SID

    payload = bytes(range(160))
    event = core.receive(media(2, 1, 5, payload))
    assert event == TwilioMedia(payload, "inbound", 1, 5)

    dtmf = {
        "event": "dtmf",
        "streamSid": SID,
        "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    assert core.receive(json.dumps(dtmf)) == TwilioDtmf("1", "inbound_track")

    # A mark that is not ours (nothing pending) is reported without an acknowledgement.
    assert core.receive(mark_echo(4, "my label")) == TwilioMark("my label")

    stop = {
        "event": "stop",
        "sequenceNumber": "5",
        "streamSid": SID,
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    }
    assert core.receive(json.dumps(stop)) == TwilioStop(CALL, ACCOUNT)
    assert core.state is TwilioState.STOPPED
    assert core.stats["sequence_gaps"] == 0
    assert core.stats["messages_in"] == 6


def test_bytes_input_and_defaults() -> None:
    core = TwilioMediaStream()
    minimal = {"event": "start", "start": {"streamSid": SID}}
    start = core.receive(json.dumps(minimal).encode())
    assert isinstance(start, TwilioStart)
    assert start.tracks == ("inbound",) and start.custom_parameters == {} and start.call_sid == ""


def test_outbound_media_is_cut_into_20ms_messages_of_the_documented_shape() -> None:
    core = started(mark_interval_ms=0)
    audio = bytes(range(256)) + bytes(range(64))  # 320 bytes = 40 ms
    core.send_audio(audio)
    sent = [json.loads(text) for text in core.data_to_send()]
    assert sent == [
        {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(audio[:160]).decode()}},
        {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(audio[160:]).decode()}},
    ]
    assert core.sent_ms == 40


@pytest.mark.parametrize(("chunk_ms", "sizes"), [(0, [500]), (40, [320, 180]), (20, [160, 160, 160, 20])])
def test_chunking_is_configurable(chunk_ms: int, sizes: list[int]) -> None:
    core = started(chunk_ms=chunk_ms, mark_interval_ms=0)
    core.send_audio(b"\xff" * 500)
    payloads = [base64.b64decode(json.loads(t)["media"]["payload"]) for t in core.data_to_send()]
    assert [len(p) for p in payloads] == sizes


def test_a_mark_follows_every_interval_of_audio_with_generated_names() -> None:
    core = started(mark_interval_ms=60)
    for _ in range(7):
        core.send_audio(b"\xff" * 160)
    sent = [json.loads(t) for t in core.data_to_send()]
    assert [m["event"] for m in sent] == ["media"] * 3 + ["mark"] + ["media"] * 3 + ["mark", "media"]
    marks = [m for m in sent if m["event"] == "mark"]
    assert marks[0] == {"event": "mark", "streamSid": SID, "mark": {"name": "vx-1"}}
    assert marks[1]["mark"]["name"] == "vx-2"
    assert core.unmarked_ms == 20
    assert core.mark_pending() == "vx-3"
    assert core.mark_pending() is None  # nothing unmarked any more
    assert json.loads(core.data_to_send()[0])["mark"]["name"] == "vx-3"


def test_a_large_send_is_cut_where_its_marks_go() -> None:
    # A 120 ms batch then a 100 ms one, marks every 100 ms: each mark sits exactly at its interval,
    # so an echo acknowledges exactly that much, however the audio was handed over.
    core = started(chunk_ms=100, mark_interval_ms=100)
    core.send_audio(b"\x01" * 960, source_ms=620)
    core.send_audio(b"\x02" * 800, source_ms=720)
    sent = [json.loads(t) for t in core.data_to_send()]
    shape = [len(base64.b64decode(m["media"]["payload"])) if "media" in m else m["event"] for m in sent]
    assert shape == [800, "mark", 160, 640, "mark", 160]
    assert core.unmarked_ms == 20
    assert core.receive(mark_echo(2, "vx-1")) == TwilioMark("vx-1", 100, 600)
    assert core.receive(mark_echo(3, "vx-2")) == TwilioMark("vx-2", 200, 700)


def test_mark_echoes_advance_the_acknowledged_position() -> None:
    core = started(mark_interval_ms=100)
    core.send_audio(b"\xff" * 160 * 5, source_ms=1100)
    core.send_audio(b"\xff" * 160 * 5, source_ms=1200)
    core.send_audio(b"\xff" * 160 * 5, source_ms=1300)
    core.data_to_send()
    assert core.pending_marks == 3 and core.acknowledged_ms == 0

    first = core.receive(mark_echo(2, "vx-1"))
    assert first == TwilioMark("vx-1", acknowledged_ms=100, source_ms=1100)
    # Twilio plays in order: the echo of vx-3 also covers vx-2.
    third = core.receive(mark_echo(3, "vx-3"))
    assert third == TwilioMark("vx-3", acknowledged_ms=300, source_ms=1300)
    assert core.acknowledged_ms == 300 and core.acknowledged_source_ms == 1300 and core.pending_marks == 0
    late = core.receive(mark_echo(4, "vx-2"))
    assert late.acknowledged_ms is None and core.acknowledged_ms == 300
    assert core.stats["marks_acknowledged"] == 2 and core.stats["marks_unknown"] == 1


def test_clear_drops_unsent_media_and_echoes_of_cleared_marks_do_not_count() -> None:
    core = started(mark_interval_ms=100)
    core.send_audio(b"\xff" * 160 * 15, source_ms=5300)  # 300 ms, marks vx-1..vx-3
    assert [json.loads(t)["event"] for t in core.data_to_send()].count("mark") == 3
    # A mark inside one send_audio call reports its own source position, not the call's end.
    assert core.receive(mark_echo(2, "vx-1")) == TwilioMark("vx-1", 100, 5100)

    core.send_audio(b"\xff" * 160 * 5)  # queued (vx-4) but not yet written
    core.clear()
    assert [json.loads(t) for t in core.data_to_send()] == [{"event": "clear", "streamSid": SID}]

    # Twilio echoes the marks of the audio it dropped: they are not playout.
    for seq, name in enumerate(("vx-2", "vx-3"), start=3):
        echo = core.receive(mark_echo(seq, name))
        assert isinstance(echo, TwilioMark) and echo.cleared and echo.acknowledged_ms is None
    assert core.acknowledged_ms == 100
    assert core.stats["marks_cleared"] == 2
    # vx-4 never left: an echo of it is unknown, not an acknowledgement.
    assert core.receive(mark_echo(5, "vx-4")).acknowledged_ms is None

    # After the clear the timeline continues; new marks acknowledge new audio. The cleared
    # audio's source position does not ride along on them.
    core.send_audio(b"\xff" * 160 * 5)
    names = [json.loads(t)["mark"]["name"] for t in core.data_to_send() if '"mark"' in t]
    assert core.receive(mark_echo(6, names[-1])) == TwilioMark(names[-1], 500, None)
    assert core.sent_ms == 500


def test_next_outgoing_gives_one_message_at_a_time() -> None:
    core = started(mark_interval_ms=0)
    core.send_audio(b"\xff" * 320)
    assert core.next_outgoing() is not None
    core.clear()  # the second media message was not taken yet: it never goes out
    assert json.loads(core.next_outgoing() or "")["event"] == "clear"
    assert core.next_outgoing() is None


def test_commands_before_start_are_refused_clearly() -> None:
    core = TwilioMediaStream()
    with pytest.raises(RuntimeError, match="send_audio: the Twilio stream is new"):
        core.send_audio(b"\xff")
    with pytest.raises(RuntimeError, match="clear"):
        core.clear()
    assert core.mark_pending() is None


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"chunk_ms": -1}, "chunk_ms"), ({"mark_interval_ms": 1.5}, "mark_interval_ms")]
)
def test_bad_settings_name_the_parameter(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TwilioMediaStream(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("this is not json", 1007, "not JSON"),
        ("[1, 2]", 1007, "not a JSON object"),
        ('{"streamSid": "MZ1"}', 1007, "no string 'event'"),
        (media(2, 1, 0, b"\xff" * 160), 1002, "media before start"),
        ('{"event": "dtmf", "dtmf": {"digit": "1"}}', 1002, "dtmf before start"),
        ('{"event": "start", "start": {}}', 1007, "streamSid"),
        (
            '{"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": {"encoding": "audio/l16"}}}',
            1003,
            "not audio/x-mulaw",
        ),
        (
            '{"event": "start", "start": {"streamSid": "MZ1", "customParameters": []}}',
            1007,
            "customParameters",
        ),
    ],
)
def test_bad_input_is_a_protocol_error_with_a_reason(text: str, code: int, reason: str) -> None:
    core = TwilioMediaStream()
    event = core.receive(text)
    assert isinstance(event, ProtocolError)
    assert event.close_code == code and reason in event.reason
    assert core.stats["protocol_errors"] == 1


TWILIO_SHAPED = {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"event": "media", "media": {"payload": "not base64!"}}, "not base64"),
        # Shaped like Twilio's messages (string fields): the fast parse gives way to the full checks.
        ({"event": "media", "media": {**TWILIO_SHAPED, "payload": "no!"}}, "not base64"),
        ({"event": "media", "media": {**TWILIO_SHAPED, "chunk": "one"}}, "media.chunk"),
        ({"event": "media", "media": {}}, "media.payload must be a string"),
        ({"event": "media", "media": {"payload": "", "timestamp": "soon"}}, "media.timestamp"),
        ({"event": "mark", "mark": {}}, "mark.name"),
        ({"event": "dtmf", "dtmf": {"digit": ""}}, "dtmf.digit is empty"),
        (START, "second start"),
    ],
)
def test_bad_messages_after_start(message: dict[str, object], reason: str) -> None:
    core = started()
    event = core.receive(json.dumps(message))
    assert isinstance(event, ProtocolError) and reason in event.reason


def test_unknown_events_are_ignored_and_counted() -> None:
    core = started()
    assert core.receive('{"event": "transcription", "sequenceNumber": "2"}') == Ignored(
        "transcription", "unknown event"
    )
    assert core.receive('{"event": "transcription", "sequenceNumber": "3"}') == Ignored(
        "transcription", "unknown event"
    )
    assert core.stats["unknown_events"] == 2
    # The stream goes on.
    assert isinstance(core.receive(media(4, 1, 0, b"\xff" * 160)), TwilioMedia)


def test_messages_after_stop_are_ignored_and_sequence_gaps_counted() -> None:
    core = started()
    core.receive(media(5, 1, 0, b"\xff" * 160))  # 2..4 missing
    assert core.stats["sequence_gaps"] == 1
    core.receive('{"event": "stop", "sequenceNumber": "6", "stop": {}}')
    assert isinstance(core.receive(media(7, 2, 20, b"\xff" * 160)), Ignored)
    assert core.stats["ignored_after_stop"] == 1


DEEP = "[" * 30000 + "]" * 30000


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (DEEP, "nested too deeply"),
        ('{"event": "media", "media": ' + DEEP + "}", "nested too deeply"),
        # Python refuses int() of more than 4300 digits (ValueError): a malformed counter.
        ('{"event": "mark", "sequenceNumber": "' + "9" * 5000 + '"}', "sequenceNumber"),
        (
            media(2, 1, 0, b"\xff" * 160).replace('"chunk": "1"', '"chunk": "' + "1" * 5000 + '"'),
            "media.chunk",
        ),
        ('{"event": "mark", "sequenceNumber": ' + "9" * 5000 + "}", "not JSON"),
        ('{"event": "mark", "sequenceNumber": 1e999}', "sequenceNumber must be an integer"),
    ],
    ids=["deep-array", "deep-media", "5000-digit-string", "5000-digit-chunk", "5000-digit-number", "1e999"],
)
def test_deep_nesting_and_huge_numbers_are_invalid_payload(text: str, reason: str) -> None:
    core = started()
    event = core.receive(text)
    assert isinstance(event, ProtocolError)
    assert event.close_code == 1007 and reason in event.reason


def test_custom_parameters_nested_just_under_the_parser_limit_are_refused_not_raised() -> None:
    """Some depths parse but are too deep to re-encode as a parameter's JSON text; no depth raises."""
    for depth in range(600, 1000):  # where the limit falls depends on the stack depth of the caller
        core = TwilioMediaStream()
        params = '{"a": ' + "[" * depth + "]" * depth + "}"
        text = '{"event": "start", "start": {"streamSid": "MZ1", "customParameters": ' + params + "}}"
        event = core.receive(text)
        assert isinstance(event, TwilioStart | ProtocolError)
        if isinstance(event, ProtocolError):
            assert event.close_code == 1007 and "nested too deeply" in event.reason


def test_string_parameters_refuses_a_value_too_deep_to_encode() -> None:
    """Parsed values near the nesting limit are re-encoded deeper in the stack than they were
    parsed; the encoder's RecursionError is a BadMessage like the parser's."""
    nested: list[object] = []
    for _ in range(50):
        nested = [nested]
    value = {"a": nested}

    def deep(frames: int) -> dict[str, str]:
        return deep(frames - 1) if frames else string_parameters(value, "start.customParameters")

    limit = sys.getrecursionlimit()
    here = len(inspect.stack(0))
    sys.setrecursionlimit(here + 100)  # the value is 50 deep: encoding it 80 frames down runs out of stack
    try:
        with pytest.raises(BadMessage, match="nested too deeply"):
            deep(80)
    finally:
        sys.setrecursionlimit(limit)


def compact_media(seq: str, chunk: str, timestamp: str, payload: str, track: str, sid_first: bool) -> str:
    """A media message the way Twilio writes it: compact, Twilio's key order."""
    sid = f'"streamSid":"{SID}"'
    body = f'"media":{{"track":"{track}","chunk":"{chunk}","timestamp":"{timestamp}","payload":"{payload}"}}'
    middle = f"{sid},{body}" if sid_first else f"{body},{sid}"
    return f'{{"event":"media","sequenceNumber":"{seq}",{middle}}}'


# Values in and just outside what the compact form's fast read takes: each must give the event and
# counters json.loads and the full checks give.
_NUMBERS = st.one_of(
    st.integers(0, 10**12).map(str), st.sampled_from(["", "007", "+1", " 1", "1e3", "٣", "-2"])
)
_PAYLOADS = st.one_of(
    st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", "=", "QQ", "QQ=", "QUI=x", "no!", "QUJD\\u0041", "QU JD", "QUJD===="]),
)
_TRACKS = st.sampled_from(["inbound", "inbound_track", "outbound", "", "In", "a" * 40, 'in\\"x'])


@given(
    seq=_NUMBERS,
    chunk=_NUMBERS,
    timestamp=_NUMBERS,
    payload=_PAYLOADS,
    track=_TRACKS,
    sid_first=st.booleans(),
)
def test_the_compact_media_fast_read_gives_what_the_full_checks_give(
    seq: str, chunk: str, timestamp: str, payload: str, track: str, sid_first: bool
) -> None:
    text = compact_media(seq, chunk, timestamp, payload, track, sid_first)
    fast, full = started(), started()
    for _ in range(2):  # the second message checks the sequence against the first
        by_fast = fast.receive(text)
        by_full = full.receive(text.encode())  # bytes always take json.loads
        assert by_fast == by_full
    assert fast.stats == full.stats


def test_compact_media_as_twilio_sends_it_is_read() -> None:
    core = started()
    for seq, sid_first in ((2, False), (3, True)):
        text = compact_media(
            str(seq), "1", "20", base64.b64encode(b"\x7f" * 160).decode(), "inbound", sid_first
        )
        assert core.receive(text) == TwilioMedia(b"\x7f" * 160, "inbound", 1, 20)
    assert core.stats["media_in"] == 2 and core.stats["sequence_gaps"] == 0
    # Before start the fast read does not apply: the message is refused as before.
    fresh = TwilioMediaStream()
    event = fresh.receive(compact_media("1", "1", "0", "", "inbound", False))
    assert isinstance(event, ProtocolError) and "before start" in event.reason


def compact_mark(seq: int, name: str, sid: str | None) -> str:
    """A mark echo the way Twilio writes it (``sid``: "first", "last" or None for none)."""
    body = f'"mark":{{"name":"{name}"}}'
    placed = {"first": f'"streamSid":"{SID}",{body}', "last": f'{body},"streamSid":"{SID}"'}
    middle = placed.get(sid or "", body)
    return f'{{"event":"mark","sequenceNumber":"{seq}",{middle}}}'


@pytest.mark.parametrize("sid", ["first", "last", None])
def test_compact_mark_echoes_give_what_the_full_checks_give(
    sid: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same exchange on two cores: echoes as Twilio writes them (read without json.loads) and
    # as bytes (always json.loads and the full checks). Every event and counter must agree: in
    # order, out of order (earlier marks are acknowledged too), cleared, unknown, odd names.
    fast, full = started(mark_interval_ms=100), started(mark_interval_ms=100)
    seq = 2
    outcomes = []
    loaded: list[str | bytes] = []
    load_object = twilio_module.load_object

    def counting_load(text: str | bytes) -> object:
        loaded.append(text)
        return load_object(text)

    monkeypatch.setattr(twilio_module, "load_object", counting_load)

    def echo(name: str) -> None:
        nonlocal seq
        text = compact_mark(seq, name, sid)
        by_fast, by_full = fast.receive(text, 1000.0 + seq), full.receive(text.encode(), 1000.0 + seq)
        assert by_fast == by_full
        outcomes.append(by_fast)
        seq += 1

    for core in (fast, full):
        core.send_audio(b"\xff" * 160 * 25, source_ms=5000, now_ms=1000.0)  # marks vx-1 .. vx-5
        core.data_to_send()
    echo("vx-1")
    echo("vx-3")  # vx-2 is skipped over: Twilio plays in order
    echo("vx-2")  # already acknowledged: unknown now
    for core in (fast, full):
        core.clear(1002.0)
        core.data_to_send()
    echo("vx-4")  # audio that was dropped
    echo("my label")
    echo("vx-\\u0031")  # an escape: not the compact form, json.loads decodes it
    echo("")
    assert [type(e).__name__ for e in outcomes] == ["TwilioMark"] * 7
    assert [getattr(e, "acknowledged_ms", None) for e in outcomes[:2]] == [100, 300]
    assert outcomes[3].cleared and outcomes[5].name == "vx-1"
    assert fast.stats == full.stats
    assert fast.stats["marks_acknowledged"] == 2 and fast.stats["marks_cleared"] == 1
    assert fast.acknowledged_ms == full.acknowledged_ms == 300
    assert fast.heard(1100.0) == full.heard(1100.0)
    # Only the escaped name took json.loads on the fast core; every echo did on the other.
    assert [t for t in loaded if isinstance(t, str)] == [compact_mark(7, "vx-\\u0031", sid)]
