"""Voxy hands the caller to a person, warm: the person is briefed before the caller is put through.

    HUMAN_URI=sip:desk@pbx.example.com voxline run examples/warm_transfer.py

1. The model calls ``transfer_to_human`` with a summary of the call.
2. The caller hears hold music (a ``Player`` looping ``HOLD_WAV``) while Voxy calls the person
   (``VoxEngine.call_sip``).
3. When the person answers, a second Realtime client briefs them with the summary (the caller does
   not hear it).
4. Once the briefing has played, ``VoxEngine.send_media_between(caller, human)`` bridges the two
   and the model leaves: both Realtime clients are closed.
5. Either side hanging up ends the session, and with it the other side's call.

When the person does not answer or is busy, the hold music stops and the model tells the caller.
"""

import json
import tempfile
from pathlib import Path

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav

TOOLS = [
    {
        "type": "function",
        "name": "transfer_to_human",
        "description": "Put the caller through to a person of the shop's staff.",
        "parameters": {
            "type": "object",
            "properties": {"summary": {"type": "string", "description": "What the caller wants, briefly"}},
            "required": ["summary"],
        },
    }
]


def secret(name, default=None):
    try:
        return VoxEngine.get_secret_value(name)
    except KeyError:
        return default


def hold_music():
    """``HOLD_WAV``, or a soft two-note chime made once (a stand-in for real music)."""
    path = secret("HOLD_WAV")
    if path:
        return path
    chime = Path(tempfile.gettempdir()) / "voxline-hold-chime.wav"
    if not chime.exists():
        notes = tone(523.0, 400, 8000, 0.15) + tone(659.0, 400, 8000, 0.15) + bytes(2 * 8 * 1200)
        write_wav(chime, notes, 8000)
    return str(chime)


async def connect_model(instructions, **session):
    client = await OpenAI.create_realtime_api_client(api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"))
    client.session_update({"session": {"type": "realtime", "instructions": instructions, **session}})
    return client


async def on_call(event):
    caller = event.call
    caller.answer()
    caller.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())
    agent = await connect_model(
        "You are Voxy of the Corner Shop. When the caller wants a person, call transfer_to_human.",
        tools=TOOLS,
    )
    VoxEngine.send_media_between(caller, agent)
    agent.response_create({})

    def give_up(tool_call_id, why):
        # Back to the model: the caller is still here.
        caller.stop_playback()
        VoxEngine.send_media_between(caller, agent)
        output = {"transferred": False, "reason": why}
        agent.conversation_item_create(
            {"item": {"type": "function_call_output", "call_id": tool_call_id, "output": json.dumps(output)}}
        )
        agent.response_create({})

    def transfer(tool_call_id, summary):
        VoxEngine.stop_media_between(caller, agent)
        caller.start_playback(hold_music(), loop=True)
        human = VoxEngine.call_sip(secret("HUMAN_URI", "sip:human@127.0.0.1:5090"))

        async def brief(e):
            briefer = await connect_model(
                "You brief a colleague who takes over a phone call. Say in one or two sentences what "
                f"the caller wants, then say you are putting them through. The caller wants: {summary}"
            )
            briefer.send_media_to(human)  # only the person hears the briefing

            def put_through(e):
                caller.stop_playback()
                VoxEngine.send_media_between(caller, human)
                briefer.close()
                agent.close()  # the model leaves the call

            briefer.add_event_listener(OpenAI.Events.WebSocketMediaEnded, put_through)
            briefer.response_create({})

        human.add_event_listener(CallEvents.Connected, brief)
        human.add_event_listener(CallEvents.Failed, lambda e: give_up(tool_call_id, f"{e.code} {e.reason}"))
        human.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())

    def on_item_done(e):
        item = e.data["item"]
        if item.get("type") == "function_call" and item.get("name") == "transfer_to_human":
            summary = json.loads(item.get("arguments") or "{}").get("summary", "")
            transfer(item["call_id"], summary)

    agent.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseOutputItemDone, on_item_done)
    agent.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: agent.clear_media_buffer()
    )


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
