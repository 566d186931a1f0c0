"""The streaming player over ElevenLabs' stream-input WebSocket, against the protocol-faithful fake."""

from __future__ import annotations

import json
import random

import pytest

from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import TTSPlayer, TTSPlayerEvents
from voxline.openai.websocket import HandshakeFailed, WebSocketClient, open_websocket
from voxline.testing.tts_servers import FakeElevenLabsServer
from voxline.tts.elevenlabs import ElevenLabsTTS

from .helpers import (
    SENTENCE,
    barge_in_at_a_random_word,
    deltas,
    play_to_call,
    played_position,
    until,
    word_count,
)


def make(server: FakeElevenLabsServer, clock: VirtualMediaClock) -> tuple[TTSPlayer, LoopbackCall, list[str]]:
    provider = ElevenLabsTTS(api_key="el-test", voice_id="voice123", base_url=server.base_url, language="en")
    return play_to_call(provider, clock)


async def test_deltas_are_sent_in_order_and_flush_ends_the_turn() -> None:
    clock = VirtualMediaClock()
    async with FakeElevenLabsServer() as server:
        player, call, events = make(server, clock)
        for piece in deltas(SENTENCE):
            player.append(piece)
        player.flush()
        await server.wait_until(lambda: server.turns and server.turns[0].finished)
        turn = server.turns[0]
        assert turn.text == SENTENCE
        first, *texts, last = turn.messages
        assert first["text"] == " " and first["xi_api_key"] == "el-test" and "voice_settings" in first
        assert "".join(m["text"] for m in texts) == SENTENCE
        assert last == {"text": ""}  # EOS at flush
        query = server.handshakes[0]["query"]
        assert query["output_format"] == "ulaw_8000" and query["model_id"] == "eleven_flash_v2_5"
        assert query["sync_alignment"] == "true"
        assert "el-test" not in json.dumps(server.handshakes[0]["headers"])  # the key travels in the BOS only
        await until(lambda: not player.generating)
        clock.advance(turn.audio_ms + 100)
        assert events == [TTSPlayerEvents.PlaybackStarted, TTSPlayerEvents.PlaybackFinished]
        assert played_position(call, player) >= turn.audio_ms
        assert server.violations == [] and server.cancels == []
        player.close()


@pytest.mark.parametrize("seed", range(6))
async def test_heard_text_at_random_barge_in_points_is_within_one_word(seed: int) -> None:
    rng = random.Random(seed)
    clock = VirtualMediaClock()
    async with FakeElevenLabsServer(chunk_delay_s=0.002) as server:
        player, call, events = make(server, clock)
        heard, truth, position = await barge_in_at_a_random_word(server, player, call, clock, rng)
        assert abs(word_count(heard.heard) - truth) <= 1, (heard.heard, truth, position)
        assert events[-1] == TTSPlayerEvents.Interrupted
        player.close()


async def test_clear_buffer_silences_the_call_within_a_frame_and_cancels_the_generation() -> None:
    clock = VirtualMediaClock()
    async with FakeElevenLabsServer(chunk_delay_s=0.05) as server:
        player, call, _ = make(server, clock)
        player.append(SENTENCE)
        player.flush()
        await server.wait_until(lambda: server.turns and len(server.turns[0].words) >= 2)
        await until(lambda: call.received)
        clock.advance(100)
        heard = player.clear_buffer()
        assert heard is not None and heard.interrupted
        cleared_at = clock.now_ms()
        await server.wait_until(lambda: server.cancels == ["0"])
        assert server.turns[0].cancelled and not server.turns[0].finished
        clock.advance(1000)
        late = [r for r in call.received if r.source is player and r.time_ms > cleared_at]
        assert late == []
        assert played_position(call, player) <= 120
        assert server.violations == []
        player.close()


async def open_ws(url: str) -> WebSocketClient:
    return await open_websocket(
        url,
        headers={},
        user_agent="t",
        open_timeout=5,
        ping_interval=None,
        ping_timeout=None,
        close_timeout=1,
    )


async def test_the_fake_refuses_what_elevenlabs_refuses() -> None:
    async with FakeElevenLabsServer(api_keys={"good"}) as server:
        query = "model_id=eleven_flash_v2_5&output_format=pcm_16000"
        url = f"{server.base_url}/v1/text-to-speech/v/stream-input?{query}"
        firsts = [
            {"text": "hello", "xi_api_key": "good"},  # not a BOS
            {"text": " ", "xi_api_key": "bad"},
            {"text": " ", "voice_settings": {"stability": 3}, "xi_api_key": "good"},
            {"text": " ", "xi_api_key": "good", "voice": "x"},
        ]
        for first in firsts:
            ws = await open_ws(url)
            ws.start(lambda _t: None, lambda _b: None)
            ws.send_text(json.dumps(first))
            code, _ = await ws.wait_closed()
            assert code == 1008, first
        assert len(server.violations) == len(firsts)
        with pytest.raises(HandshakeFailed) as refused:
            await open_ws(f"{server.base_url}/v1/text-to-speech/v/stream-input?model_id=nope")
        assert refused.value.response is not None and refused.value.response.status_code == 400


async def test_a_refused_key_fails_the_turn_and_the_player_says_so() -> None:
    clock = VirtualMediaClock()
    async with FakeElevenLabsServer(api_keys={"good"}) as server:
        player, _call, events = make(server, clock)
        player.append("Hello there. ")
        player.flush()
        await until(lambda: TTSPlayerEvents.Error in events)
        assert not player.generating and server.violations
        player.close()
