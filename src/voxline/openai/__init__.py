"""The ``OpenAI`` namespace of the reference: ``from voxline import OpenAI``.

Names load on first use, so a sans-I/O part (``voxline.openai.formats``, ``.realtime_protocol``,
``.events``) imports without the network packages the clients are built on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxline._lazy import lazy_names

if TYPE_CHECKING:
    from ._http import RequestHandle
    from .calls import OpenAICall, RealtimeCallError, RealtimeCallsClient, create_realtime_calls_client
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
    from .tools import ToolRunner, run_tools
    from .typed import (
        ChatCompletionsAPIClientOptions,
        RealtimeAPIClientOptions,
        ResponsesAPIClientOptions,
    )

_LAZY: dict[str, str] = {
    "RequestHandle": "._http",
    "OpenAICall": ".calls",
    "RealtimeCallError": ".calls",
    "RealtimeCallsClient": ".calls",
    "create_realtime_calls_client": ".calls",
    "ChatCompletionsAPIClient": ".chat",
    "create_chat_completions_api_client": ".chat",
    "ChatCompletionsAPIEvents": ".events",
    "Events": ".events",
    "RealtimeAPIClientType": ".events",
    "RealtimeAPIEvents": ".events",
    "ResponsesAPIEvents": ".events",
    "ChatCompletionsAPIClientParameters": ".params",
    "RealtimeAPIClientParameters": ".params",
    "ResponsesAPIClientParameters": ".params",
    "ClientClosedError": ".realtime",
    "RealtimeAPIClient": ".realtime",
    "RealtimeAPIError": ".realtime",
    "create_realtime_api_client": ".realtime",
    "ResponsesAPIClient": ".responses",
    "create_responses_api_client": ".responses",
    "ToolRunner": ".tools",
    "run_tools": ".tools",
    "ChatCompletionsAPIClientOptions": ".typed",
    "RealtimeAPIClientOptions": ".typed",
    "ResponsesAPIClientOptions": ".typed",
}

__all__ = [
    "ChatCompletionsAPIClient",
    "ChatCompletionsAPIClientOptions",
    "ChatCompletionsAPIClientParameters",
    "ChatCompletionsAPIEvents",
    "ClientClosedError",
    "Events",
    "OpenAICall",
    "RealtimeAPIClient",
    "RealtimeAPIClientOptions",
    "RealtimeAPIClientParameters",
    "RealtimeAPIClientType",
    "RealtimeAPIError",
    "RealtimeAPIEvents",
    "RealtimeCallError",
    "RealtimeCallsClient",
    "RequestHandle",
    "ResponsesAPIClient",
    "ResponsesAPIClientOptions",
    "ResponsesAPIClientParameters",
    "ResponsesAPIEvents",
    "ToolRunner",
    "create_chat_completions_api_client",
    "create_realtime_api_client",
    "create_realtime_calls_client",
    "create_responses_api_client",
    "run_tools",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
