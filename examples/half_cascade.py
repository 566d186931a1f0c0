"""Half-cascade: the Realtime model runs in text mode, a separate streaming voice speaks its text to
the call, and a barge-in cuts the model's interrupted answer to what the caller really heard.

    voxline run examples/half_cascade.py     # a phone agent; call sip:agent@HOST:5060
    python examples/half_cascade.py          # a simulated call against voxline's fakes, no key

The voice is Cartesia with a ``CARTESIA_API_KEY`` secret, else ElevenLabs with an
``ELEVENLABS_API_KEY``, else OpenAI speech with ``TTS=openai``, else the embedded espeak-ng voice
(offline: ``voxline run --backend local`` answers with its embedded backend and the whole call
needs no network: ``voxline demo --scenario examples/half_cascade.py`` calls it).
The shape follows the reference's half-cascade guide: caller
audio goes one way to the model (``call.send_media_to(client)``), the player sends to the call.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from typing import Any

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine
from voxline.media.tts import SpeechProvider, TTSPlayer, TTSPlayerEvents
from voxline.tts import CartesiaTTS, ElevenLabsTTS, HalfCascade, OpenAITTS

INSTRUCTIONS = "You are Voxi, a helpful phone assistant. Keep responses short and telephony-friendly."
TOOLS = [
    {
        "type": "function",
        "name": "check_order",
        "description": "Look up the delivery status of an order by its number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order number"}},
            "required": ["order_id"],
        },
    }
]
TEXT_MODE = {
    "session": {
        "type": "realtime",
        "output_modalities": ["text"],
        "instructions": INSTRUCTIONS,
        "tools": TOOLS,
        "tool_choice": "auto",
        # What the caller said, as text (no audio formats here: the call and the player agree them).
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
    }
}


def secret(name: str) -> str | None:
    try:
        return VoxEngine.get_secret_value(name) or None
    except Exception:
        return None


def choose_voice() -> SpeechProvider:
    if key := secret("CARTESIA_API_KEY"):
        return CartesiaTTS(
            api_key=key, voice_id=secret("CARTESIA_VOICE_ID") or "a0e99841-438c-4a64-b679-ae501e7d6091"
        )
    if key := secret("ELEVENLABS_API_KEY"):
        return ElevenLabsTTS(api_key=key, voice_id=secret("ELEVENLABS_VOICE_ID") or "21m00Tcm4TlvDq8ikWAM")
    if secret("TTS") == "openai" and (key := secret("OPENAI_API_KEY")):
        return OpenAITTS(api_key=key, voice="coral")
    from voxline.local.tts_player import EspeakTTS

    return EspeakTTS()


async def on_call(event: Any) -> None:
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=secret("OPENAI_API_KEY") or "sk-local",
        model="gpt-realtime",
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    client.session_update(TEXT_MODE)
    player = TTSPlayer(choose_voice())
    HalfCascade(client, player)  # deltas -> append, text done -> flush, speech started -> cut
    call.send_media_to(client)
    player.send_media_to(call)
    client.response_create({})  # Voxi speaks first

    def on_item_done(e: Any) -> None:
        item = e.data["item"]
        if item.get("type") != "function_call" or item.get("name") != "check_order":
            return
        order = json.loads(item.get("arguments") or "{}").get("order_id", "")
        result = {"order_id": order, "status": "shipped", "delivery": "tomorrow"}
        output = {"type": "function_call_output", "call_id": item["call_id"], "output": json.dumps(result)}
        client.conversation_item_create({"item": output})
        client.response_create({})

    client.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseOutputItemDone, on_item_done)

    def on_disconnected(_event: Any) -> None:
        player.close()
        VoxEngine.terminate()

    call.add_event_listener(CallEvents.Disconnected, on_disconnected)


if __name__ == "__voxline_scenario__":
    VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)


# -- python examples/half_cascade.py: a simulated call, no network ----------------------------------

GREETING = (
    "Thanks for calling the clinic. Your appointment is booked for Tuesday at nine in the morning, "
    "and please bring your insurance card with you."
)


async def simulate() -> int:
    from voxline.audio import PCMU_8K
    from voxline.audio.tone import tone
    from voxline.media.clock import AsyncioMediaClock
    from voxline.media.loopback import LoopbackCall
    from voxline.testing import FakeRealtimeServer, ScriptedResponse
    from voxline.testing.tts_servers import FakeCartesiaServer

    async with FakeRealtimeServer() as server, FakeCartesiaServer() as cartesia:
        server.script(ScriptedResponse(text=GREETING), ScriptedResponse(text="Sure, go ahead."))
        clock = AsyncioMediaClock.for_loop()
        client = await OpenAI.create_realtime_api_client(api_key="sk-local", base_url=server.base_url)
        client.session_update(TEXT_MODE)
        if shutil.which("espeak-ng"):
            from voxline.local.tts_player import EspeakTTS

            provider: SpeechProvider = EspeakTTS()
            print("voice: the embedded espeak-ng voice")
        else:
            provider = CartesiaTTS(api_key="ca-local", voice_id="demo", base_url=cartesia.base_url)
            print(f"voice: voxline's fake Cartesia server at {cartesia.base_url}")
        player = TTSPlayer(provider, clock)
        cascade = HalfCascade(client, player)
        call = LoopbackCall(clock, media_format=PCMU_8K)
        call.answer()
        call.send_media_to(client)
        player.send_media_to(call)
        player.add_event_listener(TTSPlayerEvents.PlaybackStarted, lambda e: print("agent: speaking"))
        client.response_create({})

        async with asyncio.timeout(30):
            while call.played_ms(player) < 2000:  # the caller listens for two seconds, then talks
                await asyncio.sleep(0.02)
            call.play(tone(440.0, 700, 8000, 0.4), 8000)
            while not cascade.truncations:
                await asyncio.sleep(0.02)
        cut = cascade.truncations[0]
        print(f"caller barged in after {cut.heard.heard_ms} ms of speech")
        print(f"heard: {cut.text!r}")
        print(f"not heard: {cut.heard.text[len(cut.text) :].strip()!r}")

        retrieved: list[Any] = []
        client.add_event_listener(OpenAI.RealtimeAPIEvents.ConversationItemRetrieved, retrieved.append)
        await asyncio.sleep(0.2)
        client.conversation_item_retrieve({"item_id": cut.item_id})
        async with asyncio.timeout(10):
            while not retrieved:
                await asyncio.sleep(0.02)
        item_text = retrieved[0].data["item"]["content"][0]["text"]
        print(f"the model's context now holds: {item_text!r}")
        player.close()
        client.close()
        await client.wait_closed()
        return 0 if item_text == cut.text and cut.text else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(simulate()))
