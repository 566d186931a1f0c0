"""Parameter types of the three factories, and how loose input becomes them.

Factories take a parameters object, keyword arguments, or a plain dict with either the Python
names or the reference's camelCase keys (a porting aid). Bad input raises an error naming the
parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .chat_context import DEFAULT_CONTEXT_BUDGET_CHARS
from .events import RealtimeAPIClientType
from .session_carry import ReconnectPolicy, check_max_session_duration

DEFAULT_BASE_URL = "https://api.openai.com/"
DEFAULT_REALTIME_MODEL = "gpt-realtime"
DEFAULT_SUMMARY_MODEL = "gpt-4o"
DEFAULT_SUMMARY_PROMPT = (
    "You are maintaining a running summary of an ongoing conversation. Below is: 1. The previous summary "
    "2. The messages between user and assistant you need to summarize Provide a summary to reflect the "
    "information. ### Instructions: - Preserve important existing context from the previous summary - "
    "Integrate new key information, decisions, and developments - Remove outdated or redundant details - "
    "Avoid repeating unchanged information - Keep the summary concise and context-efficient - Maintain a "
    "neutral and factual tone"
)


@dataclass(slots=True)
class ClientParameters:
    """What every client takes: the key, the base URL, statistics, tracing, privacy."""

    api_key: str = ""
    base_url: str = DEFAULT_BASE_URL
    statistics: bool = False
    trace: bool = False
    privacy: bool = False

    def __repr__(self) -> str:
        # Secrets never appear in reprs (DESIGN §4).
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fields.append(f"{f.name}={'***' if f.name == 'api_key' and value else value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"


@dataclass(slots=True, repr=False)
class RealtimeAPIClientParameters(ClientParameters):
    model: str = DEFAULT_REALTIME_MODEL
    type: RealtimeAPIClientType = RealtimeAPIClientType.REALTIME
    on_web_socket_close: Callable[[dict[str, Any]], Any] | None = None
    # voxline's own: truncate the assistant item to what the caller heard when its audio is cleared.
    auto_truncate: bool = True
    # voxline's own: emit Events.ModelSilent when the server sends nothing this long (seconds) while
    # the caller's audio goes to it; None turns it off.
    server_silence_timeout_s: float | None = 30.0
    # voxline's own: attach to an OpenAI SIP (or WebRTC) call's sideband (``?call_id=`` instead of
    # ``?model=``; the model is the one the call was accepted with). See voxline.openai.calls.
    call_id: str | None = None
    # voxline's own (docs/long-calls.md): recycle the session between turns once it is this old
    # (None: never; the runtime sets RUNTIME_MAX_SESSION_DURATION_S when the scenario does not).
    max_session_duration_s: float | None = None
    # voxline's own: reconnect after an unexpected close (a ReconnectPolicy, its fields as a dict,
    # True for the defaults; None: report the close, as the reference does).
    reconnect: ReconnectPolicy | Mapping[str, Any] | bool | None = None
    # voxline's own: the carried conversation beyond which the oldest turns are summarised.
    carry_over_budget_chars: int = DEFAULT_CONTEXT_BUDGET_CHARS
    # voxline's own: the Chat Completions model that writes that summary (None: no request; the
    # oldest turns are kept as abridged lines).
    summary_model: str | None = DEFAULT_SUMMARY_MODEL


@dataclass(slots=True, repr=False)
class ChatCompletionsAPIClientParameters(ClientParameters):
    store_context: bool = False
    project: str | None = None
    summary_model: str = DEFAULT_SUMMARY_MODEL
    summary_prompt: str = DEFAULT_SUMMARY_PROMPT


@dataclass(slots=True, repr=False)
class ResponsesAPIClientParameters(ClientParameters):
    store_context: bool = False
    project: str | None = None


P = TypeVar("P", bound=ClientParameters)

_CAMEL = {
    "apiKey": "api_key",
    "baseUrl": "base_url",
    "onWebSocketClose": "on_web_socket_close",
    "storeContext": "store_context",
    "summaryModel": "summary_model",
    "summaryPrompt": "summary_prompt",
    "autoTruncate": "auto_truncate",
    "callId": "call_id",
}


def build_parameters(cls: type[P], parameters: Any, kwargs: Mapping[str, Any]) -> P:
    """Merge a parameters object or dict with keyword arguments, then check every field."""
    values: dict[str, Any] = {}
    if parameters is None:
        pass
    elif isinstance(parameters, cls):
        values = {f.name: getattr(parameters, f.name) for f in dataclasses.fields(parameters)}
    elif isinstance(parameters, Mapping):
        values = dict(parameters)
    else:
        raise TypeError(f"parameters must be a {cls.__name__} or a dict, not {type(parameters).__name__}")
    values.update(kwargs)
    known = {f.name for f in dataclasses.fields(cls)}
    normalized: dict[str, Any] = {}
    for key, value in values.items():
        name = _CAMEL.get(key, key)
        if name not in known:
            raise TypeError(f"unknown parameter {key!r} for {cls.__name__}")
        normalized[name] = value
    if "api_key" not in normalized:
        raise TypeError("missing required parameter 'api_key'")
    result = cls(**normalized)
    _check(result)
    return result


def _check(p: ClientParameters) -> None:
    if not isinstance(p.api_key, str) or not p.api_key:
        raise TypeError("parameter 'api_key' must be a non-empty string")
    if not isinstance(p.base_url, str) or not p.base_url.startswith(
        ("http://", "https://", "ws://", "wss://")
    ):
        raise ValueError(f"parameter 'base_url' must be an http(s) or ws(s) URL, not {p.base_url!r}")
    for name in ("statistics", "trace", "privacy", "store_context", "auto_truncate"):
        if hasattr(p, name) and not isinstance(getattr(p, name), bool):
            raise TypeError(f"parameter {name!r} must be a bool, not {type(getattr(p, name)).__name__}")
    if isinstance(p, RealtimeAPIClientParameters):
        if not isinstance(p.model, str) or not p.model:
            raise TypeError("parameter 'model' must be a non-empty string")
        try:
            p.type = RealtimeAPIClientType(p.type)
        except ValueError:
            allowed = ", ".join(repr(t.value) for t in RealtimeAPIClientType)
            raise ValueError(f"parameter 'type' must be one of {allowed}, not {p.type!r}") from None
        if p.call_id is not None and (not isinstance(p.call_id, str) or not p.call_id):
            raise TypeError("parameter 'call_id' must be a non-empty string or None")
        if p.on_web_socket_close is not None and not callable(p.on_web_socket_close):
            raise TypeError("parameter 'on_web_socket_close' must be callable")
        timeout = p.server_silence_timeout_s
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValueError(f"parameter 'server_silence_timeout_s' must be > 0 or None, not {timeout!r}")
        p.max_session_duration_s = check_max_session_duration(p.max_session_duration_s)
        p.reconnect = ReconnectPolicy.coerce(p.reconnect)
        budget = p.carry_over_budget_chars
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"parameter 'carry_over_budget_chars' must be a positive int, not {budget!r}")
        if p.summary_model is not None and (not isinstance(p.summary_model, str) or not p.summary_model):
            raise TypeError("parameter 'summary_model' must be a non-empty string or None")
    if (
        isinstance(p, ChatCompletionsAPIClientParameters | ResponsesAPIClientParameters)
        and p.project is not None
        and not isinstance(p.project, str)
    ):
        raise TypeError("parameter 'project' must be a string")
    if isinstance(p, ChatCompletionsAPIClientParameters):
        for name in ("summary_model", "summary_prompt"):
            if not isinstance(getattr(p, name), str) or not getattr(p, name):
                raise TypeError(f"parameter {name!r} must be a non-empty string")
