"""A VoxEngine WebSocket agent: a VoxEngine scenario (or any peer speaking its WebSocket media format)
sends the call's audio to voxline's /media WebSocket; custom parameters of its ``start`` message
arrive as ``call.custom_data()``.

    voxline run examples/voxengine_agent.py --sip off --http 0.0.0.0:8080 --token "$TOKEN"

(docs/guides/voxengine.md; tests/test_transport_examples.py calls it in VoxEngine's format.)
"""

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine


async def on_call(event):
    call = event.call
    language = call.custom_data().get("language", "English")
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    instructions = f"You are a helpful assistant. Speak {language}."
    client.session_update({"session": {"type": "realtime", "instructions": instructions}})
    VoxEngine.send_media_between(call, client)
    client.response_create({})
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
