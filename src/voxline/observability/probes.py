"""The runtime's probes: event-loop lag."""

from __future__ import annotations

import asyncio

from ..telemetry import TELEMETRY, Telemetry

__all__ = ["watch_loop_lag"]


async def watch_loop_lag(interval_s: float = 0.5, telemetry: Telemetry = TELEMETRY) -> None:
    """Sleep ``interval_s`` again and again; how much later than asked the loop woke us is its lag
    (a stalled loop delays every call's audio by as much). One timer per interval: nothing else."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, not {interval_s!r}")
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        telemetry.loop_lagged(loop.time() - asked)
