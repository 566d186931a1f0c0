"""Event constants of the VoxEngine runtime: application and call events."""

from __future__ import annotations

from enum import StrEnum


class AppEvents(StrEnum):
    Started = "AppEvents.Started"
    CallAlerting = "AppEvents.CallAlerting"
    Terminating = "AppEvents.Terminating"
    Terminated = "AppEvents.Terminated"


class CallEvents(StrEnum):
    Connected = "Call.Connected"
    Disconnected = "Call.Disconnected"
    Failed = "Call.Failed"
    ToneReceived = "Call.ToneReceived"
    PlaybackFinished = "Call.PlaybackFinished"
    RecordStarted = "Call.RecordStarted"
    RecordStopped = "Call.RecordStopped"
