"""``VoxEngine``: the scenario's view of its call session (DESIGN §1–2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from ..events import AppEvents
from .call import Call
from .context import current_session
from .legs import OutboundSipLeg
from .session import Session

if TYPE_CHECKING:
    from ..eventtarget import Event
    from .event_types import AppEventName, CallAlertingEvent


def _session() -> Session:
    session = current_session.get()
    if not isinstance(session, Session):
        raise RuntimeError(
            "VoxEngine is only available inside a call session: run the scenario with `voxline run`"
        )
    return session


class _VoxEngine:
    """Module-level facade; every call resolves to the session the calling code belongs to."""

    @overload
    def add_event_listener(
        self,
        event: Literal[AppEvents.CallAlerting],
        callback: Callable[[CallAlertingEvent], Any] | Callable[[Event], Any],
    ) -> None: ...
    @overload
    def add_event_listener(
        self, event: AppEvents | AppEventName, callback: Callable[[Event], Any]
    ) -> None: ...
    def add_event_listener(self, event: Any, callback: Any) -> None:
        """``VoxEngine.addEventListener``: an ``AppEvents`` constant (or its value string); an unknown
        name raises ``ValueError`` naming the closest constant."""
        _session().add_event_listener(event, callback)

    def remove_event_listener(self, event: AppEvents | AppEventName, callback: Any = None) -> None:
        _session().remove_event_listener(event, callback)

    def terminate(self) -> None:
        _session().terminate()

    def get_secret_value(self, name: str) -> str:
        return _session().get_secret_value(name)

    def call_sip(
        self,
        uri: str,
        caller_id: str | None = None,
        display_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth_user: str | None = None,
        password: str | None = None,
    ) -> Call:
        """``VoxEngine.callSIP``: place a call; returns the Call at once. ``CallEvents.Connected`` when
        the callee answers, ``CallEvents.Failed`` (with the SIP code) when it doesn't. Digest
        authentication answers a 401/407 with ``auth_user``/``password``."""
        session = _session()
        endpoint = session.services.sip if session.services is not None else None
        if endpoint is None:
            raise RuntimeError("call_sip needs the runtime's SIP endpoint: run with --sip")
        if not isinstance(uri, str) or not uri.startswith(("sip:", "sips:")):
            raise ValueError(f"uri must be a sip: URI, not {uri!r}")
        if (auth_user is None) != (password is None):
            raise ValueError("auth_user and password go together")
        auth = (auth_user, password) if auth_user is not None and password is not None else None
        placing = endpoint.call(
            uri, caller_id=caller_id, display_name=display_name, headers=dict(headers or {}), auth=auth
        )
        call = Call(
            OutboundSipLeg(placing),
            caller_id=caller_id or "",
            destination=uri,
            display_name=display_name or "",
            headers=dict(headers or {}),
            outbound=True,
        )
        session.adopt(call)
        return call

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
        return f"<VoxEngine {session.id if isinstance(session, Session) else '(no session)'}>"


VoxEngine = _VoxEngine()
