"""Voxy calls out: dials a SIP number, and when it answers bridges it to the Realtime API.

    voxline run examples/outbound_agent.py --start-session

An outbound session is started without an inbound call (``--start-session``); the scenario dials on
``AppEvents.Started`` the URI in the ``OUTBOUND_URI`` secret, with digest credentials from
``SIP_USER``/``SIP_PASSWORD`` when the trunk asks for them.
"""

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine


def secret(name, default=None):
    try:
        return VoxEngine.get_secret_value(name)
    except KeyError:
        return default


def on_started(event):
    call = VoxEngine.call_sip(
        secret("OUTBOUND_URI", "sip:callee@127.0.0.1:5080"),
        caller_id=secret("OUTBOUND_CALLER_ID", "4155550100"),
        headers={"X-Campaign": "spring-sale"},
        auth_user=secret("SIP_USER"),
        password=secret("SIP_PASSWORD"),
    )

    async def on_connected(e):
        client = await OpenAI.create_realtime_api_client(
            api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
            on_web_socket_close=lambda e: call.hangup(),
        )
        client.session_update(
            {
                "session": {
                    "type": "realtime",
                    "instructions": "You are Voxy from the Corner Shop, calling about the sale. Be brief.",
                }
            }
        )
        VoxEngine.send_media_between(call, client)
        client.response_create({})
        client.add_event_listener(
            OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
        )

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.Failed, lambda e: VoxEngine.terminate())
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.Started, on_started)
