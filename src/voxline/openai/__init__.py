"""The ``OpenAI`` namespace of the reference: ``from voxline import OpenAI``."""

from ._http import RequestHandle
from .chat import ChatCompletionsAPIClient, create_chat_completions_api_client
from .events import (
    ChatCompletionsAPIEvents,
    Events,
    RealtimeAPIClientType,
    RealtimeAPIEvents,
    ResponsesAPIEvents,
)
from .params import (
    ChatCompletionsAPIClientParameters,
    RealtimeAPIClientParameters,
    ResponsesAPIClientParameters,
)
from .realtime import ClientClosedError, RealtimeAPIClient, RealtimeAPIError, create_realtime_api_client
from .responses import ResponsesAPIClient, create_responses_api_client

__all__ = [
    "ChatCompletionsAPIClient",
    "ChatCompletionsAPIClientParameters",
    "ChatCompletionsAPIEvents",
    "ClientClosedError",
    "Events",
    "RealtimeAPIClient",
    "RealtimeAPIClientParameters",
    "RealtimeAPIClientType",
    "RealtimeAPIError",
    "RealtimeAPIEvents",
    "RequestHandle",
    "ResponsesAPIClient",
    "ResponsesAPIClientParameters",
    "ResponsesAPIEvents",
    "create_chat_completions_api_client",
    "create_realtime_api_client",
    "create_responses_api_client",
]
