"""What a session puts out: server events (stamped, recorded, queued), close/abort commands, raw
frames, engine work to await; and the id and error-event helpers every part of the session uses.

:class:`SessionOutput` is the one channel the session's parts write to. The core hands what it
queues to the I/O layer: :meth:`SessionOutput.take` (what to send, in order: :data:`Outgoing`) and
:meth:`SessionOutput.take_work` (:class:`PendingWork` to await). Sans-I/O: no sockets, no asyncio.
"""

from __future__ import annotations

import logging
import random
import re
import string
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .validation import SchemaProblem

__all__ = [
    "Abort",
    "Close",
    "Outgoing",
    "PendingWork",
    "RawFrame",
    "SessionOutput",
    "error_event",
    "new_id",
    "obfuscation",
    "tokens",
]

log = logging.getLogger("voxline.realtime_server")

_ALPHABET = string.ascii_letters + string.digits
_rng = random.Random()


def new_id(prefix: str) -> str:
    """An id shaped like OpenAI's: ``event_C9G8pqbTEddBSIxbBN6Os``."""
    return f"{prefix}_{''.join(_rng.choices(_ALPHABET, k=21))}"


def obfuscation(text: str) -> str:
    """The random padding OpenAI adds to deltas so their sizes leak nothing (shape only)."""
    return "".join(_rng.choices(_ALPHABET, k=max(2, 16 - len(text) % 16)))


def tokens(text: str) -> list[str]:
    """``text`` cut into the pieces streamed as deltas: words with their leading whitespace."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def error_event(
    code: str | None,
    message: str,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """OpenAI's ``error`` server event (without its ``event_id``)."""
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


@dataclass(frozen=True, slots=True)
class Close:
    """Close the WebSocket with this code and reason (after sending everything before it)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the TCP connection without a close frame."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Send this frame exactly (a fault: binary data, non-JSON text, a hand-made event)."""

    data: str | bytes


Outgoing = dict[str, Any] | Close | Abort | RawFrame
"""One item to send: a server event (a dict, sent as compact JSON), a :class:`RawFrame` (sent as is),
:class:`Close` or :class:`Abort` (nothing after either is sent)."""


@dataclass(slots=True)
class PendingWork:
    """An awaitable an engine returned: the I/O layer awaits it, then calls
    ``core.resolve(work, result, now_ms)``."""

    kind: Literal["response", "transcription"]
    key: str
    awaitable: Awaitable[Any]


class SessionOutput:
    """One session's output side and its records: what was sent, what was rejected, what failed.

    ``on_sent``/``on_violation`` let the owner mirror the records (the server keeps server-wide lists);
    ``keep_record`` says which server events ``sent`` keeps (default: every one; ``on_sent`` sees all).
    """

    def __init__(
        self,
        *,
        on_sent: Callable[[dict[str, Any]], None] | None = None,
        on_violation: Callable[[str], None] | None = None,
        keep_record: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        self._outgoing: deque[Outgoing] = deque()
        self._work: deque[PendingWork] = deque()
        self.sent: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.internal_errors: list[str] = []
        self._on_sent = on_sent
        self._on_violation = on_violation
        self._keep_record = keep_record

    # -- what the core hands out -----------------------------------------------------------------------------

    def take(self) -> list[Outgoing]:
        """Everything queued to send, in order; the queue is empty after."""
        items = list(self._outgoing)
        self._outgoing.clear()
        return items

    def take_work(self) -> list[PendingWork]:
        """The engines' awaitables queued since the last call, in order."""
        work = list(self._work)
        self._work.clear()
        return work

    # -- what the parts put in -------------------------------------------------------------------------------

    def queue(self, item: Outgoing) -> None:
        """Queue one item as it is (a close, an abort, a raw frame, an event already recorded)."""
        self._outgoing.append(item)

    def record_sent(self, event: dict[str, Any]) -> None:
        if self._keep_record is None or self._keep_record(event):
            self.sent.append(event)
        if self._on_sent is not None:
            self._on_sent(event)

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as sent: ``type`` and a fresh ``event_id`` first; recorded in ``sent``."""
        stamped = {"type": event["type"], "event_id": new_id("event")}
        stamped.update((k, v) for k, v in event.items() if k != "type")
        self.record_sent(stamped)
        return stamped

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` and queue it."""
        stamped = self.stamp(event)
        self._outgoing.append(stamped)
        return stamped

    def defer(self, work: PendingWork) -> None:
        """Queue an engine's awaitable for the I/O layer."""
        self._work.append(work)

    def violation(self, what: str, problem: SchemaProblem) -> None:
        text = f"{what}: {problem.code}: {problem.message}"
        log.info("client event rejected: %s", text)
        self.violations.append(text)
        if self._on_violation is not None:
            self._on_violation(text)

    def reject(
        self,
        event: Mapping[str, Any] | None,
        problem: SchemaProblem,
        echo_event_id: bool = True,
        what: str = "<event>",
    ) -> None:
        """Answer a bad client event with OpenAI's error event and record the violation."""
        event_type = event.get("type") if event is not None else None
        client_event_id = event.get("event_id") if event is not None and echo_event_id else None
        self.violation(event_type if isinstance(event_type, str) else what, problem)
        self.emit(
            error_event(
                problem.code,
                problem.message,
                problem.param,
                client_event_id if isinstance(client_event_id, str) else None,
            )
        )

    def engine_failed(self, kind: str, error: BaseException) -> None:
        """A plug-in failed: logged and recorded in ``internal_errors`` (the caller answers the client)."""
        log.error("Realtime session %s engine failed", kind, exc_info=error)
        self.internal_errors.append(f"{kind} engine failed: {error!r}")
