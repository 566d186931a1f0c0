"""The embedded voice end to end: the offline backend in text mode answers a caller's spoken
question, the espeak-ng player speaks the answer to the call, pocketsphinx recognises what the
caller heard; a barge-in cuts the next answer to what was heard, at the backend."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from tests.conftest import require_module, require_tool
from voxline import OpenAI
from voxline.audio import PCMU_8K, AudioFormat
from voxline.eventtarget import Event
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import TTSPlayer

from .helpers import until

Ev = OpenAI.RealtimeAPIEvents


async def run_clock(clock: VirtualMediaClock, done: Callable[[], object], limit_ms: int = 30_000) -> None:
    for _ in range(limit_ms // 20):
        if done():
            return
        clock.advance(20)
        await asyncio.sleep(0.002)
    raise AssertionError("the clock ran out before the condition held")


def phrases(text: str) -> list[str]:
    return [re.sub(r"[^a-z ]", "", s.lower()).strip() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]


async def test_a_caller_hears_the_embedded_voice_and_a_barge_in_cuts_the_answer() -> None:
    require_tool("espeak-ng")
    for module in ("pocketsphinx", "webrtcvad", "yaml", "jsonschema"):
        require_module(module)
    from voxline.local.asr import Recognizer
    from voxline.local.server import LOCAL_API_KEY, start_local_backend
    from voxline.local.tts import Synthesizer
    from voxline.local.tts_player import EspeakTTS
    from voxline.tts.cascade import HalfCascade

    caller = Synthesizer("en-us+m3", 155, output_rate=8000)
    backend = await start_local_backend(pace=None)
    clock = VirtualMediaClock()
    try:
        client = await OpenAI.create_realtime_api_client(
            api_key=LOCAL_API_KEY, base_url=backend.base_url, media_clock=clock
        )
        client.session_update({"session": {"type": "realtime", "output_modalities": ["text"]}})
        answers: list[str] = []
        client.add_event_listener(Ev.ResponseOutputTextDone, lambda e: answers.append(e.data["text"]))
        player = TTSPlayer(EspeakTTS(), clock)
        cascade = HalfCascade(client, player)
        call = LoopbackCall(clock, media_format=PCMU_8K)
        call.answer()
        call.send_media_to(client)
        player.send_media_to(call)

        call.play(caller.synthesize("what are your opening hours"), 8000)
        await run_clock(clock, lambda: answers and not player.generating and not player.playing)
        heard = call.heard_audio(AudioFormat("pcm16", 8000))
        recognizer = Recognizer.from_phrases(phrases(answers[0]), input_rate=8000, sequence=True)
        hypothesis = await asyncio.get_running_loop().run_in_executor(None, recognizer.recognize, heard)
        assert hypothesis.text == " ".join(phrases(answers[0]))
        assert cascade.truncations == []

        # The same question again; the caller talks over the answer after a second and a half.
        call.play(caller.synthesize("what are your opening hours"), 8000)
        await run_clock(clock, lambda: len(answers) == 2 and player.playing)
        started = call.played_ms(player)
        await run_clock(clock, lambda: call.played_ms(player) >= started + 1500)
        call.play(caller.synthesize("thank you goodbye"), 8000)
        await run_clock(clock, lambda: cascade.truncations)
        (cut,) = cascade.truncations
        assert cut.heard.estimated and answers[1].startswith(cut.text) and 0 < len(cut.text) < len(answers[1])

        retrieved: list[Event] = []
        client.add_event_listener(Ev.ConversationItemRetrieved, retrieved.append)
        connection = backend.server.sessions[0]
        await connection.wait_for("conversation.item.create")
        client.conversation_item_retrieve({"item_id": cut.item_id})
        await until(lambda: retrieved)
        assert retrieved[0].data["item"]["content"] == [{"type": "output_text", "text": cut.text}]
        backend.server.assert_no_violations()
        player.close()
        client.close()
    finally:
        await backend.close()


pytestmark = pytest.mark.timeout(120)
