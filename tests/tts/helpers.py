"""What the speech player tests share: waiting on real sockets, the ground truth of what was heard."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from voxline.audio import PCMU_8K
from voxline.media import MediaUnit
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import HeardText, SpeechProvider, TTSPlayer, TTSPlayerEvents
from voxline.testing.tts_servers import FakeTurn, SpokenWord

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


def play_to_call(
    provider: SpeechProvider, clock: VirtualMediaClock
) -> tuple[TTSPlayer, LoopbackCall, list[str]]:
    """A player of ``provider`` sending to an answered μ-law call, and its events' names as they come."""
    player = TTSPlayer(provider, clock)
    call = LoopbackCall(clock, media_format=PCMU_8K, send_silence=False)
    call.answer()
    player.send_media_to(call)
    events: list[str] = []
    for name in TTSPlayerEvents:
        player.add_event_listener(name, lambda e: events.append(e.name))
    return player, call, events


async def barge_in_at_a_random_word(
    server: _Turns, player: TTSPlayer, call: LoopbackCall, clock: VirtualMediaClock, rng: random.Random
) -> tuple[HeardText, int, int]:
    """Speak SENTENCE from random deltas, barge in while the caller hears a random word of it (within
    what the player holds: no underrun, so the fake's timeline is the caller's). Returns what the
    player says was heard, how many words the caller had begun to hear, and the playback position."""
    (turn_id,) = {player.append(piece) for piece in deltas(SENTENCE, rng.randint(3, 12))}
    player.flush()
    words = rng.randint(2, word_count(SENTENCE) - 1)
    await server.wait_until(lambda: server.turns and len(server.turns[0].words) >= words)
    spoken = server.turns[0]
    await until(lambda: player.received_ms(turn_id) >= spoken.words[words - 1].end_ms)
    clock.advance(rng.randint(1, max(2, spoken.words[words - 1].end_ms - 40)))
    position = played_position(call, player)
    heard = player.clear_buffer()
    assert heard is not None and not heard.estimated and heard.interrupted
    assert SENTENCE.startswith(heard.heard)
    return heard, words_heard(spoken.words, position), position


class _Turns(Protocol):
    turns: list[FakeTurn]

    async def wait_until(self, predicate: Callable[[], object], timeout: float = 5.0) -> None: ...
