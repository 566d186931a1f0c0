"""The scenario under test: a shop assistant that greets, stops talking when interrupted and looks
orders up with a Python function (``OpenAI.run_tools``). Run it for real with
``voxline run examples/testing/agent.py``; test it with ``pytest examples/testing``."""

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
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    client.session_update(
        {
            "session": {
                "type": "realtime",
                "instructions": "You are the Corner Shop's assistant.",
                "tools": TOOLS,
            }
        }
    )
    VoxEngine.send_media_between(call, client)
    client.response_create({})  # greet first
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    OpenAI.run_tools(client, {"check_order": check_order})
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
