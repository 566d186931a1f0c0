"""What the speech player tests share: waiting on real sockets, the ground truth of what was heard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from voxline.media import MediaUnit
from voxline.media.loopback import LoopbackCall
from voxline.testing.tts_servers import SpokenWord

SENTENCE = "Thanks for calling the clinic. Your appointment is booked for Tuesday at nine, see you then."


def deltas(text: str, size: int = 7) -> list[str]:
    """``text`` in model-sized pieces (words cut in the middle too)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.002)


def played_position(call: LoopbackCall, source: MediaUnit) -> int:
    """Where the caller's playback of ``source`` got to, in ms on its output timeline."""
    now = call.clock.now_ms()
    ends = [
        p.frame.timestamp_ms + min(p.played_ms, max(0, now - p.start_ms))
        for p in call.played
        if p.source is source
    ]
    return max(ends, default=0)


def words_heard(words: Sequence[SpokenWord], position_ms: int) -> int:
    """How many of the fake's words the caller had begun to hear at ``position_ms``."""
    return sum(1 for w in words if w.start_ms < position_ms)


def word_count(text: str) -> int:
    return len(text.split())
