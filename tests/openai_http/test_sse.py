"""The sans-I/O SSE parser: WHATWG framing, any byte split, OpenAI's [DONE]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxline.openai.sse import SSEError, SSEEvent, SSEParser, encode_event

from .conftest import FIXTURES


def parse_all(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def test_data_lines_event_names_comments_and_fields() -> None:
    body = (
        b": keep-alive\n"
        b"event: response.created\n"
        b"id: 7\n"
        b"retry: 1500\n"
        b'data: {"a":\n'
        b"data:1}\n"
        b"\n"
        b"data: second\n"
        b"unknown-field: ignored\n"
        b"\n"
    )
    parser = SSEParser()
    events = parser.feed(body)
    assert events == [
        SSEEvent(data='{"a":\n1}', event="response.created", id="7", retry=1500),
        SSEEvent(data="second", event="message", id="7", retry=1500),
    ]
    assert parser.comments == 1
    assert json.loads(events[0].data) == {"a": 1}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    body = b"event: x" + newline + b"data: 1" + newline + newline + b"data: 2" + newline + newline
    expected = [SSEEvent(data="1", event="x"), SSEEvent(data="2")]
    assert parse_all([body]) == expected
    # Split between CR and LF (and everywhere else).
    for cut in range(len(body) + 1):
        assert parse_all([body[:cut], body[cut:]]) == expected, cut


def test_done_sentinel_bom_empty_data_and_no_space() -> None:
    events = parse_all([b"\xef\xbb\xbfdata:[DONE]\n\ndata\n\nevent: only-a-name\n\n"])
    assert events[0].done and events[0].data == "[DONE]"
    # "data" with no colon is a data field with an empty value; a nameless event without data is dropped.
    assert events[1:] == [SSEEvent(data="")]


def test_utf8_split_inside_a_character() -> None:
    body = encode_event(json.dumps({"t": "Grüße 👋"}, ensure_ascii=False))
    for cut in range(len(body) + 1):
        (event,) = parse_all([body[:cut], body[cut:]])
        assert json.loads(event.data) == {"t": "Grüße 👋"}


def test_unfinished_event_at_end_is_pending_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"half": ') == []
    assert parser.pending
    assert parser.feed(b"1}\n") == []
    assert parser.pending  # no blank line yet
    assert parser.feed(b"\n") == [SSEEvent(data='{"half": 1}')]
    assert not parser.pending


def test_oversized_event_is_refused() -> None:
    parser = SSEParser(max_event_bytes=64)
    with pytest.raises(SSEError, match="larger than 64 bytes"):
        parser.feed(b"data: " + b"x" * 100)


def test_encode_event_round_trip() -> None:
    wire = encode_event("line1\nline2", event="response.output_text.delta", id="3")
    assert wire == b"event: response.output_text.delta\nid: 3\ndata: line1\ndata: line2\n\n"
    assert parse_all([wire]) == [SSEEvent(data="line1\nline2", event="response.output_text.delta", id="3")]


FIXTURE_FILES = sorted(FIXTURES.glob("*.sse"))


def test_there_are_nine_recordings() -> None:
    assert len(FIXTURE_FILES) == 9


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_recording_parses_identically_at_every_split_point(path: Path) -> None:
    body = path.read_bytes()
    whole = parse_all([body])
    data_lines = [line[len(b"data: ") :].decode() for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert [e.data for e in whole] == data_lines
    assert whole[-1].done and not any(e.done for e in whole[:-1])
    step = max(1, len(body) // 400)  # every split point of the small files, a dense sample of the large one
    for cut in range(0, len(body) + 1, step):
        assert parse_all([body[:cut], body[cut:]]) == whole, cut


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_recordings_parse_identically_in_random_pieces(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(FIXTURE_FILES))
    body = path.read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=40)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert parse_all(pieces) == parse_all([body])
