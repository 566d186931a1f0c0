"""The streaming player over Cartesia's WebSocket (contexts, continue, word timestamps, cancel)."""

from __future__ import annotations

import json
import random

import pytest

from voxline.audio import PCM16_24K, PCMU_8K, AudioFormat
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import TTSPlayer, TTSPlayerEvents
from voxline.openai.websocket import open_websocket
from voxline.testing.tts_servers import FakeCartesiaServer
from voxline.tts.cartesia import CartesiaTTS

from .helpers import (
    SENTENCE,
    barge_in_at_a_random_word,
    deltas,
    play_to_call,
    until,
    word_count,
)


def make(
    server: FakeCartesiaServer, clock: VirtualMediaClock, fmt: AudioFormat = PCMU_8K
) -> tuple[TTSPlayer, LoopbackCall, list[str]]:
    provider = CartesiaTTS(api_key="ca-test", voice_id="voice-1", base_url=server.base_url, media_format=fmt)
    return play_to_call(provider, clock)


@pytest.mark.parametrize("fmt", [PCMU_8K, PCM16_24K])
async def test_deltas_continue_one_context_and_flush_closes_it(fmt: AudioFormat) -> None:
    clock = VirtualMediaClock()
    async with FakeCartesiaServer() as server:
        player, _call, events = make(server, clock, fmt)
        for piece in [" ", *deltas(SENTENCE)]:  # a blank first delta waits for the first word
            player.append(piece)
        player.flush()
        await until(lambda: not player.generating)
        (turn,) = server.turns
        assert turn.finished and turn.text == " " + SENTENCE
        requests = turn.messages
        assert all(r["context_id"] == turn.key for r in requests)
        assert [r["continue"] for r in requests] == [True] * (len(requests) - 1) + [False]
        assert requests[-1]["transcript"] == ""
        assert requests[0]["voice"] == {"mode": "id", "id": "voice-1"} and requests[0]["add_timestamps"]
        encoding = {"pcmu": "pcm_mulaw", "pcm16": "pcm_s16le"}[fmt.encoding]
        assert requests[0]["output_format"] == {
            "container": "raw",
            "encoding": encoding,
            "sample_rate": fmt.rate,
        }
        assert server.handshakes[0]["query"]["cartesia_version"]
        clock.advance(turn.audio_ms + 100)
        assert events == [TTSPlayerEvents.PlaybackStarted, TTSPlayerEvents.PlaybackFinished]
        # Later turns are new contexts on the same connection.
        player.append("And one more thing. ")
        player.flush()
        await until(lambda: not player.generating)
        assert len(server.turns) == 2 and len(server.handshakes) == 1
        assert server.turns[1].key != turn.key and server.turns[1].finished
        assert server.violations == [] and server.cancels == []
        player.close()


@pytest.mark.parametrize("seed", range(6))
async def test_heard_text_at_random_barge_in_points_is_within_one_word(seed: int) -> None:
    rng = random.Random(seed)
    clock = VirtualMediaClock()
    async with FakeCartesiaServer(chunk_delay_s=0.002) as server:
        player, call, _ = make(server, clock)
        heard, truth, position = await barge_in_at_a_random_word(server, player, call, clock, rng)
        assert abs(word_count(heard.heard) - truth) <= 1, (heard.heard, truth, position)
        player.close()


async def test_clear_buffer_silences_the_call_and_cancels_the_context() -> None:
    clock = VirtualMediaClock()
    async with FakeCartesiaServer(chunk_delay_s=0.05) as server:
        player, call, _ = make(server, clock)
        player.append(SENTENCE)
        player.flush()
        await until(lambda: call.received)
        clock.advance(60)
        heard = player.clear_buffer()
        assert heard is not None and heard.interrupted
        cleared_at = clock.now_ms()
        await server.wait_until(lambda: server.cancels == [server.turns[0].key])
        assert server.turns[0].cancelled and not server.turns[0].finished
        clock.advance(1000)
        assert [r for r in call.received if r.source is player and r.time_ms > cleared_at] == []
        assert server.violations == []
        player.close()


async def test_the_fake_refuses_what_cartesia_refuses() -> None:
    async with FakeCartesiaServer() as server:
        ws = await open_websocket(
            f"{server.base_url}/tts/websocket?cartesia_version=2025-04-16",
            headers={"X-API-Key": "k"},
            user_agent="t",
            open_timeout=5,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=1,
        )
        answers: list[dict[str, object]] = []
        ws.start(lambda text: answers.append(json.loads(text)), lambda _b: None)
        good = {
            "model_id": "sonic-2",
            "voice": {"mode": "id", "id": "v"},
            "output_format": {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000},
            "context_id": "c1",
            "continue": True,
        }
        bad = [
            {**good, "transcript": "  "},  # a context must start with real text
            {**good, "transcript": "Hi ", "voice": "v"},
            {**good, "transcript": "Hi ", "output_format": {"container": "mp3"}},
            {**good, "transcript": "Hi ", "colour": "blue"},
            {**good, "transcript": "Hi ", "continue": "yes"},
        ]
        for message in bad:
            ws.send_text(json.dumps(message))
        ws.send_text(json.dumps({**good, "transcript": "Hi ", "continue": False}))
        ws.send_text(json.dumps({**good, "transcript": "again "}))  # the context is closed
        await server.wait_until(lambda: len(server.violations) == len(bad) + 1)
        await until(lambda: sum(1 for a in answers if a.get("type") == "error") == len(bad) + 1)
        ws.close()
        await ws.wait_closed()
