"""Function tools for a Realtime client: run a Python function for each
``response.function_call_arguments.done``, send its result as the ``function_call_output`` item and
ask for the follow-up ``response.create``. Optional sugar over the reference's raw calls::

    def check_order(order_id: str) -> dict[str, str]:
        return {"order_id": order_id, "status": "shipped"}

    OpenAI.run_tools(client, {"check_order": check_order})

A function may be sync or async and returns anything JSON-serialisable (a string goes as is). A bad
call (unknown name, arguments that are not a JSON object, a function that raises) answers the model
with ``{"error": "..."}`` and logs why: the model can say sorry, and the call goes on.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..eventtarget import Event
from .events import RealtimeAPIEvents

__all__ = ["ToolRunner", "run_tools"]

log = logging.getLogger("voxline.openai.tools")


class _Client(Protocol):
    def add_event_listener(self, event: RealtimeAPIEvents, callback: Callable[[Event], Any]) -> None: ...
    def remove_event_listener(self, event: RealtimeAPIEvents, callback: Any = None) -> None: ...
    def conversation_item_create(self, parameters: Mapping[str, Any]) -> None: ...
    def response_create(self, parameters: Mapping[str, Any] | None = None) -> None: ...


class ToolRunner:
    """What :func:`run_tools` returns: ``calls`` (every ``(name, arguments, output)`` so far) and
    ``stop()`` to unregister."""

    def __init__(self, client: _Client, functions: Mapping[str, Callable[..., Any]], respond: bool) -> None:
        for name, function in functions.items():
            if not callable(function):
                raise TypeError(f"tool {name!r} must be a function, not {type(function).__name__}")
        self._client = client
        self._functions = dict(functions)
        self._respond = respond
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        client.add_event_listener(RealtimeAPIEvents.ResponseFunctionCallArgumentsDone, self._on_done)

    def stop(self) -> None:
        self._client.remove_event_listener(RealtimeAPIEvents.ResponseFunctionCallArgumentsDone, self._on_done)

    async def _on_done(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        name, call_id = data.get("name"), data.get("call_id")
        if not isinstance(call_id, str):
            log.warning("function call without a call_id ignored: %r", data)
            return
        arguments: dict[str, Any] = {}
        function = self._functions.get(name) if isinstance(name, str) else None
        if function is None:
            output = self._error(f"unknown function {name!r}")
        else:
            try:
                parsed = json.loads(data.get("arguments") or "{}")
                if not isinstance(parsed, dict):
                    raise ValueError("the arguments are not a JSON object")
                arguments = parsed
            except ValueError as exc:
                output = self._error(f"bad arguments for {name}: {exc}")
            else:
                output = await self._run(str(name), function, arguments)
        self.calls.append((str(name), arguments, output))
        self._client.conversation_item_create(
            {"item": {"type": "function_call_output", "call_id": call_id, "output": output}}
        )
        if self._respond:
            self._client.response_create({})

    async def _run(self, name: str, function: Callable[..., Any], arguments: dict[str, Any]) -> str:
        try:
            result = function(**arguments)
            if inspect.isawaitable(result):
                result = await result
            return result if isinstance(result, str) else json.dumps(result)
        except Exception as exc:  # the model hears the failure; the call goes on
            log.exception("tool %s raised", name)
            return self._error(f"{name} failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _error(message: str) -> str:
        log.warning("tool call answered with an error: %s", message)
        return json.dumps({"error": message})


def run_tools(
    client: _Client, functions: Mapping[str, Callable[..., Any]], *, respond: bool = True
) -> ToolRunner:
    """Answer the model's function calls on ``client`` with ``functions`` (by tool name);
    ``respond=False`` sends the outputs without the follow-up ``response.create``."""
    return ToolRunner(client, functions, respond)
