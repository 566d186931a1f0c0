"""A Twilio agent: Twilio streams the call's audio to voxline's /twilio WebSocket (Media Streams,
μ-law 8 kHz); the agent greets the caller by the ``From`` custom parameter the TwiML passes, and
Twilio is told to drop its buffered audio when the caller interrupts (``clear``).

    voxline run examples/twilio_agent.py --sip off --http 0.0.0.0:8080 --token "$TOKEN" \\
        --twilio-auth-token "$TWILIO_AUTH_TOKEN" --public-url https://voice.example.com
    voxline twiml --stream-url "wss://voice.example.com/twilio?token=$TOKEN" --param From={{From}}

(docs/guides/twilio.md; tests/test_transport_examples.py calls it as Twilio does.)
"""

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine


async def on_call(event):
    call = event.call
    caller = call.custom_data().get("From", "unknown")
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    instructions = f"You are a friendly assistant. The caller's number is {caller}. Keep answers short."
    client.session_update({"session": {"type": "realtime", "instructions": instructions}})
    VoxEngine.send_media_between(call, client)
    client.response_create({})
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
