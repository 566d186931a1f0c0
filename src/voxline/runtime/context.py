"""Which call session the running code belongs to.

A scenario file is executed once per call session with fresh globals; ``VoxEngine`` resolves to the
session through this context variable. Listeners run in the context they were registered in
(:mod:`voxline.eventtarget`), so the session follows the scenario's code into every callback.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .session import Session


class Closable(Protocol):
    def close(self) -> Any: ...


current_session: ContextVar[Session | None] = ContextVar("voxline_session", default=None)


def adopt(resource: Closable) -> None:
    """Tie a resource (an OpenAI client, a player, ...) to the current session, if any, so the
    session closes it when it terminates."""
    session = current_session.get()
    if session is not None:
        session.adopt(resource)
