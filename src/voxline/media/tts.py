"""``TTSPlayer``: a streaming text-to-speech player, one media unit for every speech provider.

Text arrives in pieces (a model's deltas): ``append(text)`` as they come, ``flush()`` at the end of a
turn, ``clear_buffer()`` on barge-in. The provider (a :class:`SpeechProvider`: ElevenLabs, Cartesia,
OpenAI speech, the embedded espeak-ng voice; ``voxline.tts`` and ``voxline.local``) turns each turn's
text into audio; the player paces that audio on the shared media clock through the same
:class:`~voxline.media.playout.Playout` the Realtime client uses, so the truncation bookkeeping is
the same too: at a barge-in the player knows how many ms of the turn's audio the caller really heard
(the sinks' reported position, else the paced one) and maps it to text through the provider's word or
character timestamps (``HeardText.estimated`` is False), or, for providers without timestamps, by
spreading each synthesized segment's characters evenly over its audio (``estimated`` True).

The provider side is a small interface: ``provider.open_stream(sink)`` returns a
:class:`SpeechStream` (``send_text``, ``end``, ``cancel``) for one turn and reports into ``sink``
(``audio``, ``timings``, ``done``, ``failed``). Audio of a cancelled turn that still arrives is
dropped here, whatever the provider does.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from voxline.audio import AudioFormat
from voxline.context import adopt
from voxline.eventtarget import Event

from . import MediaUnit
from .clock import AsyncioMediaClock, MediaClock
from .playout import Playout, PlayoutBuffer

__all__ = [
    "HeardText",
    "SpeechProvider",
    "SpeechSink",
    "SpeechStream",
    "TTSPlayer",
    "TTSPlayerEvents",
    "TextSpan",
    "heard_chars",
]

log = logging.getLogger("voxline.media.tts")


class TTSPlayerEvents(StrEnum):
    PlaybackStarted = "TTSPlayer.PlaybackStarted"
    PlaybackFinished = "TTSPlayer.PlaybackFinished"
    #: ``clear_buffer()`` cut a turn: ``event.heard`` is the :class:`HeardText`.
    Interrupted = "TTSPlayer.Interrupted"
    #: The provider failed a turn (``event.reason``); the turn's audio so far still plays.
    Error = "TTSPlayer.Error"


@dataclass(frozen=True, slots=True)
class TextSpan:
    """Characters ``[start_char, end_char)`` of a turn's text are spoken in ``[start_ms, end_ms)`` of
    the turn's audio. A provider's word or character timestamps, or an estimate."""

    start_char: int
    end_char: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class HeardText:
    """How much of a turn the caller heard: ``text[:heard_chars]`` of ``text`` (all that was
    appended), ``heard_ms`` of ``received_ms`` of audio. ``estimated``: the provider gave no
    timestamps for the part that matters, the character position is spread evenly over the audio."""

    turn_id: str
    text: str
    heard_chars: int
    heard_ms: int
    received_ms: int
    estimated: bool
    interrupted: bool

    @property
    def heard(self) -> str:
        return self.text[: self.heard_chars]


def heard_chars(text: str, spans: Sequence[TextSpan], position_ms: int) -> int:
    """The characters of ``text`` heard at ``position_ms``: through the end of every span that had
    started by then, extended to the end of the word it is in (a word the caller heard begin
    counts as heard), without trailing whitespace."""
    reached = 0
    for span in spans:
        if span.start_ms < position_ms and span.end_char > reached:
            reached = span.end_char
    reached = min(reached, len(text))
    while 0 < reached < len(text) and not text[reached].isspace():
        reached += 1
    while reached > 0 and text[reached - 1].isspace():
        reached -= 1
    return reached


class SpeechSink(Protocol):
    """What a provider's stream reports into (the player's turn)."""

    def audio(self, data: bytes) -> None: ...
    def timings(self, spans: Sequence[TextSpan], *, estimated: bool = False) -> None: ...
    def done(self) -> None: ...
    def failed(self, reason: str) -> None: ...


class SpeechStream(Protocol):
    """One turn at the provider: text in order, ``end()`` when the turn's text is complete,
    ``cancel()`` to stop generating (barge-in). None of them blocks or raises for I/O."""

    def send_text(self, text: str) -> None: ...
    def end(self) -> None: ...
    def cancel(self) -> None: ...


class SpeechProvider(Protocol):
    """A speech service: the format it produces and a stream per turn."""

    @property
    def media_format(self) -> AudioFormat: ...
    def open_stream(self, sink: SpeechSink) -> SpeechStream: ...
    def close(self) -> None: ...


_turn_ids = itertools.count(1)


class _Turn:
    """One turn: its text, the provider's stream and what the provider said about timing."""

    def __init__(self, player: TTSPlayer, turn_id: str) -> None:
        self.player = player
        self.id = turn_id
        self.text = ""
        self.spans: list[TextSpan] = []
        self.estimated = False
        self.flushed = False
        self.provider_done = False
        self.cancelled = False
        self.started = False
        self.finished = False
        self.stream: SpeechStream | None = None
        self.held: list[bytes] = []  # audio that waits for the turns before this one

    # -- SpeechSink ---------------------------------------------------------------------------------

    def audio(self, data: bytes) -> None:
        if self.cancelled or not data:
            return
        self.player.turn_audio(self, data)

    def timings(self, spans: Sequence[TextSpan], *, estimated: bool = False) -> None:
        if self.cancelled:
            return
        self.spans.extend(spans)
        self.estimated = self.estimated or estimated

    def done(self) -> None:
        if self.cancelled or self.provider_done:
            return
        self.provider_done = True
        self.player.turn_done(self)

    def failed(self, reason: str) -> None:
        if self.cancelled:
            return
        log.warning("TTS turn %s failed: %s", self.id, reason)
        self.player.emit(TTSPlayerEvents.Error, turn_id=self.id, reason=reason)
        self.done()


class TTSPlayer(MediaUnit):
    """Streams a provider's speech for appended text to its sinks, paced on the media clock.

    ``text`` (optional) is the first text, as VoxEngine's players take it at creation. Each turn
    starts with the first ``append`` after a ``flush`` (or a ``clear_buffer``); ``flush()`` tells the
    provider the turn's text is complete. Events: ``PlaybackStarted`` (a turn's first audio left),
    ``PlaybackFinished`` (the last of a flushed turn's audio left; ``event.text``), ``Interrupted``
    (``clear_buffer`` cut a turn; ``event.heard``), ``Error``. Events carry ``event.player`` and
    ``event.turn_id``.
    """

    def __init__(
        self,
        provider: SpeechProvider,
        clock: MediaClock | None = None,
        *,
        text: str | None = None,
        max_buffer_ms: int = 60_000,
    ) -> None:
        super().__init__()
        fmt = provider.media_format
        if not isinstance(fmt, AudioFormat):
            raise TypeError(f"provider.media_format must be an AudioFormat, not {type(fmt).__name__}")
        self.provider = provider
        self.clock = clock or AsyncioMediaClock.for_loop()
        self.media_format = fmt
        # A provider renders far faster than real time: the buffer holds a whole turn.
        self._buffer = PlayoutBuffer(fmt, max_buffer_ms)
        self._playout = Playout(self._buffer, self.clock, self._deliver, on_dry=self._on_dry)
        self._turn: _Turn | None = None
        # Turns in the order they were opened, until the provider is done with them: only the first
        # one's audio goes to the playout, the others' is held (providers render turns in parallel).
        self._order: list[_Turn] = []
        self._playing: list[_Turn] = []  # turns with audio not yet all delivered, oldest first
        self._closed = False
        adopt(self)  # a call session closes its players when it terminates
        if text is not None:
            self.append(text)

    def __repr__(self) -> str:
        turn = self._turn.id if self._turn is not None else None
        return f"<TTSPlayer {type(self.provider).__name__} turn={turn}>"

    # -- the player's API ---------------------------------------------------------------------------

    @property
    def turn_id(self) -> str | None:
        """The turn text is appended to (None before the first ``append`` after a flush)."""
        turn = self._turn
        return turn.id if turn is not None and not turn.flushed else None

    @property
    def playing(self) -> bool:
        return (
            self._buffer.buffered_ms > 0
            or any(not t.finished for t in self._playing)
            or any(t.held for t in self._order)
        )

    @property
    def generating(self) -> bool:
        """The provider is still rendering a turn (a flushed one included)."""
        return any(not t.provider_done and not t.cancelled for t in self._order)

    def received_ms(self, turn_id: str) -> int:
        """Milliseconds of ``turn_id``'s audio received from the provider so far."""
        return self._buffer.received_ms(turn_id)

    def append(self, text: str) -> str:
        """Speak ``text`` after what was appended before; returns the turn's id."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {type(text).__name__}")
        if self._closed:
            raise RuntimeError("append on a closed TTSPlayer")
        turn = self._turn
        if turn is None or turn.flushed:
            turn = self._turn = _Turn(self, f"tts_{next(_turn_ids)}")
            self._order.append(turn)
            turn.stream = self.provider.open_stream(turn)
        if text:
            turn.text += text
            assert turn.stream is not None
            turn.stream.send_text(text)
        return turn.id

    def flush(self, source: MediaUnit | None = None) -> None:
        """The turn's text is complete: the provider renders the rest and ends the turn.

        (As a sink, ``flush(source)`` would mean a source ran dry; a player has no source.)"""
        turn = self._turn
        if source is not None or turn is None or turn.flushed or self._closed:
            return
        turn.flushed = True
        assert turn.stream is not None
        turn.stream.end()

    def clear_buffer(self, source: MediaUnit | None = None) -> HeardText | None:  # type: ignore[override]
        """Barge-in: silence the sinks at once, cancel the provider's pending generation and say how
        much of the cut turn the caller heard (None when nothing was playing or pending)."""
        if source is not None:
            return None  # the sink side of the contract: a player has no source to clear
        heard = self._sinks_playback_position()
        if heard is not None:
            self._buffer.acknowledge(heard)
        cleared = {c.item_id: c for c in self._playout.clear()}
        self._clear_sinks()
        result: HeardText | None = None
        turns = dict.fromkeys([*self._playing, *self._order, *([self._turn] if self._turn else [])])
        for turn in turns:
            turn.held.clear()
            if turn.cancelled or (turn.finished and turn.id not in cleared):
                continue
            turn.cancelled = True
            if turn.stream is not None and not turn.provider_done:
                turn.stream.cancel()
            item = cleared.get(turn.id)
            heard_ms = item.heard_ms if item is not None else 0
            received = item.received_ms if item is not None else self._buffer.received_ms(turn.id)
            if item is None and turn.started:
                heard_ms = received  # played in full and not reported: all of it was heard
            chars = heard_chars(turn.text, turn.spans, heard_ms) if heard_ms > 0 else 0
            result = HeardText(
                turn.id,
                turn.text,
                chars,
                heard_ms,
                received,
                turn.estimated or not turn.spans,
                chars < len(turn.text.rstrip()),
            )
        self._playing.clear()
        self._order.clear()
        self._turn = None
        if result is not None:
            self.emit(TTSPlayerEvents.Interrupted, turn_id=result.turn_id, heard=result)
        return result

    def close(self) -> None:
        """Stop for good: cancel what is pending, stop the playout, close the provider."""
        if self._closed:
            return
        self.clear_buffer()
        self._closed = True
        self._playout.close()
        try:
            self.provider.close()
        except Exception:
            log.exception("%r: closing the provider failed", self)
        self.close_media()

    def close_media(self) -> None:
        if not self._closed:
            self.close()
            return
        super().close_media()

    def _sinks_changed(self) -> None:
        # A sink that reports what its far end played (RTP, Twilio marks) is the only judge of what
        # was heard; one that buffers (Twilio) takes larger batches.
        self._buffer.acknowledged = self._sinks_report_playback
        self._playout.batch_ms = self._sinks_batch_ms

    # -- from the turns -----------------------------------------------------------------------------

    def turn_audio(self, turn: _Turn, data: bytes) -> None:
        if self._closed:
            return
        if self._order and self._order[0] is not turn:
            turn.held.append(data)  # an earlier turn is still being rendered: this one waits
            return
        self._push(turn, data)

    def _push(self, turn: _Turn, data: bytes) -> None:
        if not turn.started:
            turn.started = True
            self._playing.append(turn)
            self.emit(TTSPlayerEvents.PlaybackStarted, turn_id=turn.id)
        self._playout.push(data, turn.id)

    def turn_done(self, turn: _Turn) -> None:
        # Release the turns whose predecessors are done, in order.
        while self._order:
            head = self._order[0]
            for data in head.held:
                self._push(head, data)
            head.held.clear()
            if not head.provider_done:
                break
            self._order.pop(0)
            if head.started:
                self._playout.end_item(head.id)
            else:
                head.finished = True  # nothing to play (blank text)
                self.emit(TTSPlayerEvents.PlaybackFinished, turn_id=head.id, text=head.text)
        if self._buffer.buffered_ms == 0:
            self._on_dry()

    def _on_dry(self) -> None:
        # Everything pushed has been delivered: every provider-finished turn has played out.
        self._flush_sinks()
        for turn in tuple(self._playing):
            if turn.provider_done and not turn.finished:
                turn.finished = True
                self._playing.remove(turn)
                self.emit(TTSPlayerEvents.PlaybackFinished, turn_id=turn.id, text=turn.text)

    def emit(self, name: TTSPlayerEvents, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"player": self, **fields}))
