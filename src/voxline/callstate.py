"""``CallState``: where a phone call is, as a scenario sees it, whatever carries it.

A bottom-level module (it imports nothing of voxline), so transport layers can map their own states
onto it without importing the runtime: ``voxline.sip.dialog.DialogState.call_state`` does, and
``voxline.runtime.call.Call.state()`` returns it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CallState"]


class CallState(StrEnum):
    ALERTING = "alerting"  # inbound, not answered yet
    PROGRESSING = "progressing"  # outbound, not answered yet
    CONNECTED = "connected"
    ENDED = "ended"
