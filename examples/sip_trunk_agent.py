"""A SIP trunk agent: a carrier's (or PBX's) INVITE reaches voxline over SIP/RTP; the agent answers,
greets the caller by the number they called from, stops talking when interrupted and answers order
questions with a Python function.

    voxline run examples/sip_trunk_agent.py --sip 0.0.0.0:5060 --sip-allow 203.0.113.0/24

(docs/guides/sip-trunk.md; tests/test_transport_examples.py calls it over real SIP and RTP.)
"""

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

TOOLS = [
    {
        "type": "function",
        "name": "check_order",
        "description": "Look up the delivery status of an order by its number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }
]


def check_order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped"}


async def on_call(event):
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        model="gpt-realtime",
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    instructions = f"You answer the Corner Shop's phone. The caller's number is {event.callerid}."
    client.session_update({"session": {"type": "realtime", "instructions": instructions, "tools": TOOLS}})
    VoxEngine.send_media_between(call, client)  # G.711 both ways, no transcoding
    client.response_create({})
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    OpenAI.run_tools(client, {"check_order": check_order})
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
