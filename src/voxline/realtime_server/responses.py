"""A session's responses: ``response.create``/``response.cancel``, one run from ``response.created``
to ``response.done``, streamed in OpenAI's event order, with the usage OpenAI reports.

The engine (:class:`~voxline.realtime_server.engine.ResponseEngine`) says what to say; this module
turns its plan into events, one at a time (:meth:`Responses.advance`) when
:meth:`Responses.next_deadline` says so. Pacing, stalls and drops read no clock: the time comes in
as an argument (:meth:`Responses.start_clock`), and the position in the response is its audio.
"""

from __future__ import annotations

import base64
import copy
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from voxline.audio import AudioFormat
from voxline.openai.formats import from_openai, to_openai

from . import ga
from .conversation import Conversation
from .engine import (
    FunctionCall,
    MCPCall,
    ResponseEngine,
    ResponseRequest,
    Say,
    ScriptedResponse,
    speech_like_audio,
)
from .events import PendingWork, SessionOutput, new_id, obfuscation, tokens
from .formats import pcm_to_format
from .session import SessionConfig
from .validation import SchemaProblem

__all__ = ["Responses"]


@dataclass(slots=True)
class _Run:
    """One response from ``response.created`` to ``response.done``."""

    response: dict[str, Any]
    params: Mapping[str, Any]
    modalities: list[str]
    out_format: AudioFormat
    in_conversation: bool
    plan: ScriptedResponse | None = None
    steps: Iterator[dict[str, Any]] | None = None
    audio_ms: float = 0.0
    released: bool = False
    open_item: dict[str, Any] | None = None
    open_index: int = 0
    open_part: dict[str, Any] | None = None
    said: str = ""
    audio: bytearray = field(default_factory=bytearray)
    done: bool = False
    started_ms: float | None = None


class Responses:
    """The responses of one session: at most one active run at a time.

    ``pace``: None streams as fast as possible, 1.0 at real time (a plan's own ``pace`` wins).
    ``on_finished`` is called when a run ends with ``response.done`` streamed (not when cancelled).
    """

    def __init__(
        self,
        config: SessionConfig,
        conversation: Conversation,
        out: SessionOutput,
        engine: ResponseEngine,
        *,
        conversation_id: str,
        pace: float | None,
        on_finished: Callable[[], None],
    ) -> None:
        self._config = config
        self._conversation = conversation
        self._out = out
        self.engine = engine
        self.pace = pace
        self._conversation_id = conversation_id
        self._on_finished = on_finished
        self._run: _Run | None = None
        self.assistant_audio_sent = False
        self._rate_tokens = 40000
        # A SIP/WebRTC call's sideband: OpenAI plays the audio itself, so no output_audio.delta goes
        # to the client; output_audio_buffer.started/stopped/cleared tell it about the playback.
        self.sideband = False
        self.playing: str | None = None  # the response whose audio OpenAI plays (sideband)

    @property
    def active(self) -> bool:
        return self._run is not None

    @property
    def active_id(self) -> str | None:
        return str(self._run.response["id"]) if self._run is not None else None

    # -- client events ---------------------------------------------------------------------------------------

    def on_create(self, event: dict[str, Any]) -> None:
        if self._config.kind == "transcription":
            self._out.reject(
                event,
                SchemaProblem(
                    "invalid_value", "Responses are not supported in transcription sessions.", "type"
                ),
            )
            return
        if self._run is not None:
            self._out.reject(
                event,
                SchemaProblem(
                    "conversation_already_has_active_response",
                    f"Conversation already has an active response in progress: {self._run.response['id']}. "
                    "Wait until the response is finished before creating a new one.",
                ),
            )
            return
        self.start(event.get("response") or {})

    def on_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self._run is None or (wanted is not None and wanted != self._run.response["id"]):
            self._out.reject(
                event,
                SchemaProblem("response_cancel_not_active", "Cancellation failed: no active response found"),
            )
            return
        self.cancel("client_cancelled")

    # -- a run -----------------------------------------------------------------------------------------------

    def start(self, params: Mapping[str, Any]) -> None:
        """Begin a response (``response.create``'s ``response`` object; empty for a VAD turn)."""
        session = self._config.session
        modalities = list(params.get("output_modalities") or session.get("output_modalities") or ["audio"])
        output = dict(session.get("audio", {}).get("output", {}))
        output.update(params.get("audio", {}).get("output", {}))
        out_fmt = from_openai(output.get("format", {"type": "audio/pcm", "rate": 24000}))
        in_conversation = params.get("conversation", "auto") != "none"
        response = {
            "object": "realtime.response",
            "id": new_id("resp"),
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self._conversation_id if in_conversation else None,
            "output_modalities": modalities,
            "max_output_tokens": params.get("max_output_tokens", session.get("max_output_tokens", "inf")),
            "audio": {"output": {"format": to_openai(out_fmt), "voice": output.get("voice", "alloy")}},
            "usage": None,
            "metadata": params.get("metadata"),
        }
        run = _Run(response, params, modalities, out_fmt, in_conversation)
        self._run = run
        self._out.emit({"type": "response.created", "response": copy.deepcopy(response)})
        conversation = params.get("input", self._conversation.items)
        request = ResponseRequest(
            response_id=response["id"],
            conversation=copy.deepcopy(list(conversation)),
            session=copy.deepcopy(session),
            params=copy.deepcopy(dict(params)),
            output_modalities=modalities,
            input_audio=self._conversation.audio_as_pcm24(),
            input_rate=24000,
        )
        result: ScriptedResponse | Awaitable[ScriptedResponse] | Exception
        try:
            result = self.engine.respond(request)
        except Exception as exc:
            result = exc
        if isinstance(result, ScriptedResponse | Exception):
            self.resolved(response["id"], result)
        else:
            self._out.defer(PendingWork("response", response["id"], result))

    def resolved(self, response_id: str, result: Any) -> None:
        """What the engine produced for ``response_id`` (``BaseException`` when it failed)."""
        if isinstance(result, BaseException):
            # A plug-in failed: the client gets the protocol's failure event; tests see internal_errors.
            self._out.engine_failed("response", result)
        run = self._run
        if run is None or run.response["id"] != response_id or run.plan is not None:
            return  # cancelled meanwhile
        if isinstance(result, ScriptedResponse):
            self._plan(run, result)
            return
        details = {
            "type": "failed",
            "error": {
                "type": "server_error",
                "code": "server_error",
                "message": f"The engine failed: {result!r}",
            },
        }
        self._plan(run, ScriptedResponse(outputs=[], status="failed", status_details=details))

    def _plan(self, run: _Run, plan: ScriptedResponse) -> None:
        run.plan = plan
        run.steps = self._stream(run, plan)

    # Streaming: the clock, the next deadline, the next event.

    def _streaming(self) -> _Run | None:
        """The active run when it has events to stream now: planned, and not held by its stall."""
        run = self._run
        if run is None or run.plan is None or run.steps is None:
            return None
        plan = run.plan
        if plan.stall_after_ms is not None and run.audio_ms >= plan.stall_after_ms and not run.released:
            return None
        return run

    def start_clock(self, now_ms: float) -> None:
        """The run's pace counts from the first time the session is given once the run can stream
        (its plan arrived; or, held by ``stall_after_ms`` before any audio, it was released)."""
        run = self._streaming()
        if run is not None and run.started_ms is None:
            run.started_ms = now_ms

    def next_deadline(self) -> float | None:
        """When the run's next event is due (``now_ms`` scale); None: nothing to stream.

        ``-inf`` when the run can stream but its clock has not started: due at once, the tick starts it.
        """
        run = self._streaming()
        if run is None:
            return None
        if run.started_ms is None:
            return -math.inf
        plan = run.plan
        assert plan is not None
        pace = plan.pace if plan.pace is not None else self.pace
        due = plan.delay_ms + (run.audio_ms / pace if pace is not None else 0.0)
        return run.started_ms + due

    @property
    def drop_due(self) -> bool:
        """The plan's ``drop_after_ms`` is reached: the connection is to be aborted now."""
        run = self._run
        if run is None or run.plan is None:
            return False
        drop = run.plan.drop_after_ms
        return drop is not None and run.audio_ms >= drop

    def advance(self) -> dict[str, Any] | None:
        """Queue the next event of the active response (stamped, recorded); None when there is none.

        After ``response.done``, the run ends and ``rate_limits.updated`` follows it.
        """
        run = self._run
        assert run is not None and run.steps is not None and run.plan is not None
        event = next(run.steps, None)
        if event is None:
            return None
        stamped = self._out.emit(event)
        if event["type"] == "response.done":
            self._finish()
        return stamped

    def release(self) -> None:
        """Let a response held by ``stall_after_ms`` go on streaming."""
        if self._run is not None:
            self._run.released = True

    def _finish(self) -> None:
        self._run = None
        self._on_finished()
        if self._config.kind == "realtime":
            self._out.emit(self._rate_limits())
        if self.playing is not None:
            # The fake's playback ends with the response (it streams at the audio's pace).
            self._out.emit({"type": "output_audio_buffer.stopped", "response_id": self.playing})
            self.playing = None

    def clear_output(self) -> None:
        """``output_audio_buffer.clear`` on a sideband: stop the playback (its response is cancelled
        first, as a barge-in would), then ``output_audio_buffer.cleared``."""
        playing = self.playing
        self.playing = None
        if self._run is not None:
            self.cancel("client_cancelled")
        event: dict[str, Any] = {"type": "output_audio_buffer.cleared"}
        if playing is not None:
            event["response_id"] = playing
        self._out.emit(event)

    def _rate_limits(self) -> dict[str, Any]:
        self._rate_tokens = max(0, self._rate_tokens - 250)
        return {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 40000, "remaining": self._rate_tokens, "reset_seconds": 0.375},
            ],
        }

    def cancel(self, reason: str) -> None:
        """End the active response now: close what is open, then ``response.done`` (cancelled)."""
        run = self._run
        if run is None:
            return
        self._run = None
        run.steps = None
        item = run.open_item
        if item is not None:
            ids: dict[str, Any] = {
                "response_id": run.response["id"],
                "item_id": item["id"],
                "output_index": run.open_index,
            }
            if item["type"] == "message":
                events = list(self._close_message(run, {**ids, "content_index": 0}, "incomplete"))
            else:
                item["status"] = "incomplete"
                events = list(self._close_item(run, item, run.open_index))
            for event in events:
                self._out.emit(event)
        self._out.emit(self._response_done(run, "cancelled", {"type": "cancelled", "reason": reason}))
        if self._config.kind == "realtime":
            self._out.emit(self._rate_limits())
        if self.playing is not None:
            # A barge-in clears OpenAI's playback; a response.cancel lets it stop where it is.
            kind = "cleared" if reason == "turn_detected" else "stopped"
            self._out.emit({"type": f"output_audio_buffer.{kind}", "response_id": self.playing})
            self.playing = None

    # -- streaming, in OpenAI's event order ------------------------------------------------------------------

    def _open_item(
        self, run: _Run, item: dict[str, Any], response_id: str, output_index: int
    ) -> Iterator[dict[str, Any]]:
        """Start an output item: into the response (and the conversation), with OpenAI's two events."""
        run.open_item = item
        run.response["output"].append(item)
        previous = self._conversation.last_id
        if run.in_conversation:
            self._conversation.append(item)
        yield {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": output_index,
            "item": copy.deepcopy(item),
        }
        if run.in_conversation:
            yield {
                "type": "conversation.item.added",
                "previous_item_id": previous,
                "item": copy.deepcopy(item),
            }

    def _stream(self, run: _Run, plan: ScriptedResponse) -> Iterator[dict[str, Any]]:
        response_id = run.response["id"]
        audio_mode = "audio" in run.modalities
        outputs = plan.items() if plan.status != "failed" else []
        for output_index, output in enumerate(outputs):
            run.open_index = output_index
            if isinstance(output, FunctionCall):
                yield from self._stream_function_call(run, output_index, output)
                continue
            if isinstance(output, MCPCall):
                yield from self._stream_mcp(run, output_index, output)
                continue
            item_id = new_id("item")
            item: dict[str, Any] = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            run.said = ""
            run.audio = bytearray()
            yield from self._open_item(run, item, response_id, output_index)
            ids = {
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
            }
            run.open_part = (
                {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
            )
            yield {"type": "response.content_part.added", **ids, "part": dict(run.open_part)}
            if audio_mode:
                yield from self._stream_audio(run, plan, output, ids)
            else:
                for token in tokens(output.text):
                    run.said += token
                    yield {
                        "type": "response.output_text.delta",
                        **ids,
                        "delta": token,
                        "obfuscation": obfuscation(token),
                    }
            yield from self._close_message(run, ids, "completed")
        run.open_item = None
        yield self._response_done(
            run, plan.status, dict(plan.status_details) if plan.status_details else None
        )

    def _stream_audio(
        self, run: _Run, plan: ScriptedResponse, say: Say, ids: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        transcript = say.transcript if say.transcript is not None else say.text
        pcm = say.audio if say.audio is not None else speech_like_audio(transcript, say.audio_rate)
        encoded = pcm_to_format(pcm, say.audio_rate, run.out_format)
        fmt = run.out_format
        chunk = max(fmt.bytes_per_sample, plan.chunk_ms * fmt.bytes_per_ms)
        chunks = [encoded[i : i + chunk] for i in range(0, len(encoded), chunk)]
        words = tokens(transcript)
        sent_words = 0
        for index, data in enumerate(chunks):
            # The transcript runs one chunk ahead of the audio, as it does live.
            due_words = math.ceil(len(words) * min(len(chunks), index + 2) / len(chunks))
            while sent_words < due_words:
                word = words[sent_words]
                sent_words += 1
                run.said += word
                yield {
                    "type": "response.output_audio_transcript.delta",
                    **ids,
                    "delta": word,
                    "obfuscation": obfuscation(word),
                }
            run.audio += data
            run.audio_ms += fmt.duration_ms(len(data))
            self.assistant_audio_sent = True
            if run.open_item is not None:
                self._conversation.item_audio[run.open_item["id"]] = (bytes(run.audio), fmt)
            if self.sideband:
                if self.playing is None:
                    self.playing = ids["response_id"]
                    yield {"type": "output_audio_buffer.started", "response_id": ids["response_id"]}
                continue
            yield {
                "type": "response.output_audio.delta",
                **ids,
                "delta": base64.b64encode(data).decode("ascii"),
            }
        for word in words[sent_words:]:
            run.said += word
            yield {
                "type": "response.output_audio_transcript.delta",
                **ids,
                "delta": word,
                "obfuscation": obfuscation(word),
            }

    def _close_message(self, run: _Run, ids: dict[str, Any], status: str) -> Iterator[dict[str, Any]]:
        """The events that end an open message (normally, or with ``incomplete`` when cancelled)."""
        item = run.open_item
        if item is None:
            return
        part = run.open_part
        if part is not None:
            if part["type"] == "audio":
                yield {"type": "response.output_audio.done", **ids}
                yield {"type": "response.output_audio_transcript.done", **ids, "transcript": run.said}
                yield {
                    "type": "response.content_part.done",
                    **ids,
                    "part": {"type": "audio", "transcript": run.said},
                }
                item["content"] = [{"type": "output_audio", "transcript": run.said}]
            else:
                yield {"type": "response.output_text.done", **ids, "text": run.said}
                yield {
                    "type": "response.content_part.done",
                    **ids,
                    "part": {"type": "text", "text": run.said},
                }
                item["content"] = [{"type": "output_text", "text": run.said}]
            run.open_part = None
        item["status"] = status
        run.open_item = None
        yield from self._close_item(run, item, ids["output_index"])

    def _close_item(self, run: _Run, item: dict[str, Any], output_index: int) -> Iterator[dict[str, Any]]:
        if run.in_conversation:
            yield {
                "type": "conversation.item.done",
                "previous_item_id": self._conversation.previous_id(item["id"]),
                "item": copy.deepcopy(item),
            }
        yield {
            "type": "response.output_item.done",
            "response_id": run.response["id"],
            "output_index": output_index,
            "item": copy.deepcopy(item),
        }

    def _stream_mcp(self, run: _Run, output_index: int, call: MCPCall) -> Iterator[dict[str, Any]]:
        """An MCP call in OpenAI's order: an approval request when the tool's policy wants one and the
        client has not answered; else the call (arguments, in progress, completed or failed)."""
        response_id = run.response["id"]
        tool = ga.mcp_tools(self._config.session).get(call.server_label)
        approval = ga.approval_for(self._conversation.items, call.server_label, call.name)
        run.open_part = None
        if tool is not None and ga.needs_approval(tool, call.name) and approval is None:
            request: dict[str, Any] = {
                "id": new_id("mcpr"),
                "type": "mcp_approval_request",
                "server_label": call.server_label,
                "name": call.name,
                "arguments": call.arguments,
            }
            yield from self._open_item(run, request, response_id, output_index)
            run.open_item = None
            yield from self._close_item(run, request, output_index)
            return
        if approval is False:
            return  # refused: the model goes on without the tool
        item: dict[str, Any] = {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": "",
            "approval_request_id": None,
            "output": None,
            "error": None,
        }
        yield from self._open_item(run, item, response_id, output_index)
        ids = {"response_id": response_id, "item_id": item["id"], "output_index": output_index}
        for start in range(0, len(call.arguments), 12):
            delta = call.arguments[start : start + 12]
            item["arguments"] += delta
            yield {"type": "response.mcp_call_arguments.delta", **ids, "delta": delta}
        yield {"type": "response.mcp_call_arguments.done", **ids, "arguments": call.arguments}
        yield {"type": "response.mcp_call.in_progress", "output_index": output_index, "item_id": item["id"]}
        failed = tool is None or call.error is not None
        if failed:
            message = call.error or f"MCP server '{call.server_label}' is not configured in this session."
            item["error"] = {"type": "mcp_tool_execution_error", "message": message}
        else:
            item["output"] = call.output
        outcome = "failed" if failed else "completed"
        yield {"type": f"response.mcp_call.{outcome}", "output_index": output_index, "item_id": item["id"]}
        run.open_item = None
        yield from self._close_item(run, item, output_index)

    def _stream_function_call(
        self, run: _Run, output_index: int, call: FunctionCall
    ) -> Iterator[dict[str, Any]]:
        response_id = run.response["id"]
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call.call_id or new_id("call")[:21],
            "arguments": "",
        }
        run.open_part = None
        yield from self._open_item(run, item, response_id, output_index)
        ids = {"response_id": response_id, "item_id": item["id"], "output_index": output_index}
        arguments = call.arguments
        for start in range(0, len(arguments), 12):
            delta = arguments[start : start + 12]
            item["arguments"] += delta
            yield {
                "type": "response.function_call_arguments.delta",
                **ids,
                "call_id": item["call_id"],
                "delta": delta,
                "obfuscation": obfuscation(delta),
            }
        yield {
            "type": "response.function_call_arguments.done",
            **ids,
            "call_id": item["call_id"],
            "name": call.name,
            "arguments": arguments,
        }
        item["status"] = "completed"
        run.open_item = None
        yield from self._close_item(run, item, output_index)

    # -- response.done ---------------------------------------------------------------------------------------

    def _response_done(self, run: _Run, status: str, details: dict[str, Any] | None) -> dict[str, Any]:
        response = run.response
        response["status"] = status
        response["status_details"] = details
        response["usage"] = (
            dict(run.plan.usage) if run.plan is not None and run.plan.usage is not None else self._usage(run)
        )
        run.done = True
        return {"type": "response.done", "response": copy.deepcopy(response)}

    def _usage(self, run: _Run) -> dict[str, Any]:
        instructions = str(self._config.session.get("instructions", ""))
        text_in = len(instructions) // 4
        audio_in = 0
        for item in self._conversation.items:
            for part in item.get("content", []) or []:
                text_in += len(str(part.get("text") or part.get("transcript") or "")) // 4
            stored = self._conversation.item_audio.get(item["id"])
            if stored is not None and item.get("role") == "user":
                audio_in += math.ceil(stored[1].duration_ms(len(stored[0])) / 100)
        text_out = 0
        for item in run.response["output"]:
            for part in item.get("content", []) or []:
                text_out += math.ceil(len(str(part.get("text") or part.get("transcript") or "")) / 4)
            text_out += math.ceil(len(str(item.get("arguments", ""))) / 4)
        audio_out = math.ceil(run.audio_ms / 50) if run.audio_ms else 0
        cached = (text_in // 64) * 64
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }
