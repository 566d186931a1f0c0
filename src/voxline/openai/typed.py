"""Static types for the scenario-facing API: the factories' keyword arguments, the event names a
client accepts, and the payloads of the media events.

Keyword arguments are ``TypedDict`` s used with ``Unpack``, so mypy and editors flag a misspelt
parameter (``modle=``) where the runtime would raise ``TypeError`` (the reference's camelCase spellings
are accepted too, as a porting aid). A string event name must be one of the ``Literal`` s below (the
provider's event type, or the constant's value); anything else is a type error, and raises
``ValueError`` naming the closest constant at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypedDict

from ..media.clock import MediaClock
from .events import Events, RealtimeAPIClientType
from .session_carry import ReconnectPolicy

__all__ = [
    "ChatCompletionsAPIClientOptions",
    "ChatCompletionsEventType",
    "ClientOptions",
    "MediaEndedEvent",
    "MediaStartedEvent",
    "RealtimeAPIClientOptions",
    "RealtimeEventType",
    "ResponsesAPIClientOptions",
    "ResponsesEventType",
]


class ClientOptions(TypedDict, total=False):
    """What every factory takes (``api_key`` is required, here or in the parameters object)."""

    api_key: str
    base_url: str
    statistics: bool
    trace: bool
    privacy: bool
    # The reference's spellings.
    apiKey: str
    baseUrl: str


class RealtimeAPIClientOptions(ClientOptions, total=False):
    """Keyword arguments of :func:`~voxline.openai.create_realtime_api_client`."""

    model: str
    type: RealtimeAPIClientType | Literal["realtime", "transcription"]
    on_web_socket_close: Callable[[dict[str, Any]], Any] | None
    auto_truncate: bool
    server_silence_timeout_s: float | None
    call_id: str | None
    max_session_duration_s: float | None
    reconnect: ReconnectPolicy | Mapping[str, Any] | bool | None
    carry_over_budget_chars: int
    summary_model: str | None
    media_clock: MediaClock | None
    onWebSocketClose: Callable[[dict[str, Any]], Any] | None
    autoTruncate: bool
    callId: str | None
    summaryModel: str | None


class ResponsesAPIClientOptions(ClientOptions, total=False):
    """Keyword arguments of :func:`~voxline.openai.create_responses_api_client`."""

    store_context: bool
    project: str | None
    storeContext: bool


class ChatCompletionsAPIClientOptions(ResponsesAPIClientOptions, total=False):
    """Keyword arguments of :func:`~voxline.openai.create_chat_completions_api_client`."""

    summary_model: str
    summary_prompt: str
    summaryModel: str
    summaryPrompt: str


# The Realtime server's event types a listener may be registered by (tests/openai/test_typed.py
# checks this list against REALTIME_SERVER_TYPES).
RealtimeEventType = Literal[
    "error",
    "session.created",
    "session.updated",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.segment",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.timeout_triggered",
    "response.created",
    "response.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.output_audio.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "mcp_list_tools.in_progress",
    "mcp_list_tools.completed",
    "mcp_list_tools.failed",
    "rate_limits.updated",
    "conversation.created",
    "input_audio_buffer.dtmf_event_received",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
    "conversation.item.created",
    "response.text.delta",
    "response.text.done",
    "response.audio_transcript.delta",
    "response.audio_transcript.done",
    "response.audio.done",
    "transcription_session.created",
    "transcription_session.updated",
]

# The Responses API's streaming event types (checked against RESPONSES_SERVER_TYPES).
ResponsesEventType = Literal[
    "response.code_interpreter_call_code.delta",
    "response.code_interpreter_call_code.done",
    "response.code_interpreter_call.completed",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting",
    "response.completed",
    "response.content_part.added",
    "response.content_part.done",
    "response.created",
    "error",
    "response.file_search_call.completed",
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.in_progress",
    "response.failed",
    "response.incomplete",
    "response.output_item.added",
    "response.output_item.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.refusal.delta",
    "response.refusal.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.web_search_call.completed",
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.image_generation_call.completed",
    "response.image_generation_call.generating",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.partial_image",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "response.mcp_call.in_progress",
    "response.mcp_list_tools.completed",
    "response.mcp_list_tools.failed",
    "response.mcp_list_tools.in_progress",
    "response.output_text.annotation.added",
    "response.queued",
    "response.custom_tool_call_input.delta",
    "response.custom_tool_call_input.done",
]

# The chat stream helper's event names (checked against CHAT_COMPLETIONS_TYPES).
ChatCompletionsEventType = Literal[
    "chunk",
    "content",
    "content.delta",
    "content.done",
    "refusal.delta",
    "refusal.done",
    "tool_calls.function.arguments.delta",
    "tool_calls.function.arguments.done",
    "logprobs.content.delta",
    "logprobs.content.done",
    "logprobs.refusal.delta",
    "logprobs.refusal.done",
]


class MediaStartedEvent(Protocol):
    """``Events.WebSocketMediaStarted``: the model's audio began to play to the media sinks."""

    @property
    def name(self) -> str: ...
    @property
    def client(self) -> Any: ...
    @property
    def tag(self) -> str | None: ...
    @property
    def encoding(self) -> str | None: ...
    @property
    def custom_parameters(self) -> dict[str, str] | None: ...


class MediaEndedEvent(Protocol):
    """``Events.WebSocketMediaEnded``: the played audio ran out; ``media_info["duration"]`` in s."""

    @property
    def name(self) -> str: ...
    @property
    def client(self) -> Any: ...
    @property
    def tag(self) -> str | None: ...
    @property
    def media_info(self) -> dict[str, Any] | None: ...


MEDIA_EVENTS = (Events.WebSocketMediaStarted, Events.WebSocketMediaEnded)
