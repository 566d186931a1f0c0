"""Routing rules: one incoming stream per unit, replacement, stop, close without leaks or errors."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest

from voxline.audio import PCMU_8K, Frame
from voxline.media import (
    ClearMediaBufferParameters,
    MediaUnit,
    SendMediaParameters,
    send_media_between,
    stop_media_between,
)


class Sink(MediaUnit):
    media_format = PCMU_8K

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.frames: list[tuple[Frame, MediaUnit]] = []
        self.sources: list[MediaUnit | None] = []
        self.cleared: list[MediaUnit] = []

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.frames.append((frame, source))

    def _source_changed(self, source: MediaUnit | None) -> None:
        self.sources.append(source)

    def clear_buffer(self, source: MediaUnit) -> None:
        self.cleared.append(source)

    def __repr__(self) -> str:
        return f"<Sink {self.name}>"


class Raising(Sink):
    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        raise RuntimeError("broken sink")


def frame(ts: int = 0) -> Frame:
    return Frame(b"\xff" * 160, PCMU_8K, ts)


def test_sink_receives_frames_of_its_source() -> None:
    a, b = Sink("a"), Sink("b")
    a.send_media_to(b)
    f = frame()
    a._deliver(f)
    assert b.frames == [(f, a)]
    assert b.media_source is a
    assert a.media_sinks == (b,)
    assert b.sources == [a]


def test_a_unit_sends_to_any_number_of_units() -> None:
    a, b, c = Sink("a"), Sink("b"), Sink("c")
    a.send_media_to(b)
    a.send_media_to(c)
    a._deliver(frame())
    assert len(b.frames) == len(c.frames) == 1


def test_new_incoming_stream_replaces_the_old_one() -> None:
    a, b, c = Sink("a"), Sink("b"), Sink("c")
    a.send_media_to(c)
    b.send_media_to(c)
    a._deliver(frame(0))
    b._deliver(frame(20))
    assert [src for _, src in c.frames] == [b]
    assert a.media_sinks == ()
    assert c.media_source is b
    assert c.sources == [a, b]


def test_sending_again_to_the_same_sink_updates_parameters_only() -> None:
    a, b = Sink("a"), Sink("b")
    a.send_media_to(b, {"tag": "x"})
    a.send_media_to(b, SendMediaParameters(tag="y"))
    assert a._sink_parameters(b) == SendMediaParameters(tag="y")
    assert b.sources == [a]


def test_stop_media_to() -> None:
    a, b, c = Sink("a"), Sink("b"), Sink("c")
    a.send_media_to(b)
    c.stop_media_to(b)  # not b's source: no effect
    assert b.media_source is a
    a.stop_media_to(b)
    a._deliver(frame())
    assert b.frames == []
    assert b.media_source is None
    assert b.sources == [a, None]
    a.stop_media_to(b)  # idempotent
    assert b.sources == [a, None]


def test_send_and_stop_media_between() -> None:
    a, b = Sink("a"), Sink("b")
    send_media_between(a, b)
    assert a.media_source is b and b.media_source is a
    stop_media_between(a, b)
    assert a.media_source is None and b.media_source is None
    assert a.media_sinks == () and b.media_sinks == ()


def test_parameters_accept_the_reference_camel_case() -> None:
    a, b = Sink("a"), Sink("b")
    a.send_media_to(b, {"tag": "t", "encoding": "ULAW", "customParameters": {"k": "v"}})
    assert a._sink_parameters(b) == SendMediaParameters("t", "ULAW", {"k": "v"})
    assert ClearMediaBufferParameters.coerce({"tag": "t"}) == ClearMediaBufferParameters("t")
    assert ClearMediaBufferParameters.coerce(None) is None


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"tagg": "t"}, ValueError, "tagg"),
        ({"tag": 5}, TypeError, "tag"),
        ({"customParameters": {"k": 1}}, TypeError, "custom_parameters"),
        ({"customParameters": "x"}, TypeError, "customParameters"),
        ("tag", TypeError, "parameters"),
    ],
)
def test_bad_parameters_are_named(params: object, error: type[Exception], match: str) -> None:
    a, b = Sink("a"), Sink("b")
    with pytest.raises(error, match=match):
        a.send_media_to(b, params)  # type: ignore[arg-type]
    assert b.media_source is None


def test_bad_targets_are_refused() -> None:
    a = Sink("a")
    with pytest.raises(ValueError, match="itself"):
        a.send_media_to(a)
    with pytest.raises(TypeError, match="media unit"):
        a.send_media_to(object())  # type: ignore[arg-type]


def test_routing_to_or_from_a_closed_unit_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    # VoxEngine's behaviour: a scenario still setting up when its caller hung up must not fail.
    a, b = Sink("a"), Sink("b")
    b.close_media()
    with caplog.at_level(logging.DEBUG, logger="voxline.media"):
        a.send_media_to(b)
        b.send_media_to(a)
    assert a.media_sinks == () and a.media_source is None and b.media_source is None
    assert "has ended" in caplog.text
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


def test_a_raising_sink_is_logged_once_and_detached(caplog: pytest.LogCaptureFixture) -> None:
    a, bad, good = Sink("a"), Raising("bad"), Sink("good")
    a.send_media_to(bad)
    a.send_media_to(good)
    with caplog.at_level(logging.ERROR, logger="voxline.media"):
        for ts in range(0, 100, 20):
            a._deliver(frame(ts))
    assert len(good.frames) == 5
    assert bad.media_source is None
    assert a.media_sinks == (good,)
    assert len([r for r in caplog.records if "broken sink" in (r.exc_text or "")]) == 1


def test_failing_hooks_do_not_reach_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class BadHooks(Sink):
        def _source_changed(self, source: MediaUnit | None) -> None:
            raise RuntimeError("hook")

    a, b = Sink("a"), BadHooks("b")
    with caplog.at_level(logging.ERROR, logger="voxline.media"):
        a.send_media_to(b)
        a.close_media()
    assert b.media_source is None
    assert len([r for r in caplog.records if r.exc_info]) == 2


def test_close_detaches_both_ways_and_is_idempotent() -> None:
    a, b, c = Sink("a"), Sink("b"), Sink("c")
    a.send_media_to(b)
    b.send_media_to(c)
    b.send_media_to(a)
    b.close_media()
    b.close_media()
    assert a.media_sinks == ()
    assert c.media_source is None and a.media_source is None
    assert c.sources == [b, None]
    a._deliver(frame())  # nothing to deliver to, no error
    assert b.frames == []
    b.send_media_to(c)  # a closed unit sends nothing (a no-op, see below)
    assert c.media_source is None


def test_a_closed_unit_is_not_kept_alive_by_the_units_it_was_connected_to() -> None:
    class Plain(MediaUnit):
        pass

    a, c, b = Plain(), Sink("c"), Plain()
    send_media_between(a, b)
    b.send_media_to(c)
    b.add_tap(c)
    a.add_tap(b)
    b.close_media()
    c.sources.clear()  # the test's own record of sources
    ref = weakref.ref(b)
    del b
    gc.collect()
    assert ref() is None
    a._deliver(frame())
    assert c.frames == []


def test_a_unit_closing_while_a_frame_is_delivered_breaks_nothing() -> None:
    class Closer(Sink):
        def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
            super().receive_frame(frame, source)
            self.close_media()
            self.other.close_media()

    a, closer, victim, last = Sink("a"), Closer("closer"), Sink("victim"), Sink("last")
    closer.other = victim  # type: ignore[attr-defined]
    for sink in (closer, victim, last):
        a.send_media_to(sink)
    a._deliver(frame())
    assert len(closer.frames) == 1
    assert victim.frames == []  # closed before its turn: not delivered to
    assert len(last.frames) == 1
    a._deliver(frame())
    assert len(last.frames) == 2
    assert a.media_sinks == (last,)


def test_taps_observe_without_taking_the_incoming_stream() -> None:
    a, b, tap = Sink("a"), Sink("b"), Sink("tap")
    c = Sink("c")
    c.send_media_to(tap)
    a.send_media_to(b)
    a.add_tap(tap)
    a._deliver(frame())
    assert tap.frames[0][1] is a
    assert tap.media_source is c  # the tap's own incoming stream is untouched
    assert b.media_source is a
    a.remove_tap(tap)
    a._deliver(frame())
    assert len(tap.frames) == 1


def test_clear_reaches_every_sink() -> None:
    a, b, c = Sink("a"), Sink("b"), Sink("c")
    a.send_media_to(b)
    a.send_media_to(c)
    a._clear_sinks()
    assert b.cleared == [a] and c.cleared == [a]


def test_reports_playback_of_sinks() -> None:
    class Acking(Sink):
        reports_playback = True

    a = Sink("a")
    a.send_media_to(Sink("b"))
    assert not a._sinks_report_playback
    a.send_media_to(Acking("c"))
    assert a._sinks_report_playback
