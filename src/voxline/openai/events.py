"""The 112 event constants of the reference, voxline's additions, and the provider event types.

Values are namespaced and unique (``"OpenAI.RealtimeAPI.ResponseDone"``); listeners may also be
registered by value string or by the provider's own type (``"response.done"``).
"""

from __future__ import annotations

from enum import StrEnum


class Events(StrEnum):
    """Media bridge events (shared by the three clients), and voxline's own (see ``ADDITIONS``)."""

    WebSocketMediaStarted = "OpenAI.Events.WebSocketMediaStarted"
    WebSocketMediaEnded = "OpenAI.Events.WebSocketMediaEnded"
    # voxline's: the Realtime server sent nothing for ``server_silence_timeout_s`` while the caller's
    # audio went to it (a server that answers pings but has stopped working).
    ModelSilent = "OpenAI.Events.ModelSilent"
    # voxline's (docs/long-calls.md): the client moved to a new Realtime session with the
    # conversation carried over (max_session_duration_s, session_expired, or a reconnect).
    SessionRecycled = "OpenAI.Events.SessionRecycled"
    # voxline's: reconnecting after an unexpected close (one per attempt), then success or giving up.
    Reconnecting = "OpenAI.Events.Reconnecting"
    Reconnected = "OpenAI.Events.Reconnected"
    ReconnectFailed = "OpenAI.Events.ReconnectFailed"


class RealtimeAPIClientType(StrEnum):
    """``type`` of a Realtime client: a conversation, or transcription only."""

    REALTIME = "realtime"
    TRANSCRIPTION = "transcription"


class RealtimeAPIEvents(StrEnum):
    """The Realtime client's events: one per server event type (``REALTIME_SERVER_TYPES``), and the
    connection's own (``HTTPResponse``, ``ConnectorInformation``, ``WebSocketError``, ``Unknown``)."""

    Unknown = "OpenAI.RealtimeAPI.Unknown"
    HTTPResponse = "OpenAI.RealtimeAPI.HTTPResponse"
    Error = "OpenAI.RealtimeAPI.Error"
    SessionCreated = "OpenAI.RealtimeAPI.SessionCreated"
    SessionUpdated = "OpenAI.RealtimeAPI.SessionUpdated"
    ConversationItemAdded = "OpenAI.RealtimeAPI.ConversationItemAdded"
    ConversationItemDone = "OpenAI.RealtimeAPI.ConversationItemDone"
    ConversationItemRetrieved = "OpenAI.RealtimeAPI.ConversationItemRetrieved"
    ConversationItemInputAudioTranscriptionCompleted = (
        "OpenAI.RealtimeAPI.ConversationItemInputAudioTranscriptionCompleted"
    )
    ConversationItemInputAudioTranscriptionDelta = (
        "OpenAI.RealtimeAPI.ConversationItemInputAudioTranscriptionDelta"
    )
    ConversationItemInputAudioTranscriptionSegment = (
        "OpenAI.RealtimeAPI.ConversationItemInputAudioTranscriptionSegment"
    )
    ConversationItemInputAudioTranscriptionFailed = (
        "OpenAI.RealtimeAPI.ConversationItemInputAudioTranscriptionFailed"
    )
    ConversationItemTruncated = "OpenAI.RealtimeAPI.ConversationItemTruncated"
    ConversationItemDeleted = "OpenAI.RealtimeAPI.ConversationItemDeleted"
    InputAudioBufferCommitted = "OpenAI.RealtimeAPI.InputAudioBufferCommitted"
    InputAudioBufferCleared = "OpenAI.RealtimeAPI.InputAudioBufferCleared"
    InputAudioBufferSpeechStarted = "OpenAI.RealtimeAPI.InputAudioBufferSpeechStarted"
    InputAudioBufferSpeechStopped = "OpenAI.RealtimeAPI.InputAudioBufferSpeechStopped"
    InputAudioBufferTimeoutTriggered = "OpenAI.RealtimeAPI.InputAudioBufferTimeoutTriggered"
    ResponseCreated = "OpenAI.RealtimeAPI.ResponseCreated"
    ResponseDone = "OpenAI.RealtimeAPI.ResponseDone"
    ResponseOutputItemAdded = "OpenAI.RealtimeAPI.ResponseOutputItemAdded"
    ResponseOutputItemDone = "OpenAI.RealtimeAPI.ResponseOutputItemDone"
    ResponseContentPartAdded = "OpenAI.RealtimeAPI.ResponseContentPartAdded"
    ResponseContentPartDone = "OpenAI.RealtimeAPI.ResponseContentPartDone"
    ResponseOutputTextDelta = "OpenAI.RealtimeAPI.ResponseOutputTextDelta"
    ResponseOutputTextDone = "OpenAI.RealtimeAPI.ResponseOutputTextDone"
    ResponseOutputAudioTranscriptDelta = "OpenAI.RealtimeAPI.ResponseOutputAudioTranscriptDelta"
    ResponseOutputAudioTranscriptDone = "OpenAI.RealtimeAPI.ResponseOutputAudioTranscriptDone"
    ResponseOutputAudioDone = "OpenAI.RealtimeAPI.ResponseOutputAudioDone"
    ResponseFunctionCallArgumentsDelta = "OpenAI.RealtimeAPI.ResponseFunctionCallArgumentsDelta"
    ResponseFunctionCallArgumentsDone = "OpenAI.RealtimeAPI.ResponseFunctionCallArgumentsDone"
    ResponseMCPCallArgumentsDelta = "OpenAI.RealtimeAPI.ResponseMCPCallArgumentsDelta"
    ResponseMCPCallArgumentsDone = "OpenAI.RealtimeAPI.ResponseMCPCallArgumentsDone"
    ResponseMCPCallInProgress = "OpenAI.RealtimeAPI.ResponseMCPCallInProgress"
    ResponseMCPCallCompleted = "OpenAI.RealtimeAPI.ResponseMCPCallCompleted"
    ResponseMCPCallFailed = "OpenAI.RealtimeAPI.ResponseMCPCallFailed"
    MCPListToolsInProgress = "OpenAI.RealtimeAPI.MCPListToolsInProgress"
    MCPListToolsCompleted = "OpenAI.RealtimeAPI.MCPListToolsCompleted"
    MCPListToolsFailed = "OpenAI.RealtimeAPI.MCPListToolsFailed"
    RateLimitsUpdated = "OpenAI.RealtimeAPI.RateLimitsUpdated"
    WebSocketError = "OpenAI.RealtimeAPI.WebSocketError"
    ConnectorInformation = "OpenAI.RealtimeAPI.ConnectorInformation"
    # voxline's: GA server events of the installed spec that the reference lacks (see ``ADDITIONS``).
    ConversationCreated = "OpenAI.RealtimeAPI.ConversationCreated"
    InputAudioBufferDTMFEventReceived = "OpenAI.RealtimeAPI.InputAudioBufferDTMFEventReceived"
    OutputAudioBufferStarted = "OpenAI.RealtimeAPI.OutputAudioBufferStarted"
    OutputAudioBufferStopped = "OpenAI.RealtimeAPI.OutputAudioBufferStopped"
    OutputAudioBufferCleared = "OpenAI.RealtimeAPI.OutputAudioBufferCleared"


class ChatCompletionsAPIEvents(StrEnum):
    """The Chat Completions client's events: the stream helper's events of the official SDKs."""

    Unknown = "OpenAI.ChatCompletionsAPI.Unknown"
    Chunk = "OpenAI.ChatCompletionsAPI.Chunk"
    Content = "OpenAI.ChatCompletionsAPI.Content"
    ContentDelta = "OpenAI.ChatCompletionsAPI.ContentDelta"
    ContentDone = "OpenAI.ChatCompletionsAPI.ContentDone"
    RefusalDelta = "OpenAI.ChatCompletionsAPI.RefusalDelta"
    RefusalDone = "OpenAI.ChatCompletionsAPI.RefusalDone"
    FunctionToolCallArgumentsDelta = "OpenAI.ChatCompletionsAPI.FunctionToolCallArgumentsDelta"
    FunctionToolCallArgumentsDone = "OpenAI.ChatCompletionsAPI.FunctionToolCallArgumentsDone"
    LogProbsContentDelta = "OpenAI.ChatCompletionsAPI.LogProbsContentDelta"
    LogProbsContentDone = "OpenAI.ChatCompletionsAPI.LogProbsContentDone"
    LogProbsRefusalDelta = "OpenAI.ChatCompletionsAPI.LogProbsRefusalDelta"
    LogProbsRefusalDone = "OpenAI.ChatCompletionsAPI.LogProbsRefusalDone"
    ChatCompletionsAPIError = "OpenAI.ChatCompletionsAPI.ChatCompletionsAPIError"
    ConnectorInformation = "OpenAI.ChatCompletionsAPI.ConnectorInformation"


class ResponsesAPIEvents(StrEnum):
    """The Responses client's events: one per streaming event type (``RESPONSES_SERVER_TYPES``)."""

    Unknown = "OpenAI.ResponsesAPI.Unknown"
    ResponseCodeInterpreterCallCodeDelta = "OpenAI.ResponsesAPI.ResponseCodeInterpreterCallCodeDelta"
    ResponseCodeInterpreterCallCodeDone = "OpenAI.ResponsesAPI.ResponseCodeInterpreterCallCodeDone"
    ResponseCodeInterpreterCallCompleted = "OpenAI.ResponsesAPI.ResponseCodeInterpreterCallCompleted"
    ResponseCodeInterpreterCallInProgress = "OpenAI.ResponsesAPI.ResponseCodeInterpreterCallInProgress"
    ResponseCodeInterpreterCallInterpreting = "OpenAI.ResponsesAPI.ResponseCodeInterpreterCallInterpreting"
    ResponseCompleted = "OpenAI.ResponsesAPI.ResponseCompleted"
    ResponseContentPartAdded = "OpenAI.ResponsesAPI.ResponseContentPartAdded"
    ResponseContentPartDone = "OpenAI.ResponsesAPI.ResponseContentPartDone"
    ResponseCreated = "OpenAI.ResponsesAPI.ResponseCreated"
    ResponseError = "OpenAI.ResponsesAPI.ResponseError"
    ResponseFileSearchCallCompleted = "OpenAI.ResponsesAPI.ResponseFileSearchCallCompleted"
    ResponseFileSearchCallInProgress = "OpenAI.ResponsesAPI.ResponseFileSearchCallInProgress"
    ResponseFileSearchCallSearching = "OpenAI.ResponsesAPI.ResponseFileSearchCallSearching"
    ResponseFunctionCallArgumentsDelta = "OpenAI.ResponsesAPI.ResponseFunctionCallArgumentsDelta"
    ResponseFunctionCallArgumentsDone = "OpenAI.ResponsesAPI.ResponseFunctionCallArgumentsDone"
    ResponseInProgress = "OpenAI.ResponsesAPI.ResponseInProgress"
    ResponseFailed = "OpenAI.ResponsesAPI.ResponseFailed"
    ResponseIncomplete = "OpenAI.ResponsesAPI.ResponseIncomplete"
    ResponseOutputItemAdded = "OpenAI.ResponsesAPI.ResponseOutputItemAdded"
    ResponseOutputItemDone = "OpenAI.ResponsesAPI.ResponseOutputItemDone"
    ResponseReasoningSummaryPartAdded = "OpenAI.ResponsesAPI.ResponseReasoningSummaryPartAdded"
    ResponseReasoningSummaryPartDone = "OpenAI.ResponsesAPI.ResponseReasoningSummaryPartDone"
    ResponseReasoningSummaryTextDelta = "OpenAI.ResponsesAPI.ResponseReasoningSummaryTextDelta"
    ResponseReasoningSummaryTextDone = "OpenAI.ResponsesAPI.ResponseReasoningSummaryTextDone"
    ResponseReasoningTextDelta = "OpenAI.ResponsesAPI.ResponseReasoningTextDelta"
    ResponseReasoningTextDone = "OpenAI.ResponsesAPI.ResponseReasoningTextDone"
    ResponseRefusalDelta = "OpenAI.ResponsesAPI.ResponseRefusalDelta"
    ResponseRefusalDone = "OpenAI.ResponsesAPI.ResponseRefusalDone"
    ResponseTextDelta = "OpenAI.ResponsesAPI.ResponseTextDelta"
    ResponseTextDone = "OpenAI.ResponsesAPI.ResponseTextDone"
    ResponseWebSearchCallCompleted = "OpenAI.ResponsesAPI.ResponseWebSearchCallCompleted"
    ResponseWebSearchCallInProgress = "OpenAI.ResponsesAPI.ResponseWebSearchCallInProgress"
    ResponseWebSearchCallSearching = "OpenAI.ResponsesAPI.ResponseWebSearchCallSearching"
    ResponseImageGenCallCompleted = "OpenAI.ResponsesAPI.ResponseImageGenCallCompleted"
    ResponseImageGenCallGenerating = "OpenAI.ResponsesAPI.ResponseImageGenCallGenerating"
    ResponseImageGenCallInProgress = "OpenAI.ResponsesAPI.ResponseImageGenCallInProgress"
    ResponseImageGenCallPartialImage = "OpenAI.ResponsesAPI.ResponseImageGenCallPartialImage"
    ResponseMCPCallArgumentsDelta = "OpenAI.ResponsesAPI.ResponseMCPCallArgumentsDelta"
    ResponseMCPCallArgumentsDone = "OpenAI.ResponsesAPI.ResponseMCPCallArgumentsDone"
    ResponseMCPCallCompleted = "OpenAI.ResponsesAPI.ResponseMCPCallCompleted"
    ResponseMCPCallFailed = "OpenAI.ResponsesAPI.ResponseMCPCallFailed"
    ResponseMCPCallInProgress = "OpenAI.ResponsesAPI.ResponseMCPCallInProgress"
    ResponseMCPListToolsCompleted = "OpenAI.ResponsesAPI.ResponseMCPListToolsCompleted"
    ResponseMCPListToolsFailed = "OpenAI.ResponsesAPI.ResponseMCPListToolsFailed"
    ResponseMCPListToolsInProgress = "OpenAI.ResponsesAPI.ResponseMCPListToolsInProgress"
    ResponseOutputTextAnnotationAdded = "OpenAI.ResponsesAPI.ResponseOutputTextAnnotationAdded"
    ResponseQueued = "OpenAI.ResponsesAPI.ResponseQueued"
    ResponseCustomToolCallInputDelta = "OpenAI.ResponsesAPI.ResponseCustomToolCallInputDelta"
    ResponseCustomToolCallInputDone = "OpenAI.ResponsesAPI.ResponseCustomToolCallInputDone"
    ResponsesAPIError = "OpenAI.ResponsesAPI.ResponsesAPIError"
    ConnectorInformation = "OpenAI.ResponsesAPI.ConnectorInformation"


# Realtime server event type -> constant. Beta names (retired wire shape) map to their GA constants.
REALTIME_SERVER_TYPES: dict[str, RealtimeAPIEvents] = {
    "error": RealtimeAPIEvents.Error,
    "session.created": RealtimeAPIEvents.SessionCreated,
    "session.updated": RealtimeAPIEvents.SessionUpdated,
    "conversation.item.added": RealtimeAPIEvents.ConversationItemAdded,
    "conversation.item.done": RealtimeAPIEvents.ConversationItemDone,
    "conversation.item.retrieved": RealtimeAPIEvents.ConversationItemRetrieved,
    "conversation.item.input_audio_transcription.completed": (
        RealtimeAPIEvents.ConversationItemInputAudioTranscriptionCompleted
    ),
    "conversation.item.input_audio_transcription.delta": (
        RealtimeAPIEvents.ConversationItemInputAudioTranscriptionDelta
    ),
    "conversation.item.input_audio_transcription.segment": (
        RealtimeAPIEvents.ConversationItemInputAudioTranscriptionSegment
    ),
    "conversation.item.input_audio_transcription.failed": (
        RealtimeAPIEvents.ConversationItemInputAudioTranscriptionFailed
    ),
    "conversation.item.truncated": RealtimeAPIEvents.ConversationItemTruncated,
    "conversation.item.deleted": RealtimeAPIEvents.ConversationItemDeleted,
    "input_audio_buffer.committed": RealtimeAPIEvents.InputAudioBufferCommitted,
    "input_audio_buffer.cleared": RealtimeAPIEvents.InputAudioBufferCleared,
    "input_audio_buffer.speech_started": RealtimeAPIEvents.InputAudioBufferSpeechStarted,
    "input_audio_buffer.speech_stopped": RealtimeAPIEvents.InputAudioBufferSpeechStopped,
    "input_audio_buffer.timeout_triggered": RealtimeAPIEvents.InputAudioBufferTimeoutTriggered,
    "response.created": RealtimeAPIEvents.ResponseCreated,
    "response.done": RealtimeAPIEvents.ResponseDone,
    "response.output_item.added": RealtimeAPIEvents.ResponseOutputItemAdded,
    "response.output_item.done": RealtimeAPIEvents.ResponseOutputItemDone,
    "response.content_part.added": RealtimeAPIEvents.ResponseContentPartAdded,
    "response.content_part.done": RealtimeAPIEvents.ResponseContentPartDone,
    "response.output_text.delta": RealtimeAPIEvents.ResponseOutputTextDelta,
    "response.output_text.done": RealtimeAPIEvents.ResponseOutputTextDone,
    "response.output_audio_transcript.delta": RealtimeAPIEvents.ResponseOutputAudioTranscriptDelta,
    "response.output_audio_transcript.done": RealtimeAPIEvents.ResponseOutputAudioTranscriptDone,
    "response.output_audio.done": RealtimeAPIEvents.ResponseOutputAudioDone,
    "response.function_call_arguments.delta": RealtimeAPIEvents.ResponseFunctionCallArgumentsDelta,
    "response.function_call_arguments.done": RealtimeAPIEvents.ResponseFunctionCallArgumentsDone,
    "response.mcp_call_arguments.delta": RealtimeAPIEvents.ResponseMCPCallArgumentsDelta,
    "response.mcp_call_arguments.done": RealtimeAPIEvents.ResponseMCPCallArgumentsDone,
    "response.mcp_call.in_progress": RealtimeAPIEvents.ResponseMCPCallInProgress,
    "response.mcp_call.completed": RealtimeAPIEvents.ResponseMCPCallCompleted,
    "response.mcp_call.failed": RealtimeAPIEvents.ResponseMCPCallFailed,
    "mcp_list_tools.in_progress": RealtimeAPIEvents.MCPListToolsInProgress,
    "mcp_list_tools.completed": RealtimeAPIEvents.MCPListToolsCompleted,
    "mcp_list_tools.failed": RealtimeAPIEvents.MCPListToolsFailed,
    "rate_limits.updated": RealtimeAPIEvents.RateLimitsUpdated,
    # GA events beyond the reference (voxline's additions). The output_audio_buffer.* and DTMF events
    # come only on WebRTC and SIP calls (OpenAI plays the audio), e.g. a sideband client's.
    "conversation.created": RealtimeAPIEvents.ConversationCreated,
    "input_audio_buffer.dtmf_event_received": RealtimeAPIEvents.InputAudioBufferDTMFEventReceived,
    "output_audio_buffer.started": RealtimeAPIEvents.OutputAudioBufferStarted,
    "output_audio_buffer.stopped": RealtimeAPIEvents.OutputAudioBufferStopped,
    "output_audio_buffer.cleared": RealtimeAPIEvents.OutputAudioBufferCleared,
    # Retired beta names (conversation.item.created is still in the GA union, unused live).
    "conversation.item.created": RealtimeAPIEvents.ConversationItemAdded,
    "response.text.delta": RealtimeAPIEvents.ResponseOutputTextDelta,
    "response.text.done": RealtimeAPIEvents.ResponseOutputTextDone,
    "response.audio_transcript.delta": RealtimeAPIEvents.ResponseOutputAudioTranscriptDelta,
    "response.audio_transcript.done": RealtimeAPIEvents.ResponseOutputAudioTranscriptDone,
    "response.audio.done": RealtimeAPIEvents.ResponseOutputAudioDone,
    "transcription_session.created": RealtimeAPIEvents.SessionCreated,
    "transcription_session.updated": RealtimeAPIEvents.SessionUpdated,
}

# Model audio never reaches listeners: it becomes media (DESIGN §3).
REALTIME_AUDIO_DELTA_TYPES = frozenset({"response.output_audio.delta", "response.audio.delta"})

RESPONSES_SERVER_TYPES: dict[str, ResponsesAPIEvents] = {
    "response.code_interpreter_call_code.delta": ResponsesAPIEvents.ResponseCodeInterpreterCallCodeDelta,
    "response.code_interpreter_call_code.done": ResponsesAPIEvents.ResponseCodeInterpreterCallCodeDone,
    "response.code_interpreter_call.completed": ResponsesAPIEvents.ResponseCodeInterpreterCallCompleted,
    "response.code_interpreter_call.in_progress": ResponsesAPIEvents.ResponseCodeInterpreterCallInProgress,
    "response.code_interpreter_call.interpreting": ResponsesAPIEvents.ResponseCodeInterpreterCallInterpreting,
    "response.completed": ResponsesAPIEvents.ResponseCompleted,
    "response.content_part.added": ResponsesAPIEvents.ResponseContentPartAdded,
    "response.content_part.done": ResponsesAPIEvents.ResponseContentPartDone,
    "response.created": ResponsesAPIEvents.ResponseCreated,
    "error": ResponsesAPIEvents.ResponseError,
    "response.file_search_call.completed": ResponsesAPIEvents.ResponseFileSearchCallCompleted,
    "response.file_search_call.in_progress": ResponsesAPIEvents.ResponseFileSearchCallInProgress,
    "response.file_search_call.searching": ResponsesAPIEvents.ResponseFileSearchCallSearching,
    "response.function_call_arguments.delta": ResponsesAPIEvents.ResponseFunctionCallArgumentsDelta,
    "response.function_call_arguments.done": ResponsesAPIEvents.ResponseFunctionCallArgumentsDone,
    "response.in_progress": ResponsesAPIEvents.ResponseInProgress,
    "response.failed": ResponsesAPIEvents.ResponseFailed,
    "response.incomplete": ResponsesAPIEvents.ResponseIncomplete,
    "response.output_item.added": ResponsesAPIEvents.ResponseOutputItemAdded,
    "response.output_item.done": ResponsesAPIEvents.ResponseOutputItemDone,
    "response.reasoning_summary_part.added": ResponsesAPIEvents.ResponseReasoningSummaryPartAdded,
    "response.reasoning_summary_part.done": ResponsesAPIEvents.ResponseReasoningSummaryPartDone,
    "response.reasoning_summary_text.delta": ResponsesAPIEvents.ResponseReasoningSummaryTextDelta,
    "response.reasoning_summary_text.done": ResponsesAPIEvents.ResponseReasoningSummaryTextDone,
    "response.reasoning_text.delta": ResponsesAPIEvents.ResponseReasoningTextDelta,
    "response.reasoning_text.done": ResponsesAPIEvents.ResponseReasoningTextDone,
    "response.refusal.delta": ResponsesAPIEvents.ResponseRefusalDelta,
    "response.refusal.done": ResponsesAPIEvents.ResponseRefusalDone,
    "response.output_text.delta": ResponsesAPIEvents.ResponseTextDelta,
    "response.output_text.done": ResponsesAPIEvents.ResponseTextDone,
    "response.web_search_call.completed": ResponsesAPIEvents.ResponseWebSearchCallCompleted,
    "response.web_search_call.in_progress": ResponsesAPIEvents.ResponseWebSearchCallInProgress,
    "response.web_search_call.searching": ResponsesAPIEvents.ResponseWebSearchCallSearching,
    "response.image_generation_call.completed": ResponsesAPIEvents.ResponseImageGenCallCompleted,
    "response.image_generation_call.generating": ResponsesAPIEvents.ResponseImageGenCallGenerating,
    "response.image_generation_call.in_progress": ResponsesAPIEvents.ResponseImageGenCallInProgress,
    "response.image_generation_call.partial_image": ResponsesAPIEvents.ResponseImageGenCallPartialImage,
    "response.mcp_call_arguments.delta": ResponsesAPIEvents.ResponseMCPCallArgumentsDelta,
    "response.mcp_call_arguments.done": ResponsesAPIEvents.ResponseMCPCallArgumentsDone,
    "response.mcp_call.completed": ResponsesAPIEvents.ResponseMCPCallCompleted,
    "response.mcp_call.failed": ResponsesAPIEvents.ResponseMCPCallFailed,
    "response.mcp_call.in_progress": ResponsesAPIEvents.ResponseMCPCallInProgress,
    "response.mcp_list_tools.completed": ResponsesAPIEvents.ResponseMCPListToolsCompleted,
    "response.mcp_list_tools.failed": ResponsesAPIEvents.ResponseMCPListToolsFailed,
    "response.mcp_list_tools.in_progress": ResponsesAPIEvents.ResponseMCPListToolsInProgress,
    "response.output_text.annotation.added": ResponsesAPIEvents.ResponseOutputTextAnnotationAdded,
    "response.queued": ResponsesAPIEvents.ResponseQueued,
    "response.custom_tool_call_input.delta": ResponsesAPIEvents.ResponseCustomToolCallInputDelta,
    "response.custom_tool_call_input.done": ResponsesAPIEvents.ResponseCustomToolCallInputDone,
}

# The event names of the official SDKs' chat stream helpers (openai-node ChatCompletionStream).
CHAT_COMPLETIONS_TYPES: dict[str, ChatCompletionsAPIEvents] = {
    "chunk": ChatCompletionsAPIEvents.Chunk,
    "content": ChatCompletionsAPIEvents.Content,
    "content.delta": ChatCompletionsAPIEvents.ContentDelta,
    "content.done": ChatCompletionsAPIEvents.ContentDone,
    "refusal.delta": ChatCompletionsAPIEvents.RefusalDelta,
    "refusal.done": ChatCompletionsAPIEvents.RefusalDone,
    "tool_calls.function.arguments.delta": ChatCompletionsAPIEvents.FunctionToolCallArgumentsDelta,
    "tool_calls.function.arguments.done": ChatCompletionsAPIEvents.FunctionToolCallArgumentsDone,
    "logprobs.content.delta": ChatCompletionsAPIEvents.LogProbsContentDelta,
    "logprobs.content.done": ChatCompletionsAPIEvents.LogProbsContentDone,
    "logprobs.refusal.delta": ChatCompletionsAPIEvents.LogProbsRefusalDelta,
    "logprobs.refusal.done": ChatCompletionsAPIEvents.LogProbsRefusalDone,
}

# Constants voxline adds beyond the reference's 112 (documented as additions).
GA_ADDITIONS: frozenset[RealtimeAPIEvents] = frozenset(
    {
        RealtimeAPIEvents.ConversationCreated,
        RealtimeAPIEvents.InputAudioBufferDTMFEventReceived,
        RealtimeAPIEvents.OutputAudioBufferStarted,
        RealtimeAPIEvents.OutputAudioBufferStopped,
        RealtimeAPIEvents.OutputAudioBufferCleared,
    }
)
ADDITIONS: frozenset[StrEnum] = frozenset(
    {
        Events.ModelSilent,
        Events.SessionRecycled,
        Events.Reconnecting,
        Events.Reconnected,
        Events.ReconnectFailed,
        *GA_ADDITIONS,
    }
)

ALL_EVENT_ENUMS: tuple[type[StrEnum], ...] = (
    Events,
    RealtimeAPIEvents,
    ChatCompletionsAPIEvents,
    ResponsesAPIEvents,
)
