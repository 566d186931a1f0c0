"""Event constants of the VoxEngine reference: application and call events.

At the bottom of the import graph (standard library only), so the media units that fire call events
(:mod:`voxline.media`) need not import the runtime; :mod:`voxline.runtime.events` re-exports them.
"""

from __future__ import annotations

from enum import StrEnum


class AppEvents(StrEnum):
    """The application's events (``VoxEngine.add_event_listener``): ``CallAlerting`` for each call."""

    Started = "AppEvents.Started"
    CallAlerting = "AppEvents.CallAlerting"
    Terminating = "AppEvents.Terminating"
    Terminated = "AppEvents.Terminated"
    # voxline's: an OpenAI-hosted SIP call rings (a verified ``realtime.call.incoming`` webhook):
    # ``event.call`` is a voxline.openai.calls.OpenAICall (no media here: OpenAI keeps it).
    OpenAICallIncoming = "AppEvents.OpenAICallIncoming"
    # voxline's: a --register account's state (``event.aor``; ``expires``, or ``status``/``reason``),
    # delivered to every running session and to ``Runtime.registration_listeners``.
    RegistrationSucceeded = "AppEvents.RegistrationSucceeded"
    RegistrationFailed = "AppEvents.RegistrationFailed"
    Unregistered = "AppEvents.Unregistered"


class CallEvents(StrEnum):
    """A call's events (``call.add_event_listener``); each event carries ``event.call``."""

    Connected = "Call.Connected"
    Disconnected = "Call.Disconnected"
    Failed = "Call.Failed"
    ToneReceived = "Call.ToneReceived"
    PlaybackFinished = "Call.PlaybackFinished"
    RecordStarted = "Call.RecordStarted"
    RecordStopped = "Call.RecordStopped"
    # voxline's: the call's quality record (turns, latencies, barge-ins, RTP, tokens) as
    # ``event.record``, delivered once, just before ``Disconnected`` / ``Failed``.
    QualityRecord = "Call.QualityRecord"
    # Transfer (SIP REFER; VoxEngine's TransferComplete / TransferFailed and voxline's own). Ours to
    # the peer (``call.transfer``): accepted, progress (``code``: the transferee's provisional
    # status), then complete (the call is hung up next) or failed (``code``, ``reason``; the call
    # stays up). The peer's to us: requested (``target``; ``accept(call)`` or ``reject(code)``).
    TransferAccepted = "Call.TransferAccepted"
    TransferProgress = "Call.TransferProgress"
    TransferComplete = "Call.TransferComplete"
    TransferFailed = "Call.TransferFailed"
    TransferRequested = "Call.TransferRequested"
