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
