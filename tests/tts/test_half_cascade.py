"""Half-cascade calls: the Realtime model in text mode (the fake), a speech player (a speech fake)
to a call, barge-in by the caller's voice, and the interrupted text item cut to what was heard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from voxline import OpenAI
from voxline.audio import PCMU_8K
from voxline.audio.tone import tone
from voxline.eventtarget import Event
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import TTSPlayer, TTSPlayerEvents
from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.openai_http import ChatReply, FakeOpenAIHTTPServer, ResponsesReply
from voxline.testing.tts_servers import FakeCartesiaServer, FakeElevenLabsServer
from voxline.tts.cartesia import CartesiaTTS
from voxline.tts.cascade import FullCascade, HalfCascade, feed_player, speak_text_stream
from voxline.tts.elevenlabs import ElevenLabsTTS

from .helpers import SENTENCE, played_position, until, word_count, words_heard

Ev = OpenAI.RealtimeAPIEvents
TEXT_MODE = {"session": {"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}}


async def run_clock(clock: VirtualMediaClock, done: Callable[[], object], limit_ms: int = 10_000) -> None:
    """Advance the media clock a frame at a time, letting the sockets work, until ``done()``."""
    for _ in range(limit_ms // 20):
        if done():
            return
        clock.advance(20)
        await asyncio.sleep(0.003)
    raise AssertionError("the clock ran out before the condition held")


@pytest.mark.parametrize("provider", ["cartesia", "elevenlabs"])
async def test_barge_in_cuts_the_text_item_to_what_the_caller_heard(provider: str) -> None:
    clock = VirtualMediaClock()
    speech_fake: Any = (
        FakeCartesiaServer(chunk_delay_s=0.002)
        if provider == "cartesia"
        else FakeElevenLabsServer(chunk_delay_s=0.002)
    )
    async with FakeRealtimeServer() as server, speech_fake as speech:
        server.script(ScriptedResponse(text=SENTENCE))
        client = await OpenAI.create_realtime_api_client(
            api_key="sk-t", base_url=server.base_url, media_clock=clock
        )
        connection = await server.wait_for_session()
        client.session_update(TEXT_MODE)
        if provider == "cartesia":
            tts: Any = CartesiaTTS(api_key="ca-t", voice_id="v", base_url=speech.base_url)
        else:
            tts = ElevenLabsTTS(api_key="el-t", voice_id="v", base_url=speech.base_url)
        player = TTSPlayer(tts, clock)
        cascade = HalfCascade(client, player)
        call = LoopbackCall(clock, media_format=PCMU_8K)
        call.answer()
        call.send_media_to(client)  # one way: the model hears the caller, the player speaks
        player.send_media_to(call)
        await connection.wait_for_sent("session.updated", count=2)

        client.response_create({})
        done = (await connection.wait_for_sent("response.done"))[0]
        item_id = done["response"]["output"][0]["id"]
        await until(lambda: speech.turns and speech.turns[0].ended and not player.generating)
        spoken = speech.turns[0]
        assert spoken.text == SENTENCE  # every delta, in order
        assert not any(m.get("type") == "conversation.item.truncate" for m in connection.core.received)

        # The caller listens a while, then talks over the agent.
        await run_clock(clock, lambda: played_position(call, player) >= 1500)
        call.play(tone(440.0, 600, 8000, 0.4), 8000)
        await run_clock(clock, lambda: cascade.truncations)
        position = played_position(call, player)
        (cut,) = cascade.truncations
        assert cut.item_id == item_id and cut.heard.interrupted and not cut.heard.estimated
        assert SENTENCE.startswith(cut.text) and 0 < len(cut.text) < len(SENTENCE)
        assert abs(word_count(cut.text) - words_heard(spoken.words, position)) <= 1
        assert speech.cancels or spoken.finished  # what was still rendering was cancelled

        # At the fake: the item was deleted and created again at its place, with the heard text only.
        await connection.wait_for("conversation.item.create")
        retrieved: list[Event] = []
        client.add_event_listener(Ev.ConversationItemRetrieved, retrieved.append)
        client.conversation_item_retrieve({"item_id": item_id})
        await until(lambda: retrieved)
        item = retrieved[0].data["item"]
        assert item["id"] == item_id and item["role"] == "assistant"
        assert item["content"] == [{"type": "output_text", "text": cut.text}]
        types = [m["type"] for m in connection.core.received]
        assert types.index("conversation.item.delete") < types.index("conversation.item.create")
        assert server.violations == [] and speech.violations == []
        player.close()
        client.close()


async def test_an_item_nobody_heard_is_deleted() -> None:
    clock = VirtualMediaClock()
    async with FakeRealtimeServer() as server, FakeCartesiaServer(chunk_delay_s=0.05) as speech:
        server.script(ScriptedResponse(text=SENTENCE))
        client = await OpenAI.create_realtime_api_client(
            api_key="sk-t", base_url=server.base_url, media_clock=clock
        )
        connection = await server.wait_for_session()
        client.session_update(TEXT_MODE)
        player = TTSPlayer(CartesiaTTS(api_key="ca-t", voice_id="v", base_url=speech.base_url), clock)
        cascade = HalfCascade(client, player)
        # A carrier that reports what it played, 300 ms behind: the first frames are not heard yet.
        call = LoopbackCall(clock, media_format=PCMU_8K, acknowledge=True, playout_delay_ms=300)
        call.answer()
        player.send_media_to(call)
        client.response_create({})
        done = (await connection.wait_for_sent("response.done"))[0]
        item_id = done["response"]["output"][0]["id"]
        await until(lambda: call.received)
        clock.advance(100)
        heard = cascade.interrupt()  # before the caller heard any of it
        assert heard is not None and heard.heard == "" and heard.interrupted
        deleted = await connection.wait_for_sent("conversation.item.deleted")
        assert deleted[0]["item_id"] == item_id
        await speech.wait_until(lambda: speech.cancels)
        assert not [m for m in connection.core.received if m["type"] == "conversation.item.create"]
        player.close()
        client.close()


async def test_the_same_player_speaks_a_chat_completions_stream() -> None:
    clock = VirtualMediaClock()
    async with FakeOpenAIHTTPServer() as http, FakeElevenLabsServer() as speech:
        http.script_chat(ChatReply(text=SENTENCE))
        player = TTSPlayer(ElevenLabsTTS(api_key="el-t", voice_id="v", base_url=speech.base_url), clock)
        finished: list[str] = []
        player.add_event_listener(TTSPlayerEvents.PlaybackFinished, lambda e: finished.append(e.text))
        chat = await OpenAI.create_chat_completions_api_client(api_key="sk-test", base_url=http.base_url)
        feed_player(chat, player)
        chat.create_chat_completions(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        )
        await until(lambda: speech.turns and speech.turns[0].finished and not player.generating)
        assert speech.turns[0].text == SENTENCE
        clock.advance(speech.turns[0].audio_ms + 100)
        assert finished == [SENTENCE]
        player.close()
        chat.close()


async def test_the_same_player_speaks_a_responses_stream() -> None:
    clock = VirtualMediaClock()
    async with FakeOpenAIHTTPServer() as http, FakeCartesiaServer() as speech:
        http.script_responses(ResponsesReply(text=SENTENCE))
        player = TTSPlayer(CartesiaTTS(api_key="ca-t", voice_id="v", base_url=speech.base_url), clock)
        responses = await OpenAI.create_responses_api_client(api_key="sk-test", base_url=http.base_url)
        feed_player(responses, player)
        await responses.create_responses({"model": "gpt-4o-mini", "input": "Hi"})
        await until(lambda: speech.turns and speech.turns[0].finished and not player.generating)
        assert speech.turns[0].text == SENTENCE
        assert [m["continue"] for m in speech.turns[0].messages][-1] is False  # flushed at text done
        player.close()
        responses.close()


async def test_any_async_stream_of_text_feeds_the_player() -> None:
    clock = VirtualMediaClock()
    async with FakeCartesiaServer() as speech:
        player = TTSPlayer(CartesiaTTS(api_key="ca-t", voice_id="v", base_url=speech.base_url), clock)

        async def pieces() -> Any:
            for word in SENTENCE.split(" "):
                yield word + " "

        said = await speak_text_stream(player, pieces())
        await until(lambda: not player.generating)
        assert speech.turns[0].text == said and speech.turns[0].finished
        player.close()


async def test_full_cascade_transcription_chat_and_the_player_with_the_history_cut_to_the_heard_text() -> (
    None
):
    clock = VirtualMediaClock()
    async with (
        FakeRealtimeServer() as server,
        FakeOpenAIHTTPServer() as http,
        FakeCartesiaServer(chunk_delay_s=0.002) as speech,
    ):
        server.script_transcription("when are you open", "thanks that is all")
        http.script_chat(ChatReply(text=SENTENCE), ChatReply(text="Goodbye."))
        transcriber = await OpenAI.create_realtime_api_client(
            api_key="sk-t",
            base_url=server.base_url,
            media_clock=clock,
            type=OpenAI.RealtimeAPIClientType.TRANSCRIPTION,
        )
        transcriber.session_update(
            {
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
                }
            }
        )
        chat = await OpenAI.create_chat_completions_api_client(api_key="sk-test", base_url=http.base_url)
        player = TTSPlayer(CartesiaTTS(api_key="ca-t", voice_id="v", base_url=speech.base_url), clock)
        cascade = FullCascade(transcriber, chat, player, model="gpt-4o-mini", instructions="Be brief.")
        call = LoopbackCall(clock, media_format=PCMU_8K)
        call.answer()
        call.send_media_to(transcriber)
        player.send_media_to(call)

        call.play(tone(440.0, 600, 8000, 0.4), 8000)
        await run_clock(clock, lambda: speech.turns and player.playing)
        await until(lambda: speech.turns[0].ended and not player.generating)
        first = http.requests_to("/v1/chat/completions")[0].body
        assert first["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "when are you open"},
        ]
        assert speech.turns[0].text == SENTENCE
        start = played_position(call, player)
        await run_clock(clock, lambda: played_position(call, player) >= start + 1500)
        call.play(tone(440.0, 600, 8000, 0.4), 8000)  # the caller talks over the answer
        await run_clock(clock, lambda: cascade.messages[-1]["content"] != SENTENCE)
        position = played_position(call, player)
        heard = cascade.messages[-1]
        assert heard["role"] == "assistant" and SENTENCE.startswith(heard["content"]) and heard["content"]
        assert abs(word_count(heard["content"]) - words_heard(speech.turns[0].words, position)) <= 1
        # The next request carries the cut answer: the model's context is what the caller heard.
        await run_clock(clock, lambda: len(http.requests_to("/v1/chat/completions")) == 2)
        second = http.requests_to("/v1/chat/completions")[1].body
        assert second["messages"][2] == {"role": "assistant", "content": heard["content"]}
        assert second["messages"][3] == {"role": "user", "content": "thanks that is all"}
        player.close()
        chat.close()
        transcriber.close()
