"""The ``OpenAI`` namespace of the reference: ``from voxline import OpenAI``.

Names load on first use, so a sans-I/O part (``voxline.openai.formats``, ``.realtime_protocol``,
``.events``) imports without the network packages the clients are built on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "RequestHandle": "._http",
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
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
