"""What code below the runtime may ask of the call session it runs in, and which session that is.

The runtime runs a scenario's code in a call session and sets :data:`current_session` meanwhile;
listeners run in the context they were registered in (:mod:`voxline.eventtarget`), so the session
follows the scenario's code into every callback. The clients (:mod:`voxline.openai`) see that session
only through :class:`SessionContext`: they never import the runtime, and outside a session (a script,
a test) there is none and they use their defaults.

Standard library only, at the bottom of the import graph; :class:`voxline.runtime.session.Session`
implements :class:`SessionContext`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

__all__ = ["Closable", "SessionContext", "adopt", "current_session"]


class Closable(Protocol):
    """A resource a session closes when it terminates: a call, a client, a player (``close`` may
    return an awaitable)."""

    def close(self) -> Any: ...


class SessionContext(Protocol):
    """What a client needs from the session it runs in."""

    @property
    def realtime_base_url(self) -> str | None:
        """Where Realtime clients connect when the scenario gives no base URL (the embedded backend),
        or None for the usual default."""
        ...

    @property
    def trace(self) -> bool:
        """Whether Realtime clients trace by default (the scenario's own ``trace`` still wins)."""
        ...

    def adopt(self, resource: Closable) -> None:
        """Own ``resource``: close it when the session terminates (at once if it is terminating)."""
        ...

    def model_connect(self, error: str | None) -> None:
        """A Realtime client's connect ended: ``error`` None when it connected, else why not (the
        runtime's readiness counts failures in a row)."""
        ...


current_session: ContextVar[SessionContext | None] = ContextVar("voxline_session", default=None)


def adopt(resource: Closable) -> None:
    """Tie a resource (an OpenAI client, a player, ...) to the current session, if any, so the
    session closes it when it terminates."""
    session = current_session.get()
    if session is not None:
        session.adopt(resource)
