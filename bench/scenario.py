"""The benchmark scenario: answer, bridge the call to the Realtime API, clear on barge-in.

``examples/inbound_agent.py`` without the greeting and the tool call (the fake server answers every
utterance; a greeting would only shift the schedule). ``BENCH_AUDIO`` picks the model-side format:
``g711`` (default) lets voxline negotiate ``audio/pcmu`` -- μ-law straight through -- and ``pcm24k``
sets ``audio/pcm`` at 24 kHz both ways, so voxline transcodes μ-law <-> 24 kHz PCM16 on every frame.
The instructions carry the caller's name so the fake server can tell the calls apart.
"""

import gc
import json
import os
import sys
import time

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

AUDIO = os.environ.get("BENCH_AUDIO", "g711")


def _watch_gc(path: str) -> None:
    """Record the garbage collector's pauses (the bench reports them; the scenario runs per call, the
    hook is installed once per process)."""
    pauses: list[tuple[int, float]] = []
    when: list[int] = []
    started = [0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.monotonic_ns()
        else:
            pauses.append((info["generation"], (time.monotonic_ns() - started[0]) / 1e6))
            when.append(started[0])
            if len(pauses) % 100 == 0 or info["generation"] >= 1:
                with open(path, "w") as f:
                    json.dump(pauses, f)
                with open(path + ".t", "w") as f:
                    json.dump(when, f)

    gc.callbacks.append(callback)


if not getattr(sys, "_bench_gc_watched", False):
    sys._bench_gc_watched = True
    if os.environ.get("BENCH_GC_OUT"):
        _watch_gc(os.environ["BENCH_GC_OUT"])
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
