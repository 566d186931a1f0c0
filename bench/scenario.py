"""The benchmark scenario: answer, bridge the call to the Realtime API, clear on barge-in.

``examples/inbound_agent.py`` without the greeting and the tool call (the fake server answers every
utterance; a greeting would only shift the schedule). ``BENCH_AUDIO`` picks the model-side format:
``g711`` (default) lets voxline negotiate ``audio/pcmu`` -- μ-law straight through -- and ``pcm24k``
sets ``audio/pcm`` at 24 kHz both ways, so voxline transcodes μ-law <-> 24 kHz PCM16 on every frame.
The instructions carry the caller's name so the fake server can tell the calls apart.
"""

import os

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

AUDIO = os.environ.get("BENCH_AUDIO", "g711")
PCM24K = {"type": "audio/pcm", "rate": 24000}


async def on_call(event):
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        model="gpt-realtime",
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    session = {"type": "realtime", "instructions": f"bench-call:{call.caller_id()}"}
    if AUDIO == "pcm24k":
        session["audio"] = {"input": {"format": PCM24K}, "output": {"format": PCM24K}}
    client.session_update({"session": session})
    VoxEngine.send_media_between(call, client)
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
