"""What the session core asks of a client-event validator, and the shape of its answers.

The core calls ``validator.validate(event)`` on every decoded client event before acting on it; the
first :class:`SchemaProblem` of a non-empty answer becomes OpenAI's ``error`` event. The implementation
against OpenAI's official schemas is :class:`voxline.realtime_server.schema.ClientEventValidator` (it
needs ``jsonschema``); this module does not, so the core stays importable without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["EventValidator", "SchemaProblem", "format_param"]


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One reason a client event is invalid, as OpenAI's ``error`` object would state it."""

    code: str
    message: str
    param: str | None = None


@runtime_checkable
class EventValidator(Protocol):
    """Checks one decoded client event (any JSON value) before the session acts on it."""

    def validate(self, event: Any) -> Sequence[SchemaProblem]:
        """Every problem of ``event``; empty when OpenAI would accept it. The first one is the answer.

        An event that passes must be an object whose ``type`` is one the core handles (what
        :class:`~voxline.realtime_server.schema.ClientEventValidator` accepts).
        """
        ...


def format_param(path: Iterable[str | int]) -> str:
    """OpenAI's spelling of a location in an event: ``session.tools[2].meta``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
