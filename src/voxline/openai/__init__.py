"""The ``OpenAI`` namespace of the reference: ``from voxline import OpenAI``."""

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

__all__ = [
    "ChatCompletionsAPIClientParameters",
    "ChatCompletionsAPIEvents",
    "ClientClosedError",
    "Events",
    "RealtimeAPIClient",
    "RealtimeAPIClientParameters",
    "RealtimeAPIClientType",
    "RealtimeAPIError",
    "RealtimeAPIEvents",
    "ResponsesAPIClientParameters",
    "ResponsesAPIEvents",
    "create_realtime_api_client",
]
