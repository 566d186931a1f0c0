"""The process-wide metric catalogue (issue 15, the metrics part).

A no-op stand-in with the seam's exact signatures, until the metrics branch defines the Prometheus
objects behind them: the per-call tracker (:mod:`voxline.runtime.accounting`) reports each finished
figure through one method here and knows nothing of the exporter.
"""

from __future__ import annotations

__all__ = ["TELEMETRY", "Telemetry"]


class Telemetry:
    """What the per-call tracker reports, once per turn, barge-in and call."""

    def turn_finished(self, transport: str, response_ms: float | None) -> None:
        """A turn ended: caller's speech stopped -> first model audio at the caller (None: no audio)."""

    def barge_in(self, transport: str, to_silence_ms: float | None) -> None:
        """The caller talked over model audio; ``speech_started`` -> the caller's playout cleared
        (None: the scenario did not clear it)."""

    def call_finished(self, transport: str, outcome: str, duration_s: float) -> None:
        """A call ended (outcome: completed, abandoned, rejected or failed)."""


TELEMETRY = Telemetry()
