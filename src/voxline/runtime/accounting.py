"""The per-call tracker: what each call cost in latency, where barge-in went, what it used.

One :class:`CallTracker` per call, fed by what the session already sees: the runtime's observer
(``Runtime.observers``, the mechanism the demo's live view uses) hands it the call and every
Realtime client the call's session creates; it listens to the clients' events, taps the model audio
they play out (one attribute store per 20 ms frame) and asks the call's leg what the caller heard
and the RTP figures. It measures

- turns: the caller's ``speech_stopped`` -> the first model audio handed to the caller's leg (for
  SIP the RTP sender sends a talkspurt's first frame at once), tool time included;
- tool calls: ``response.function_call_arguments.done`` -> the ``function_call_output`` item;
- barge-ins: ``speech_started`` while the caller hears model audio -> the call's playout cleared
  (``to_silence_ms``), with what the caller had heard and what the leg had been given then
  (``heard_ms`` / ``received_ms``, on the model audio's output timeline) and the truncation;
- truncations (``conversation.item.truncated``) and truncation errors, RTP statistics of SIP legs,
  tokens from ``response.done`` usage.

At the call's end it logs one INFO line on ``voxline.calls`` (one at its start too), reports the
finished figures to :data:`voxline.telemetry.TELEMETRY`, ends its OpenTelemetry spans (when tracing is
on) and returns the quality record, which the call delivers as ``CallEvents.QualityRecord`` and
:class:`Accounting` writes to ``--call-log DIR``. A failure here is logged and never reaches the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import telemetry
from .._tasks import background
from ..audio import Frame
from ..eventtarget import Event
from ..media import MediaUnit
from ..openai.events import RealtimeAPIEvents as Ev
from ..openai.realtime import RealtimeAPIClient
from .call import Call, CallState
from .events import CallEvents
from .legs import CarrierLeg, SipLeg, WebRtcLeg

if TYPE_CHECKING:
    from ..observability.otel import CallSpans, CallTracing
    from .session import Session

__all__ = ["Accounting", "CallTracker", "otel_requested", "transport_of"]

log = logging.getLogger("voxline.calls")

# Model audio counts as still audible this long after the frame last handed to the leg has played out.
_AUDIBLE_SLACK_S = 0.06


def otel_requested(env: Mapping[str, str]) -> bool:
    """The standard variables ask for traces: ``OTEL_TRACES_EXPORTER`` names an exporter (and
    ``OTEL_SDK_DISABLED`` is not true). Read without importing ``opentelemetry``."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return env.get("OTEL_TRACES_EXPORTER", "").strip().lower() not in ("", "none")


def transport_of(call: Call) -> str:
    """``sip``, ``twilio`` or ``voxengine`` (the carrier stream's kind), ``webrtc``, else ``other``."""
    leg = call.leg
    if isinstance(leg, SipLeg):
        return "sip"
    if isinstance(leg, WebRtcLeg):
        return "webrtc"
    if isinstance(leg, CarrierLeg):
        return str(leg.stream.kind)
    return "other"


def _carrier_call_id(call: Call) -> str | None:
    leg = call.leg
    if isinstance(leg, SipLeg):
        return leg.sip.call_id if leg.sip is not None else None
    if isinstance(leg, CarrierLeg):
        return leg.stream.call_id
    return None


def _rtp_stats(call: Call) -> dict[str, int] | None:
    """The RTP session's counters and its reorder buffer's (lost, late...), for SIP legs."""
    leg = call.leg
    if not isinstance(leg, SipLeg) or leg.sip is None or leg.sip.rtp is None:
        return None
    session = leg.sip.rtp.session
    jitter = session.jitter
    return {
        **session.stats,
        "lost": jitter.lost,
        "late": jitter.late,
        "duplicates": jitter.duplicates,
        "reordered": jitter.reordered,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


@dataclass
class _Turn:
    index: int
    stopped_at: float
    item_id: str | None
    span: Any = None
    answered: bool = False  # a response was created for it: its first audio ends the turn
    response_ms: float | None = None
    outcome: str = "open"  # answered | interrupted | no_audio
    caller_said: str | None = None
    agent_said: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)


@dataclass
class _ToolCall:
    call_id: str
    name: str
    arguments: str
    started_at: float
    turn: int | None
    span: Any = None
    duration_ms: float | None = None


@dataclass
class _BargeIn:
    at: float
    span: Any = None
    heard_ms: int | None = None
    received_ms: int | None = None
    to_silence_ms: float | None = None
    item_id: str | None = None
    audio_end_ms: int | None = None


def _add_usage(into: dict[str, int], usage: Mapping[str, Any]) -> None:
    """``response.done`` usage: the totals and the audio/text/cached details, summed."""
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            into[key] = into.get(key, 0) + value
    for side in ("input", "output"):
        details = usage.get(f"{side}_token_details")
        if isinstance(details, Mapping):
            for kind in ("audio_tokens", "text_tokens", "cached_tokens"):
                value = details.get(kind)
                if isinstance(value, int):
                    name = f"{side}_{kind}"
                    into[name] = into.get(name, 0) + value


class CallTracker:
    """The figures of one call (see the module's docstring); a :class:`~voxline.runtime.call.CallMonitor`
    of its call and a media tap of its Realtime clients."""

    def __init__(
        self,
        call: Call,
        session_id: str,
        *,
        spans: CallSpans | None = None,
        clock: Callable[[], float] = time.monotonic,
        direction: str = "inbound",
    ) -> None:
        self.call = call
        self.session_id = session_id
        self.transport = transport_of(call)
        self.direction = direction
        self._clock = clock
        self._spans = spans
        self.started_at = clock()
        self._started_wall = time.time()
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.clients: list[RealtimeAPIClient] = []
        self.turns: list[_Turn] = []
        self._turn: _Turn | None = None  # waiting for its first audio
        self._turn_of_response: dict[str, _Turn | None] = {}
        self.greeting: list[str] = []  # agent speech before the caller's first turn
        self.tool_calls: list[_ToolCall] = []
        self._open_tools: dict[str, _ToolCall] = {}
        self.barge_ins: list[_BargeIn] = []
        self._barge: _BargeIn | None = None  # waiting for the clear
        self.clears = 0
        self.truncations = 0
        self.truncation_errors = 0
        self.tokens: dict[str, int] = {}
        self.responses = {"created": 0, "completed": 0, "cancelled": 0, "incomplete": 0, "failed": 0}
        self.errors: list[str] = []  # Realtime error codes (never their messages: they may quote input)
        # The model audio tap: the last frame handed to the caller's leg, and when.
        self._last_frame: Frame | None = None
        self._last_frame_at = 0.0
        self.record: dict[str, Any] | None = None
        call.monitors.append(self)
        call.add_event_listener(CallEvents.Connected, self._on_connected)
        log.info(
            "call %s started: %s %s from %s to %s",
            call.id(),
            self.transport,
            direction,
            call.caller_id() or "-",
            call.destination() or "-",
            extra={**self._log_ids(), "fields": self._identity()},
        )

    def _log_ids(self) -> dict[str, Any]:
        # The record's own ids (voxline.logs renders them), whichever context reports the end.
        return {"session_id": self.session_id, "call_id": self.call.id()}

    def _identity(self) -> dict[str, Any]:
        return {
            "event": "call_started" if self.ended_at is None else "call_ended",
            "transport": self.transport,
            "direction": self.direction,
            "caller": self.call.caller_id(),
            "destination": self.call.destination(),
        }

    @property
    def privacy(self) -> bool:
        """A client of the call was created with ``privacy``: no transcript text anywhere."""
        return any(client.privacy for client in self.clients)

    # -- inputs -----------------------------------------------------------------------------------

    def watch_client(self, client: RealtimeAPIClient) -> None:
        """Listen to a Realtime client of the call's session and tap the model audio it plays."""
        if client in self.clients:
            return
        self.clients.append(client)
        handlers: dict[Ev, Callable[[dict[str, Any]], None]] = {
            Ev.InputAudioBufferSpeechStarted: self._speech_started,
            Ev.InputAudioBufferSpeechStopped: self._speech_stopped,
            Ev.ConversationItemInputAudioTranscriptionCompleted: self._caller_transcript,
            Ev.ResponseCreated: self._response_created,
            Ev.ResponseOutputAudioTranscriptDone: self._agent_transcript,
            Ev.ResponseFunctionCallArgumentsDone: self._tool_started,
            Ev.ConversationItemAdded: self._item_added,
            Ev.ConversationItemTruncated: self._truncated,
            Ev.ResponseDone: self._response_done,
            Ev.Error: self._error,
        }
        for name, handler in handlers.items():
            client.add_event_listener(name, self._listener(handler))
        client.add_tap(self)

    def _listener(self, handler: Callable[[dict[str, Any]], None]) -> Callable[[Event], None]:
        def on_event(event: Event) -> None:
            if self.ended_at is not None:
                return
            data = event.data if isinstance(event.data, dict) else {}
            try:
                handler(data)
            except Exception:  # the figures are ours: a surprise in them never reaches the scenario
                log.exception("call %s: accounting of %s failed", self.call.id(), event.name)

        return on_event

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        """Model audio handed to the caller's leg (the client's sinks get it before its taps)."""
        self._last_frame = frame
        self._last_frame_at = now = self._clock()
        turn = self._turn
        if turn is not None and turn.answered:
            self._finish_turn(turn, now, "answered")

    def clearing_media(self) -> None:
        """The call's playout is being cleared: the barge-in waiting for it ends here."""
        self.clears += 1
        barge = self._barge
        if barge is None or self.ended_at is not None:
            return
        now = self._clock()
        frame = self._last_frame
        received = int(frame.timestamp_ms + frame.duration_ms) if frame is not None else None
        heard = self.call.leg.played_ms() if self.call.reports_playback else received
        barge.received_ms = received
        barge.heard_ms = heard if heard is None or received is None else min(heard, received)
        self._finish_barge(barge, now)

    def _on_connected(self, event: Event) -> None:
        self.connected_at = self._clock()

    # -- Realtime events --------------------------------------------------------------------------

    def _audible(self, now: float) -> bool:
        """The caller hears (or is about to hear) model audio now."""
        frame = self._last_frame
        if frame is None:
            return False
        if now < self._last_frame_at + frame.duration_ms / 1000.0 + _AUDIBLE_SLACK_S:
            return True
        if self.call.reports_playback:  # Twilio's player may hold batches sent ahead
            played = self.call.leg.played_ms()
            return played is not None and played < frame.timestamp_ms + frame.duration_ms
        return False

    def _speech_started(self, data: dict[str, Any]) -> None:
        now = self._clock()
        turn = self._turn
        if turn is not None:  # the caller spoke again before hearing an answer to the last turn
            self._finish_turn(turn, now, "interrupted")
        if self._barge is None and self._audible(now):
            barge = _BargeIn(at=now)
            if self._spans is not None:
                index = len(self.barge_ins) + 1
                barge.span = self._spans.start("voxline.barge_in", {"voxline.barge_in.index": index})
            self._barge = barge

    def _speech_stopped(self, data: dict[str, Any]) -> None:
        now = self._clock()
        if self._barge is not None:  # the scenario did not clear the caller's playout
            self._finish_barge(self._barge, None)
        if self._turn is not None:
            self._finish_turn(self._turn, now, "interrupted")
        item_id = data.get("item_id")
        turn = _Turn(len(self.turns) + 1, now, item_id if isinstance(item_id, str) else None)
        if self._spans is not None:
            turn.span = self._spans.start("voxline.turn", {"voxline.turn.index": turn.index})
        self.turns.append(turn)
        self._turn = turn

    def _caller_transcript(self, data: dict[str, Any]) -> None:
        item_id, transcript = data.get("item_id"), data.get("transcript")
        if not isinstance(transcript, str):
            return
        for turn in reversed(self.turns):
            if turn.item_id == item_id:
                turn.caller_said = transcript
                return

    def _response_created(self, data: dict[str, Any]) -> None:
        self.responses["created"] += 1
        response = data.get("response")
        response_id = response.get("id") if isinstance(response, dict) else None
        turn = self._turn
        if turn is not None:
            turn.answered = True
        if isinstance(response_id, str):
            self._turn_of_response[response_id] = turn if turn is not None else self._latest_turn()

    def _latest_turn(self) -> _Turn | None:
        return self.turns[-1] if self.turns else None

    def _agent_transcript(self, data: dict[str, Any]) -> None:
        transcript = data.get("transcript")
        if not isinstance(transcript, str):
            return
        response_id = data.get("response_id")
        turn = self._turn_of_response.get(response_id) if isinstance(response_id, str) else None
        (turn.agent_said if turn is not None else self.greeting).append(transcript)

    def _tool_started(self, data: dict[str, Any]) -> None:
        call_id, name = data.get("call_id"), data.get("name")
        if not isinstance(call_id, str):
            return
        name = name if isinstance(name, str) else "?"
        arguments = data.get("arguments")
        turn = self._turn or self._latest_turn()
        tool = _ToolCall(
            call_id,
            name,
            arguments if isinstance(arguments, str) else "",
            self._clock(),
            turn.index if turn is not None else None,
        )
        if turn is not None:
            turn.tool_calls.append(name)
        if self._spans is not None:
            tool.span = self._spans.start(
                "voxline.tool_call", {"voxline.tool.name": name, "voxline.tool.call_id": call_id}
            )
        self._open_tools[call_id] = tool
        self.tool_calls.append(tool)

    def _item_added(self, data: dict[str, Any]) -> None:
        item = data.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call_output":
            return
        tool = self._open_tools.pop(str(item.get("call_id")), None)
        if tool is None:
            return
        tool.duration_ms = _ms(self._clock() - tool.started_at)
        if self._spans is not None and tool.span is not None:
            self._spans.end(tool.span, {"voxline.tool.duration_ms": tool.duration_ms})

    def _truncated(self, data: dict[str, Any]) -> None:
        self.truncations += 1
        barge = self.barge_ins[-1] if self.barge_ins else self._barge
        end_ms = data.get("audio_end_ms")
        if barge is not None and barge.audio_end_ms is None and isinstance(end_ms, int):
            barge.audio_end_ms = end_ms
            item_id = data.get("item_id")
            barge.item_id = item_id if isinstance(item_id, str) else None

    def _response_done(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        if not isinstance(response, dict):
            return
        status = response.get("status")
        if isinstance(status, str) and status in self.responses:
            self.responses[status] += 1
        usage = response.get("usage")
        if isinstance(usage, dict):
            _add_usage(self.tokens, usage)
            response_id = response.get("id")
            turn = self._turn_of_response.get(response_id) if isinstance(response_id, str) else None
            if turn is not None:
                _add_usage(turn.tokens, usage)

    def _error(self, data: dict[str, Any]) -> None:
        error = data.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, str) else "unknown"
        self.errors.append(code)
        if code == "item_truncate_invalid_audio_end_ms":
            self.truncation_errors += 1

    # -- finishing figures ------------------------------------------------------------------------

    def _finish_turn(self, turn: _Turn, now: float, outcome: str) -> None:
        self._turn = None
        turn.outcome = outcome
        if outcome == "answered":
            turn.response_ms = _ms(now - turn.stopped_at)
        telemetry.TELEMETRY.turn_finished(self.transport, turn.response_ms)
        if self._spans is not None and turn.span is not None:
            attributes: dict[str, Any] = {"voxline.turn.outcome": outcome}
            if turn.response_ms is not None:
                attributes["voxline.turn.response_ms"] = turn.response_ms
            self._spans.end(turn.span, attributes)

    def _finish_barge(self, barge: _BargeIn, now: float | None) -> None:
        self._barge = None
        if now is not None:
            barge.to_silence_ms = _ms(now - barge.at)
        self.barge_ins.append(barge)
        telemetry.TELEMETRY.barge_in(self.transport, barge.to_silence_ms)
        if self._spans is not None and barge.span is not None:
            attributes: dict[str, Any] = {"voxline.barge_in.cleared": barge.to_silence_ms is not None}
            for name in ("heard_ms", "received_ms", "to_silence_ms"):
                value = getattr(barge, name)
                if value is not None:
                    attributes[f"voxline.barge_in.{name}"] = value
            self._spans.end(barge.span, attributes)

    def call_ending(self, name: CallEvents, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The call has ended: close what is open, log the end line, build the record."""
        if self.ended_at is not None:
            return None
        now = self._clock()
        if self._turn is not None:
            self._finish_turn(self._turn, now, "no_audio")
        if self._barge is not None:
            self._finish_barge(self._barge, None)
        for tool in self._open_tools.values():
            if self._spans is not None and tool.span is not None:
                self._spans.end(tool.span, {"voxline.tool.finished": False})
        self._open_tools.clear()
        self.ended_at = now
        if name is CallEvents.Failed:
            outcome = "rejected" if fields.get("reason") == "rejected" else "failed"
        else:
            outcome = "completed" if self.connected_at is not None else "abandoned"
        record = self._build_record(outcome, fields)
        self.record = record
        duration_s = now - self.started_at
        p50 = record["latency"]["p50_ms"]
        log.info(
            "call %s ended: %s from %s, %.1f s, %s%s, %d turn%s, %d barge-in%s, p50 response %s",
            self.call.id(),
            self.transport,
            self.call.caller_id() or "-",
            duration_s,
            outcome,
            f" ({fields['reason']})" if fields.get("reason") else "",
            len(self.turns),
            "" if len(self.turns) == 1 else "s",
            len(self.barge_ins),
            "" if len(self.barge_ins) == 1 else "s",
            f"{p50:.0f} ms" if p50 is not None else "n/a",
            extra={
                **self._log_ids(),
                "fields": {
                    **self._identity(),
                    "duration_s": round(duration_s, 3),
                    "outcome": outcome,
                    "reason": fields.get("reason") or None,
                    "turns": len(self.turns),
                    "barge_ins": len(self.barge_ins),
                    "p50_response_ms": p50,
                },
            },
        )
        if self._spans is not None:
            error = fields.get("reason") or outcome if outcome == "failed" else None
            self._spans.end_call(self._call_attributes(record), error=error)
        return record

    def _build_record(self, outcome: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        assert self.ended_at is not None
        private = self.privacy
        latencies = [t.response_ms for t in self.turns if t.response_ms is not None]
        turns = []
        for turn in self.turns:
            entry: dict[str, Any] = {
                "index": turn.index,
                "at_s": round(turn.stopped_at - self.started_at, 3),
                "response_ms": turn.response_ms,
                "outcome": turn.outcome,
                "function_calls": turn.tool_calls,
                "tokens": turn.tokens,
            }
            if not private:
                entry["caller_said"] = turn.caller_said
                entry["agent_said"] = turn.agent_said
            turns.append(entry)
        tools = []
        for tool in self.tool_calls:
            item: dict[str, Any] = {
                "name": tool.name,
                "call_id": tool.call_id,
                "turn": tool.turn,
                "at_s": round(tool.started_at - self.started_at, 3),
                "duration_ms": tool.duration_ms,
            }
            if not private:
                item["arguments"] = tool.arguments
            tools.append(item)
        realtime = []
        for client in self.clients:
            try:
                realtime.append({"client_id": client.id(), **client.statistics()})
            except RuntimeError:  # created without statistics
                realtime.append({"client_id": client.id()})
        record: dict[str, Any] = {
            "call_id": self.call.id(),
            "session_id": self.session_id,
            "carrier_call_id": _carrier_call_id(self.call),
            "transport": self.transport,
            "direction": self.direction,
            "caller": self.call.caller_id(),
            "destination": self.call.destination(),
            "started_at": datetime.fromtimestamp(self._started_wall, UTC).isoformat(timespec="milliseconds"),
            "duration_s": round(self.ended_at - self.started_at, 3),
            "answered_after_s": (
                round(self.connected_at - self.started_at, 3) if self.connected_at is not None else None
            ),
            "outcome": outcome,
            "reason": fields.get("reason") or None,
            "code": fields.get("code"),
            "initiator": fields.get("initiator"),
            "privacy": private,
            "turns": turns,
            "latency": {
                "count": len(latencies),
                "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
                "p90_ms": _percentile(latencies, 0.9),
                "max_ms": max(latencies) if latencies else None,
            },
            "tool_calls": tools,
            "barge_ins": [
                {
                    "at_s": round(b.at - self.started_at, 3),
                    "heard_ms": b.heard_ms,
                    "received_ms": b.received_ms,
                    "unplayed_ms": (
                        b.received_ms - b.heard_ms
                        if b.received_ms is not None and b.heard_ms is not None
                        else None
                    ),
                    "to_silence_ms": b.to_silence_ms,
                    "truncated_item": b.item_id,
                    "audio_end_ms": b.audio_end_ms,
                }
                for b in self.barge_ins
            ],
            "clears": self.clears,
            "truncations": self.truncations,
            "truncation_errors": self.truncation_errors,
            "responses": dict(self.responses),
            "tokens": dict(self.tokens),
            "rtp": _rtp_stats(self.call),
            "realtime": realtime,
            "errors": list(self.errors),
        }
        if not private:
            record["greeting"] = list(self.greeting)
        return record

    def _call_attributes(self, record: Mapping[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "voxline.call.outcome": record["outcome"],
            "voxline.call.duration_s": record["duration_s"],
            "voxline.call.turns": len(record["turns"]),
            "voxline.call.barge_ins": len(record["barge_ins"]),
            "voxline.call.tool_calls": len(record["tool_calls"]),
            "voxline.call.truncations": record["truncations"],
        }
        if record["latency"]["p50_ms"] is not None:
            attributes["voxline.call.response_p50_ms"] = record["latency"]["p50_ms"]
        for key, value in record["tokens"].items():
            attributes[f"voxline.tokens.{key}"] = value
        for key, value in (record["rtp"] or {}).items():
            attributes[f"voxline.rtp.{key}"] = value
        if record["reason"]:
            attributes["voxline.call.reason"] = str(record["reason"])
        return attributes


def record_path(directory: Path, record: Mapping[str, Any]) -> Path:
    """``DIR/<UTC start>-<call id>.json``: named by the call, unique across restarts (the call ids
    count from 1 in each process)."""
    started = str(record["started_at"]).replace("-", "").replace(":", "").split(".")[0]
    return directory / f"{started}Z-{record['call_id']}.json"


def write_record(directory: Path, record: Mapping[str, Any]) -> Path:
    """Write the record (a new file, written whole, then renamed into place)."""
    path = record_path(directory, record)
    n = 1
    while path.exists():  # the same second, the same call id: another process's
        n += 1
        path = path.with_name(f"{path.stem.split('~')[0]}~{n}.json")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


class Accounting:
    """The runtime's observer: a :class:`CallTracker` for every call a session adopts (the session's
    first call gets its Realtime clients), quality records written to ``call_log``."""

    def __init__(self, *, call_log: Path | None = None, tracing: CallTracing | None = None) -> None:
        self.call_log = call_log
        self.tracing = tracing
        self._trackers: weakref.WeakKeyDictionary[Session, CallTracker] = weakref.WeakKeyDictionary()
        self._writes: set[asyncio.Task[Any]] = set()

    def observe(self, session: Session, resource: Any) -> None:
        if isinstance(resource, Call):
            self.track(session, resource)
        elif isinstance(resource, RealtimeAPIClient):
            tracker = self._trackers.get(session)
            if tracker is not None:
                tracker.watch_client(resource)

    def track(self, session: Session, call: Call) -> CallTracker:
        direction = "outbound" if call.state() is CallState.PROGRESSING else "inbound"
        spans = None
        if self.tracing is not None:
            spans = self.tracing.start_call(
                {
                    "voxline.call.id": call.id(),
                    "voxline.session.id": session.id,
                    "voxline.transport": transport_of(call),
                    "voxline.call.direction": direction,
                },
                inbound=direction == "inbound",
            )
        tracker = CallTracker(call, session.id, spans=spans, direction=direction)
        self._trackers.setdefault(session, tracker)
        if self.call_log is not None:
            call.add_event_listener(CallEvents.QualityRecord, self._write)
        return tracker

    def _write(self, event: Event) -> None:
        directory = self.call_log
        assert directory is not None
        record = event.record

        def failed(exc: BaseException) -> None:
            log.warning("call %s: cannot write its record to %s: %s", record.get("call_id"), directory, exc)

        # Off the event loop: a slow disk must not hold up the other calls' audio.
        task = background(
            asyncio.to_thread(write_record, directory, record), name="call-record", on_error=failed
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Wait for the records being written; flush the traces."""
        pending = [task for task in self._writes if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        self._writes.clear()
        if self.tracing is not None:
            await self.tracing.shutdown()
