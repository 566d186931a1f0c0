"""Voxy, an inbound phone agent: answers, bridges the call to the Realtime API, handles barge-in and
a tool call. Run it with ``voxline run examples/inbound_agent.py`` and call sip:agent@HOST:5060."""

import json

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

INSTRUCTIONS = (
    "You are Voxy, the friendly phone assistant of the Corner Shop. Keep answers short. "
    "The shop is open from nine to six, Monday to Saturday. To check an order, call check_order."
)
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


def check_order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped", "delivery": "tomorrow"}


async def on_call(event):
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        model="gpt-realtime",
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    client.session_update(
        {
            "session": {
                "type": "realtime",
                "instructions": INSTRUCTIONS,
                "tools": TOOLS,
                "tool_choice": "auto",
                "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
            }
        }
    )
    VoxEngine.send_media_between(call, client)
    client.response_create({})  # Voxy speaks first

    # Barge-in: the caller talks over Voxy -> stop playing at once (voxline truncates what wasn't heard).
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )

    def on_item_done(e):
        item = e.data["item"]
        if item.get("type") != "function_call" or item.get("name") != "check_order":
            return
        result = check_order(**json.loads(item.get("arguments") or "{}"))
        client.conversation_item_create(
            {
                "item": {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": json.dumps(result),
                }
            }
        )
        client.response_create({})

    client.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseOutputItemDone, on_item_done)
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
