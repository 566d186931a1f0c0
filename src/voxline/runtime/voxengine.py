"""``VoxEngine``: the scenario's view of its call session (DESIGN §1–2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .context import current_session
from .session import Session


def _session() -> Session:
    session = current_session.get()
    if session is None:
        raise RuntimeError(
            "VoxEngine is only available inside a call session: run the scenario with `voxline run`"
        )
    return session


class _VoxEngine:
    """Module-level facade; every call resolves to the session the calling code belongs to."""

    def add_event_listener(self, event: str | StrEnum, callback: Any) -> None:
        _session().add_event_listener(event, callback)

    def remove_event_listener(self, event: str | StrEnum, callback: Any = None) -> None:
        _session().remove_event_listener(event, callback)

    def terminate(self) -> None:
        _session().terminate()

    def get_secret_value(self, name: str) -> str:
        return _session().get_secret_value(name)

    def send_media_between(self, unit1: Any, unit2: Any) -> None:
        from ..media import send_media_between

        send_media_between(unit1, unit2)

    def stop_media_between(self, unit1: Any, unit2: Any) -> None:
        from ..media import stop_media_between

        stop_media_between(unit1, unit2)

    @property
    def session(self) -> Session:
        return _session()

    def __repr__(self) -> str:
        session = current_session.get()
        return f"<VoxEngine {session.id if session else '(no session)'}>"


VoxEngine = _VoxEngine()
