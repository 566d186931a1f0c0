"""A responder whose replies come from a Chat Completions model (OpenAI or any compatible endpoint).

The offline backend's speech parts stay local (VAD, recognition, synthesis); only the decision of
what to say goes to a language model. Each turn sends the whole conversation, converted from
Realtime items to chat messages (:func:`items_to_messages`), with the agent's instructions and
tools; the first choice's text and tool calls become the :class:`~voxline.local.responder.ReplySpec`.

.. code-block:: python

    client = await create_chat_completions_api_client(api_key=key, base_url=url, store_context=False)
    brain = ChatCompletionsResponder(client, model="gpt-4o-mini", instructions="You are Voxy...",
                                     tools=[check_order_tool], vocabulary=None)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from voxline.openai.chat import ChatCompletionsAPIClient

from .replies import FunctionCallSpec, ReplySpec, Vocabulary, item_type, message_text

__all__ = ["ChatCompletionsResponder", "chat_tools", "items_to_messages"]

log = logging.getLogger("voxline.local.chat_responder")


def items_to_messages(
    conversation: Sequence[Mapping[str, Any]], instructions: str | None = None
) -> list[dict[str, Any]]:
    """Realtime conversation items -> Chat Completions messages.

    ``message`` items keep their role and text (audio parts by their transcript; user messages with
    no text are left out: nothing was understood); ``function_call`` items become ``tool_calls`` of
    the assistant message they followed (or of a new one); ``function_call_output`` items become
    ``tool`` messages.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in conversation:
        kind = item_type(item)
        if kind == "message":
            role = item.get("role")
            text = message_text(item)
            if role not in ("user", "assistant", "system", "developer"):
                continue
            if role == "user" and not text:
                continue
            messages.append({"role": role, "content": text})
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id", "")),
                "type": "function",
                "function": {
                    "name": str(item.get("name", "")),
                    "arguments": str(item.get("arguments") or "{}"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id", "")),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
    for message in messages:  # an assistant message that only carries tool calls has no text
        if message["role"] == "assistant" and message.get("tool_calls") and not message["content"]:
            message["content"] = None
    return messages


def chat_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the Chat Completions shape; Realtime-shaped ones (``{"type": "function", "name": ...}``)
    are converted, Chat-shaped ones (``{"type": "function", "function": {...}}``) kept."""
    converted: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise ValueError(f"tools[{i}]: only function tools are supported, got type {tool.get('type')!r}")
        if isinstance(tool.get("function"), Mapping):
            converted.append(dict(tool))
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tools[{i}]: a function tool needs a 'name'")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        converted.append({"type": "function", "function": function})
    return converted


class ChatCompletionsResponder:
    """Replies from a Chat Completions model (see the module doc).

    ``client`` must not store context (the whole conversation is sent each turn). ``greeting``, when
    given, is said before the caller has spoken without asking the model. ``fallback`` is said when
    the request fails (the error is logged). ``request`` adds body fields (``temperature``...).
    ``vocabulary``: a phrase list for the recogniser; ``None`` means free-form recognition.
    """

    def __init__(
        self,
        client: ChatCompletionsAPIClient,
        *,
        model: str,
        instructions: str | None = None,
        tools: Sequence[Mapping[str, Any]] = (),
        greeting: str | None = None,
        fallback: str = "Sorry, I cannot answer that right now.",
        vocabulary: Vocabulary | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        if client.store_context:
            raise ValueError(
                "client: the responder sends the whole conversation each turn; "
                "create the client with store_context=False"
            )
        if not model:
            raise ValueError("model must be a model name")
        self.client = client
        self.model = model
        self.instructions = instructions
        self.tools = chat_tools(tools)
        self.greeting = greeting
        self.fallback = fallback
        self.request = dict(request or {})
        self._vocabulary = vocabulary

    @property
    def vocabulary(self) -> Vocabulary | None:
        return self._vocabulary

    async def respond(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec:
        has_user_input = any(
            item_type(item) == "message" and item.get("role") == "user" for item in conversation
        )
        if self.greeting is not None and not has_user_input:
            return ReplySpec(self.greeting, kind="greeting")
        body: dict[str, Any] = {
            **self.request,
            "model": self.model,
            "messages": items_to_messages(conversation, self.instructions),
        }
        if self.tools:
            body["tools"] = self.tools
        # A newer turn cancels this request (the client's barge-in rule): its reply is not wanted.
        handle = self.client.create_chat_completions(body)
        completion = await handle
        if handle.status == "cancelled":
            return ReplySpec("", kind="custom")
        if not isinstance(completion, Mapping):
            log.warning("chat completion failed (%s): %s", handle.status, handle.error)
            return ReplySpec(self.fallback, kind="fallback")
        choices = completion.get("choices") or []
        message = choices[0].get("message", {}) if choices and isinstance(choices[0], Mapping) else {}
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        calls: list[FunctionCallSpec] = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            name = function.get("name")
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = None
            if not isinstance(name, str) or not isinstance(arguments, Mapping):
                log.warning("ignoring a malformed tool call from the model: %r", call)
                continue
            calls.append(FunctionCallSpec(name, dict(arguments)))
        return ReplySpec(text or "", tuple(calls), kind="custom")
