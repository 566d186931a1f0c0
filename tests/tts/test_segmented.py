"""Providers without timestamps: OpenAI speech (streaming PCM over HTTP) and the embedded espeak-ng
voice, one sentence at a time, heard text estimated and marked so."""

from __future__ import annotations

import random
import shutil

import pytest

from voxline.audio import PCM16_24K, PCMU_8K
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import TTSPlayer, TTSPlayerEvents
from voxline.testing.tts_servers import FakeOpenAISpeechServer
from voxline.tts.openai_speech import OpenAITTS
from voxline.tts.segmented import split_sentences, spread

from .helpers import SENTENCE, deltas, played_position, until, word_count, words_heard


def test_sentences_are_cut_at_their_ends_and_words_spread_over_the_audio() -> None:
    assert split_sentences("Hello there. How are") == (["Hello there. "], "How are")
    assert split_sentences('He said "no." Then: ok') == (['He said "no." ', "Then: "], "ok")
    spans = spread("ab cd ", 10, 1000, 1400)
    assert [(s.start_char, s.end_char, s.start_ms, s.end_ms) for s in spans] == [
        (10, 12, 1000, 1160),
        (13, 15, 1240, 1400),
    ]


def make_call(clock: VirtualMediaClock, player: TTSPlayer) -> LoopbackCall:
    call = LoopbackCall(clock, media_format=PCMU_8K, send_silence=False)
    call.answer()
    player.send_media_to(call)
    return call


async def test_openai_speech_renders_sentence_by_sentence_as_deltas_arrive() -> None:
    clock = VirtualMediaClock()
    async with FakeOpenAISpeechServer() as server:
        player = TTSPlayer(OpenAITTS(api_key="sk-test", voice="coral", base_url=server.base_url), clock)
        assert player.media_format == PCM16_24K
        call = make_call(clock, player)
        events: list[str] = []
        for name in TTSPlayerEvents:
            player.add_event_listener(name, lambda e: events.append(e.name))
        for piece in deltas(SENTENCE):
            player.append(piece)
        # The first sentence is requested before the turn's text is complete.
        await server.wait_until(lambda: server.requests)
        assert server.requests[0] == {
            "model": "gpt-4o-mini-tts",
            "voice": "coral",
            "response_format": "pcm",
            "input": "Thanks for calling the clinic.",
        }
        player.flush()
        await until(lambda: not player.generating)
        assert [r["input"] for r in server.requests] == [
            "Thanks for calling the clinic.",
            "Your appointment is booked for Tuesday at nine, see you then.",
        ]
        total = sum(t.audio_ms for t in server.turns)
        clock.advance(total + 100)
        assert played_position(call, player) >= total - 20
        assert events == [TTSPlayerEvents.PlaybackStarted, TTSPlayerEvents.PlaybackFinished]
        assert server.violations == [] and server.cancels == []
        player.close()


@pytest.mark.parametrize("seed", range(4))
async def test_openai_speech_barge_in_cancels_the_request_and_estimates_what_was_heard(seed: int) -> None:
    rng = random.Random(seed)
    clock = VirtualMediaClock()
    async with FakeOpenAISpeechServer(chunk_delay_s=0.02) as server:
        player = TTSPlayer(OpenAITTS(api_key="sk-test", base_url=server.base_url), clock)
        call = make_call(clock, player)
        text = (
            "Your appointment is booked for Tuesday at nine in the morning with doctor Smith, see you then. "
        )
        turn_id = player.append(text)
        player.flush()
        words = rng.randint(3, 8)
        await server.wait_until(lambda: server.turns and len(server.turns[0].words) >= words)
        spoken = server.turns[0]
        await until(lambda: player.received_ms(turn_id) >= spoken.words[words - 1].end_ms)
        clock.advance(rng.randint(1, spoken.words[words - 1].end_ms - 40))
        position = played_position(call, player)
        cleared_at = clock.now_ms()
        heard = player.clear_buffer()
        assert heard is not None and heard.estimated and heard.interrupted
        await server.wait_until(lambda: server.cancels == ["0"])  # the request was closed mid-body
        clock.advance(500)
        assert [r for r in call.received if r.source is player and r.time_ms > cleared_at] == []
        # Estimated: spread over the audio received so far at the rate of the voice. The fake's voice
        # is uniform per character, so the estimate lands within two words.
        assert abs(word_count(heard.heard) - words_heard(spoken.words, position)) <= 2
        player.close()


async def test_openai_speech_errors_are_the_players_error_events() -> None:
    clock = VirtualMediaClock()
    async with FakeOpenAISpeechServer() as server:
        provider = OpenAITTS(
            api_key="sk-test", model="tts-1", instructions="Speak calmly.", base_url=server.base_url
        )
        player = TTSPlayer(provider, clock)
        reasons: list[str] = []
        player.add_event_listener(TTSPlayerEvents.Error, lambda e: reasons.append(e.reason))
        player.append("Hello. ")
        player.flush()
        await until(lambda: reasons)
        assert "instructions are not supported" in reasons[0] and "400" in reasons[0]
        player.close()
    with pytest.raises(ValueError, match="speed"):
        OpenAITTS(api_key="sk-test", speed=9)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_the_embedded_voice_speaks_each_sentence_and_estimates_heard_text() -> None:
    from voxline.local.tts_player import EspeakTTS

    clock = VirtualMediaClock()
    player = TTSPlayer(EspeakTTS(), clock)
    call = make_call(clock, player)
    finished: list[str] = []
    player.add_event_listener(TTSPlayerEvents.PlaybackFinished, lambda e: finished.append(e.text))
    turn_id = ""
    for piece in deltas(SENTENCE):
        turn_id = player.append(piece)
    player.flush()
    await until(lambda: not player.generating, timeout=30)
    received = player.received_ms(turn_id)
    assert received > 3000  # two sentences of speech
    clock.advance(received // 2)
    heard = player.clear_buffer()
    assert heard is not None and heard.estimated and heard.interrupted
    assert 3 <= word_count(heard.heard) <= word_count(SENTENCE) - 3
    assert finished == []
    # A new turn after the barge-in plays from its start.
    player.append("Goodbye. ")
    player.flush()
    await until(lambda: not player.generating, timeout=30)
    clock.advance(5000)
    assert finished == ["Goodbye. "]
    assert played_position(call, player) > received // 2
    player.close()
