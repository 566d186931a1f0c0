"""What a Realtime session hands to the next one, and when the client may switch (sans-I/O).

OpenAI ends a Realtime session after 60 minutes (``error`` ``session_expired``, then a close) and a
socket can drop. The client (:mod:`voxline.openai.realtime`) then opens a new session; this module
is the part of that which needs no socket and no clock of its own (the time comes in as arguments):

- :class:`SessionCarry` watches the client events sent and the server events received and keeps what
  the new session needs: every ``session.update`` sent (replayed in order), the conversation as text
  (user transcripts and text, assistant transcripts and text, function calls and their outputs) and,
  once that exceeds a budget, a rolling summary of the oldest turns (the Chat Completions context's
  fold rule and summary request, :mod:`voxline.openai.chat_context`). ``carry_items()`` gives the
  ``conversation.item.create`` items that rebuild the conversation.
- ``unsafe_reason()`` says why a planned switch must wait: a response is active, the caller is
  speaking or a turn was just committed, a function call has no output yet.
- ``is_echo()`` recognises the new session's answers to the replay (``session.created``, the
  ``session.updated`` of replayed updates, the ``conversation.item.*`` of carried items) so the
  client keeps them from listeners: for the scenario it is one conversation.
- :class:`ReconnectPolicy`: how often and how soon to reconnect after an unexpected close.

Not carried: audio (past turns are text in the new session), items of other types (MCP calls,
images), input audio the old session had not committed (between turns there is none), the active
response (a drop mid-response loses its rest; its text so far is carried, marked as cut off).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .chat_context import (
    DEFAULT_CONTEXT_BUDGET_CHARS,
    SUMMARY_HEADER,
    ConversationContext,
    render_transcript,
    summary_messages,
)

__all__ = [
    "OPENAI_SESSION_CAP_S",
    "RECONNECT_CLOSE_CODES",
    "RUNTIME_MAX_SESSION_DURATION_S",
    "CarriedItem",
    "ReconnectPolicy",
    "SessionCarry",
    "check_max_session_duration",
]

# OpenAI's limit on one Realtime session.
OPENAI_SESSION_CAP_S = 3600.0
# What the runtime sets when the scenario does not: five minutes before the cap leaves room for a
# pause between turns (a call whose turns never pause gets session_expired, handled the same way).
RUNTIME_MAX_SESSION_DURATION_S = 3300.0
# Close codes after which reconnecting may help: abnormal closure (no close frame: network, crash),
# internal error (also our keepalive's verdict), service restart, try again later.
RECONNECT_CLOSE_CODES = frozenset({1006, 1011, 1012, 1013})
# After the caller's turn is committed the server's response.created follows at once with turn
# detection; without it (create_response off) the turn counts as open this long.
TURN_GRACE_S = 3.0
INTERRUPTED_MARK = " [cut off]"
MAX_ITEM_ID_CHARS = 32  # OpenAI's limit on client-chosen item ids


MAX_REPLAYED_UPDATES = 16


def merge_session_update(base: dict[str, Any], update: Mapping[str, Any], path: str = "") -> None:
    """Merge one ``session.update`` body into another as the session applies them in turn: the
    nested ``session``/``audio``/``audio.input``/``audio.output`` objects merge, a ``turn_detection``
    of the same type merges, every other value is replaced."""
    for key, value in update.items():
        here = f"{path}.{key}" if path else key
        current = base.get(key)
        nested = here in ("session", "session.audio", "session.audio.input", "session.audio.output")
        same_detection = (
            here == "session.audio.input.turn_detection"
            and isinstance(value, Mapping)
            and isinstance(current, dict)
            and current.get("type", "server_vad") == value.get("type", "server_vad")
        )
        if nested and isinstance(value, Mapping) and isinstance(current, dict):
            merge_session_update(current, value, here)
        elif same_detection and isinstance(value, Mapping) and isinstance(current, dict):
            current.update(copy.deepcopy(dict(value)))
        else:
            base[key] = copy.deepcopy(value)


def check_max_session_duration(value: object) -> float | None:
    """``max_session_duration_s``: None (off) or seconds in (0, 3600]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(
            f"parameter 'max_session_duration_s' must be a number of seconds or None, not {value!r}"
        )
    if not 0 < value <= OPENAI_SESSION_CAP_S:
        raise ValueError(
            f"parameter 'max_session_duration_s' must be > 0 and <= {OPENAI_SESSION_CAP_S:.0f} "
            f"(OpenAI's cap), not {value!r}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Reconnect after an unexpected close (codes in ``RECONNECT_CLOSE_CODES`` or a network error).

    Attempt ``n`` waits ``min(max_backoff_s, backoff_s * backoff_factor ** (n - 1))`` seconds first;
    after ``max_attempts`` failed attempts the client gives up and reports the original close.
    """

    max_attempts: int = 3
    backoff_s: float = 0.5
    backoff_factor: float = 2.0
    max_backoff_s: float = 8.0

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"parameter 'reconnect.max_attempts' must be an int >= 1, not {attempts!r}")
        for name, low in (("backoff_s", 0.0), ("backoff_factor", 1.0), ("max_backoff_s", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TypeError(f"parameter 'reconnect.{name}' must be a number, not {value!r}")
            if value < low:
                raise ValueError(f"parameter 'reconnect.{name}' must be >= {low:g}, not {value!r}")

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * self.backoff_factor ** (attempt - 1)))

    @classmethod
    def coerce(cls, value: object) -> ReconnectPolicy | None:
        """The ``reconnect`` parameter: None/False (off), True (the defaults), a dict or a policy."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise TypeError(f"unknown key(s) {', '.join(unknown)} in parameter 'reconnect'")
            return cls(**value)
        raise TypeError(
            "parameter 'reconnect' must be a ReconnectPolicy, a dict, a bool or None, "
            f"not {type(value).__name__}"
        )


@dataclass(slots=True)
class CarriedItem:
    """One conversation item as text: ``kind`` is user, assistant, system, function_call or
    function_call_output."""

    id: str | None
    kind: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    cut_off: bool = False  # truncated by a barge-in, or its response never finished

    def message(self) -> dict[str, Any]:
        """The item in Chat Completions shape (what the summary rules work on)."""
        if self.kind == "function_call":
            call = {
                "id": self.call_id,
                "type": "function",
                "function": {"name": self.name, "arguments": self.arguments},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        if self.kind == "function_call_output":
            return {"role": "tool", "tool_call_id": self.call_id, "content": self.text}
        return {"role": self.kind, "content": self.shown_text()}

    def shown_text(self) -> str:
        return self.text + INTERRUPTED_MARK if self.cut_off and self.text else self.text

    def realtime_item(self) -> dict[str, Any]:
        """The ``item`` of a ``conversation.item.create`` that puts it in a new session."""
        item: dict[str, Any]
        if self.kind == "function_call":
            item = {
                "type": "function_call",
                "call_id": self.call_id,
                "name": self.name,
                "arguments": self.arguments,
            }
        elif self.kind == "function_call_output":
            item = {"type": "function_call_output", "call_id": self.call_id, "output": self.text}
        else:
            part = "output_text" if self.kind == "assistant" else "input_text"
            item = {
                "type": "message",
                "role": self.kind,
                "content": [{"type": part, "text": self.shown_text()}],
            }
        if self.id is not None and len(self.id) <= MAX_ITEM_ID_CHARS:
            item["id"] = self.id  # the scenario's references (truncate, delete, call ids) stay valid
        return item


def _content_text(content: object) -> str:
    """The text of a message item's content parts: text, transcripts (None while pending)."""
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, Mapping):
            value = part.get("text") if part.get("text") is not None else part.get("transcript")
            if isinstance(value, str) and value:
                texts.append(value)
    return " ".join(texts)


@dataclass(slots=True)
class _Echoes:
    created: bool = False
    updates: int = 0
    item_ids: set[str] = field(default_factory=set)


class SessionCarry:
    """The state one Realtime session hands to the next (see the module docstring).

    ``budget_chars``: the size (characters of the items' JSON in Chat Completions shape) beyond which
    the oldest turns are folded into the rolling summary, as the Chat Completions context does.
    """

    def __init__(
        self, budget_chars: int = DEFAULT_CONTEXT_BUDGET_CHARS, *, conversation: bool = True
    ) -> None:
        if isinstance(budget_chars, bool) or not isinstance(budget_chars, int) or budget_chars < 1:
            raise ValueError(
                f"parameter 'carry_over_budget_chars' must be a positive int, not {budget_chars!r}"
            )
        self.budget_chars = budget_chars
        self.conversation = conversation  # False for transcription sessions: no conversation to carry
        self.updates: list[tuple[dict[str, Any], bool]] = []  # (session.update body, by the scenario)
        self.items: dict[str, CarriedItem] = {}  # by item id, in conversation order
        self.summary: str | None = None
        self.folded_items = 0
        self.response_active = False
        self.caller_speaking = False
        self._turn_open_until: float | None = None
        self._echoes = _Echoes()
        self._pending_ids = 0
        self._streaming: set[str] = set()  # assistant items whose output_item.done has not come

    # -- what the client sends ------------------------------------------------------------------------

    def note_sent(self, event_type: str, body: Mapping[str, Any] | None, *, by_scenario: bool) -> None:
        """A client event the client sent (after it was accepted by the wire core)."""
        if event_type == "session.update" and body is not None:
            entry = (copy.deepcopy(dict(body)), by_scenario)
            entry[0].pop("event_id", None)
            if not self.updates or self.updates[-1] != entry:
                self.updates.append(entry)
            if len(self.updates) > MAX_REPLAYED_UPDATES:
                # A scenario that updates every turn: the two oldest become one, merged as OpenAI
                # applies them, so the replay stays short.
                (first, by_first), (second, by_second) = self.updates[:2]
                merge_session_update(first, second)
                self.updates[:2] = [(first, by_first or by_second)]

    # -- what the server sends ------------------------------------------------------------------------

    def note_received(self, event_type: str, data: Mapping[str, Any], now: float) -> None:
        """A server event (``now``: seconds on any monotonic scale)."""
        if event_type == "response.created":
            self.response_active = True
            self._turn_open_until = None
        elif event_type == "response.done":
            self.response_active = False
            response = data.get("response")
            outputs = response.get("output") if isinstance(response, Mapping) else None
            cut = isinstance(response, Mapping) and response.get("status") in ("cancelled", "incomplete")
            for item in outputs if isinstance(outputs, list) else []:
                if isinstance(item, Mapping):
                    self._upsert(item, cut_off=cut)
                    self._streaming.discard(str(item.get("id")))
        elif event_type == "input_audio_buffer.speech_started":
            self.caller_speaking = True
        elif event_type in ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"):
            self.caller_speaking = False
            self._turn_open_until = now + TURN_GRACE_S
        elif event_type in (
            "conversation.item.added",
            "conversation.item.created",
            "conversation.item.done",
            "response.output_item.added",
            "response.output_item.done",
            "conversation.item.retrieved",
        ):
            item = data.get("item")
            if isinstance(item, Mapping):
                self._upsert(item)
                item_id = item.get("id")
                if event_type == "response.output_item.added" and isinstance(item_id, str):
                    self._streaming.add(item_id)
                elif event_type == "response.output_item.done":
                    self._streaming.discard(str(item_id))
        elif event_type == "conversation.item.input_audio_transcription.completed":
            record = self.items.get(str(data.get("item_id")))
            transcript = data.get("transcript")
            if record is not None and isinstance(transcript, str):
                record.text = transcript.strip()
        elif event_type in (
            "response.output_audio_transcript.delta",
            "response.output_text.delta",
            "response.audio_transcript.delta",
            "response.text.delta",
        ):
            record = self.items.get(str(data.get("item_id")))
            delta = data.get("delta")
            if record is not None and record.kind == "assistant" and isinstance(delta, str):
                record.text += delta
        elif event_type == "conversation.item.deleted":
            self.items.pop(str(data.get("item_id")), None)
        elif event_type == "conversation.item.truncated":
            record = self.items.get(str(data.get("item_id")))
            if record is not None:
                record.cut_off = True

    def _upsert(self, item: Mapping[str, Any], *, cut_off: bool = False) -> None:
        kind = item.get("type")
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return
        record = self.items.get(item_id)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system"):
                return
            text = _content_text(item.get("content"))
            if record is None:
                record = self.items[item_id] = CarriedItem(item_id, str(role))
            if text:
                record.text = text
        elif kind == "function_call":
            if record is None:
                record = self.items[item_id] = CarriedItem(item_id, "function_call")
            record.call_id = str(item.get("call_id") or record.call_id)
            record.name = str(item.get("name") or record.name)
            arguments = item.get("arguments")
            if isinstance(arguments, str) and arguments:
                record.arguments = arguments
        elif kind == "function_call_output":
            if record is None:
                record = self.items[item_id] = CarriedItem(item_id, "function_call_output")
            record.call_id = str(item.get("call_id") or record.call_id)
            output = item.get("output")
            if isinstance(output, str):
                record.text = output
        else:
            return  # MCP calls, images...: not carried
        if cut_off or item.get("status") == "incomplete":
            record.cut_off = True

    # -- when a switch may happen ---------------------------------------------------------------------

    def open_function_calls(self) -> list[str]:
        """call_ids of function calls without an output item yet."""
        answered = {i.call_id for i in self.items.values() if i.kind == "function_call_output"}
        return [
            i.call_id for i in self.items.values() if i.kind == "function_call" and i.call_id not in answered
        ]

    def unsafe_reason(self, now: float) -> str | None:
        """Why a planned switch must wait now, or None when it may happen (the client also waits for
        its own model audio to finish playing)."""
        if self.response_active:
            return "a response is active"
        if self.caller_speaking:
            return "the caller is speaking"
        if self._turn_open_until is not None and now < self._turn_open_until:
            return "the caller's turn was just committed"
        if self.open_function_calls():
            return "a function call has no output yet"
        return None

    def session_ended(self) -> None:
        """The old session is gone (a drop, an expiry): what it had in flight ends with it; an
        assistant item still streaming keeps its text so far, marked as cut off."""
        self.response_active = False
        self.caller_speaking = False
        self._turn_open_until = None
        for item_id in self._streaming:
            record = self.items.get(item_id)
            if record is not None:
                record.cut_off = True
        self._streaming.clear()

    # -- the rolling summary --------------------------------------------------------------------------

    def _records(self) -> list[CarriedItem]:
        # A message with no text (audio never transcribed, an answer cut before its first word) has
        # nothing to carry.
        keep = ("function_call", "function_call_output")
        return [r for r in self.items.values() if r.text or r.kind in keep]

    def _context(self) -> tuple[ConversationContext, list[CarriedItem]]:
        records = self._records()
        ctx = ConversationContext(self.budget_chars)
        ctx.summary = self.summary
        ctx.history = [r.message() for r in records]
        return ctx, records

    def fold_request(self, prompt: str) -> tuple[list[dict[str, str]], list[str]] | None:
        """When the conversation exceeds the budget: the summary request's messages (the Chat
        Completions context's ``summary_messages``) and the ids of the items it folds; else None."""
        ctx, records = self._context()
        if not ctx.over_budget():
            return None
        folded = ctx.fold_point()
        if folded <= 0:
            return None
        ids = [r.id for r in records[:folded] if r.id is not None]
        return summary_messages(prompt, self.summary, ctx.history[:folded]), ids

    def apply_summary(self, item_ids: list[str], summary: str) -> bool:
        """Fold the items into ``summary`` (False when they changed meanwhile: nothing applied)."""
        if not all(i in self.items for i in item_ids):
            return False
        for item_id in item_ids:
            del self.items[item_id]
        self.summary = summary.strip()
        self.folded_items += len(item_ids)
        return True

    def fold_locally(self) -> int:
        """Fold what is over budget without the summary model (it failed or is not there yet): the
        folded turns as ``role: text`` lines after the previous summary, keeping the newest within a
        quarter of the budget. Returns how many items were folded."""
        ctx, records = self._context()
        if not ctx.over_budget():
            return 0
        folded = ctx.fold_point()
        if folded <= 0:
            return 0
        lines = "\n".join(s for s in (self.summary, render_transcript(ctx.history[:folded])) if s)
        keep = max(1, self.budget_chars // 4)
        text = lines if len(lines) <= keep else "…" + lines[-keep:]
        ids = [r.id for r in records[:folded] if r.id is not None]
        self.apply_summary(ids, text)
        return len(ids)

    # -- the new session ------------------------------------------------------------------------------

    def carry_items(self) -> list[dict[str, Any]]:
        """The items (``conversation.item.create``'s ``item``) that rebuild the conversation, in order:
        the summary first (a system message), then every carried turn."""
        if not self.conversation:
            return []
        out: list[dict[str, Any]] = []
        if self.summary:
            self._pending_ids += 1
            summary_id = f"carry_summary_{self._pending_ids}"
            out.append(
                {
                    "type": "message",
                    "role": "system",
                    "id": summary_id,
                    "content": [{"type": "input_text", "text": SUMMARY_HEADER + self.summary}],
                }
            )
        out.extend(r.realtime_item() for r in self._records())
        return out

    def expect_echoes(self, updates: int, items: list[dict[str, Any]]) -> None:
        """The replay is being sent: its answers are the new session's, not the scenario's."""
        self._echoes = _Echoes(True, updates, {str(i["id"]) for i in items if "id" in i})

    def is_echo(self, event_type: str, data: Mapping[str, Any]) -> bool:
        """True for a server event that answers the replay (consumed: each is recognised once)."""
        echoes = self._echoes
        if event_type in ("session.created", "transcription_session.created") and echoes.created:
            echoes.created = False
            return True
        if event_type in ("session.updated", "transcription_session.updated") and echoes.updates:
            echoes.updates -= 1
            return True
        if event_type in ("conversation.item.added", "conversation.item.created", "conversation.item.done"):
            item = data.get("item")
            item_id = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(item_id, str) and item_id in echoes.item_ids:
                if event_type != "conversation.item.added":
                    echoes.item_ids.discard(item_id)  # done (GA) or created (beta) is the last
                return True
        return False
