"""Server-sent events, sans-I/O: bytes in, events out (the WHATWG ``text/event-stream`` rules).

Used by the Chat Completions and Responses clients (and by the fake servers to write streams).
Nothing here touches a socket, the clock or asyncio: feed whatever byte slices the transport
delivers, in any split, and collect complete events.

- Lines end with CRLF, LF or CR; a CR at the end of one slice followed by LF in the next is
  one line end. UTF-8 is decoded per complete line, so a character split across slices is fine.
- ``event:`` names the event, ``data:`` lines are joined with ``\\n``, ``id:`` and ``retry:`` are
  kept, lines starting with ``:`` are comments (keep-alives), one space after the colon is dropped.
- A blank line dispatches the event; an event with no ``data`` is not dispatched (spec rule).
- ``data: [DONE]`` (OpenAI's end-of-stream sentinel) is an ordinary event with ``done`` true.
- An event still open when the stream ends is discarded (spec rule); ``pending`` tells whether
  that happened, which the clients report as a truncated stream.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE_SENTINEL = "[DONE]"
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The stream broke a limit (an event larger than ``max_event_bytes``)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def done(self) -> bool:
        """OpenAI's ``data: [DONE]`` terminator (the SDKs test the prefix, so do we)."""
        return self.data.startswith(DONE_SENTINEL)


class SSEParser:
    """Incremental ``text/event-stream`` parser."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._skip_lf = False  # the previous slice ended in CR: a leading LF belongs to it
        self._first_line = True
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._last_id: str | None = None
        self._retry: int | None = None
        self.comments = 0

    @property
    def pending(self) -> bool:
        """True when bytes or an undispatched event are buffered (the stream stopped mid-event)."""
        return bool(self._buffer) or bool(self._data)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not chunk:
            return events
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                start = 1
        buf = self._buffer
        buf += chunk[start:] if start else chunk
        pos = 0
        size = len(buf)
        while pos < size:
            cr = buf.find(b"\r", pos)
            lf = buf.find(b"\n", pos)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            elif cr == size - 1:
                # CR at the very end: the LF that may pair with it is in the next slice.
                end, nxt = cr, cr + 1
                self._skip_lf = True
            else:
                end = cr
                nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
            event = self._line(bytes(buf[pos:end]))
            if event is not None:
                events.append(event)
            pos = nxt
        del buf[:pos]
        if len(buf) + self._data_size > self._max:
            raise SSEError(f"server-sent event larger than {self._max} bytes")
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            if line.startswith("\ufeff"):
                line = line[1:]
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(raw)
            if self._data_size > self._max:
                raise SSEError(f"server-sent event larger than {self._max} bytes")
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field is ignored, as the spec says.
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event_type = ""
            return None
        event = SSEEvent(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self._last_id,
            retry=self._retry,
        )
        self._data = []
        self._data_size = 0
        self._event_type = ""
        return event


def encode_event(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """One event in wire form (``event:`` line only when named); multi-line data is split."""
    lines: list[str] = []
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    lines.extend(f"data: {part}" for part in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")
