"""What a responder reads and returns: the reply types, the interface, the conversation items.

A responder gets the conversation so far, as a list of items in the OpenAI Realtime item shape
(``{"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": ...}]}``,
``{"type": "function_call", ...}``, ``{"type": "function_call_output", "call_id", "output"}``) and
returns a :class:`ReplySpec`: the text to speak and the function calls to make. Anything with
``async respond(conversation) -> ReplySpec`` fits the :class:`Responder` protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .grammar import Slot, build_jsgf

__all__ = [
    "FunctionCallSpec",
    "ReplyKind",
    "ReplySpec",
    "Responder",
    "Vocabulary",
    "item_type",
    "last_user_text",
    "message_text",
]

ReplyKind = Literal["greeting", "reprompt", "intent", "fallback", "follow_up", "custom"]


@dataclass(frozen=True, slots=True)
class FunctionCallSpec:
    """A function call the agent makes: the server assigns the ``call_id``."""

    name: str
    arguments: Mapping[str, Any]

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """What the agent does next. ``text`` may be empty (say nothing, e.g. only call a function)."""

    text: str
    function_calls: tuple[FunctionCallSpec, ...] = ()
    kind: ReplyKind = "custom"
    intent: str | None = None

    @classmethod
    def coerce(cls, value: Any, source: str) -> ReplySpec:
        """A ReplySpec from a user function's result: a ReplySpec, a string, or a dict
        ``{"text": ..., "function_calls": [{"name": ..., "arguments": {...}}]}``."""
        if isinstance(value, ReplySpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            text = value.get("text", "")
            calls = value.get("function_calls", [])
            if not isinstance(text, str):
                raise TypeError(f"{source}: reply 'text' must be a string, got {type(text).__name__}")
            if not isinstance(calls, Sequence) or isinstance(calls, str):
                raise TypeError(f"{source}: reply 'function_calls' must be a list")
            specs: list[FunctionCallSpec] = []
            for call in calls:
                if isinstance(call, FunctionCallSpec):
                    specs.append(call)
                    continue
                if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                    raise TypeError(f"{source}: each function call needs a string 'name', got {call!r}")
                arguments = call.get("arguments", {})
                if isinstance(arguments, str):
                    arguments = json.loads(arguments)
                if not isinstance(arguments, Mapping):
                    raise TypeError(
                        f"{source}: function call 'arguments' must be an object, got {arguments!r}"
                    )
                specs.append(FunctionCallSpec(call["name"], dict(arguments)))
            intent = value.get("intent")
            return cls(text, tuple(specs), intent=intent if isinstance(intent, str) else None)
        raise TypeError(
            f"{source}: respond() must return a ReplySpec, a str or a dict, got {type(value).__name__}"
        )


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What callers are expected to say: the recogniser's phrase list (with slots)."""

    phrases: tuple[str, ...]
    slots: Mapping[str, Slot] = field(default_factory=dict)

    def jsgf(self, *, sequence: bool = False) -> str:
        return build_jsgf(self.phrases, self.slots, sequence=sequence)


@runtime_checkable
class Responder(Protocol):
    """The interface the offline backend drives."""

    @property
    def vocabulary(self) -> Vocabulary | None:
        """Phrases for the recogniser; ``None`` means free-form recognition."""
        ...

    async def respond(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec: ...


# -- conversation items -------------------------------------------------------------------------------
def message_text(item: Mapping[str, Any]) -> str:
    """A message item's words: the transcript or text of each content part, joined."""
    parts = item.get("content")
    texts: list[str] = []
    if isinstance(parts, Sequence) and not isinstance(parts, str):
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            for key in ("transcript", "text"):
                value = part.get(key)
                if isinstance(value, str) and value:
                    texts.append(value)
                    break
    return " ".join(texts)


def item_type(item: Mapping[str, Any]) -> str:
    """An item's ``type`` (``message`` when it has none)."""
    kind = item.get("type", "message")
    return kind if isinstance(kind, str) else ""


def last_user_text(conversation: Sequence[Mapping[str, Any]]) -> str | None:
    """The transcript/text of the last user message, or None if there is none."""
    for item in reversed(conversation):
        if item_type(item) == "message" and item.get("role") == "user":
            return message_text(item)
    return None
