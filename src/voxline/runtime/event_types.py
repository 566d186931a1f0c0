"""Static types of the application and call events: the names a listener may be registered by and
the fields each event carries (``Protocol`` s to annotate a listener's parameter with).

At run time a listener gets a :class:`voxline.eventtarget.Event`; these describe its fields for mypy
and editors. A listener annotated with ``Event`` is accepted as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .call import Call

__all__ = [
    "AppEventName",
    "CallAlertingEvent",
    "CallDisconnectedEvent",
    "CallEvent",
    "CallEventName",
    "CallFailedEvent",
    "ToneReceivedEvent",
]

# The value strings of AppEvents and CallEvents (tests/test_typed_api.py checks them against the enums).
AppEventName = Literal[
    "AppEvents.Started",
    "AppEvents.CallAlerting",
    "AppEvents.Terminating",
    "AppEvents.Terminated",
    "AppEvents.OpenAICallIncoming",
    "AppEvents.RegistrationSucceeded",
    "AppEvents.RegistrationFailed",
    "AppEvents.Unregistered",
]
CallEventName = Literal[
    "Call.Connected",
    "Call.Disconnected",
    "Call.Failed",
    "Call.ToneReceived",
    "Call.PlaybackFinished",
    "Call.RecordStarted",
    "Call.RecordStopped",
    "Call.QualityRecord",
    "Call.TransferAccepted",
    "Call.TransferProgress",
    "Call.TransferComplete",
    "Call.TransferFailed",
    "Call.TransferRequested",
]


class CallAlertingEvent(Protocol):
    """``AppEvents.CallAlerting``: a call arrived; answer, reject or bridge ``call``."""

    @property
    def name(self) -> str: ...
    @property
    def call(self) -> Call: ...
    @property
    def callerid(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...


class CallEvent(Protocol):
    """Every ``CallEvents`` event: its ``name`` and the ``call`` it belongs to."""

    @property
    def name(self) -> str: ...
    @property
    def call(self) -> Call: ...


class CallDisconnectedEvent(CallEvent, Protocol):
    """``CallEvents.Disconnected``: ``reason`` (``"hangup"``, ...) and who ended it (``initiator``)."""

    @property
    def reason(self) -> str: ...
    @property
    def initiator(self) -> str: ...


class CallFailedEvent(CallEvent, Protocol):
    """``CallEvents.Failed``: the SIP ``code`` and ``reason`` of a call that never connected."""

    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...


class ToneReceivedEvent(CallEvent, Protocol):
    """``CallEvents.ToneReceived``: one DTMF digit (``tone``)."""

    @property
    def tone(self) -> str: ...
