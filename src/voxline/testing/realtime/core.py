"""Moved to :mod:`voxline.realtime_server.core` (split by concept across ``voxline.realtime_server``).

This module re-exports its names for existing imports.
"""

from __future__ import annotations

from voxline.realtime_server.core import (
    DEFAULT_INSTRUCTIONS,
    MIN_COMMIT_MS,
    SESSION_LIFETIME_S,
    Abort,
    Close,
    Outgoing,
    PendingWork,
    RawFrame,
    RealtimeSessionCore,
    Truncation,
    error_event,
    new_id,
)

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "MIN_COMMIT_MS",
    "SESSION_LIFETIME_S",
    "Abort",
    "Close",
    "Outgoing",
    "PendingWork",
    "RawFrame",
    "RealtimeSessionCore",
    "Truncation",
    "error_event",
    "new_id",
]
