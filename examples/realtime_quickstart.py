"""The Realtime client on its own: configure a session, talk to the model, run a tool call.

    python examples/realtime_quickstart.py

With no ``OPENAI_API_KEY`` in the environment it starts voxline's fake OpenAI Realtime server on
127.0.0.1 (scripted answers, no network); with a key it talks to OpenAI. Every event the client
receives is printed, then the client's statistics.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

from voxline import OpenAI

Ev = OpenAI.RealtimeAPIEvents

TOOLS = [
    {
        "type": "function",
        "name": "check_order",
        "description": "Look up the delivery status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }
]


def check_order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped", "eta": "tomorrow"}


async def main() -> int:
    async with AsyncExitStack() as stack:
        api_key = os.environ.get("OPENAI_API_KEY")
        base_url = "https://api.openai.com/"
        if not api_key:
            from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.script(
                ScriptedResponse(function_calls=[FunctionCall("check_order", '{"order_id": "A-1042"}')]),
                ScriptedResponse(text="Good news: order A-1042 has shipped and arrives tomorrow."),
            )
            api_key, base_url = "sk-local-demo", server.base_url
            print(f"no OPENAI_API_KEY: using voxline's fake Realtime server at {server.ws_url}")

        finished = asyncio.Event()
        client = await OpenAI.create_realtime_api_client(
            api_key=api_key,
            base_url=base_url,
            statistics=True,
            on_web_socket_close=lambda e: print(f"  closed: {e}"),
        )

        def show(event: Any) -> None:
            data = event.data or {}
            detail = data.get("delta") or data.get("transcript") or data.get("type") or data.get("status", "")
            print(f"  {str(event.name).removeprefix('OpenAI.RealtimeAPI.'):<38} {str(detail)[:70]}")

        for name in Ev:
            client.add_event_listener(name, show)

        def on_function_call(event: Any) -> None:
            item = event.data["item"]
            if item.get("type") != "function_call":
                return
            result = check_order(**json.loads(item["arguments"]))
            print(f"  -> tool {item['name']}({item['arguments']}) = {result}")
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

        answers = 0

        def on_done(event: Any) -> None:
            nonlocal answers
            output = event.data["response"].get("output", [])
            if any(item.get("type") == "message" for item in output):
                answers += 1
                finished.set()

        client.add_event_listener(Ev.ResponseOutputItemDone, on_function_call)
        client.add_event_listener(Ev.ResponseDone, on_done)

        client.session_update(
            {
                "session": {
                    "type": "realtime",
                    "instructions": "You are Voxy, a shop's phone assistant. Use check_order for orders.",
                    "output_modalities": ["audio"],
                    "tools": TOOLS,
                }
            }
        )
        client.conversation_item_create(
            {
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Where is my order A-1042?"}],
                }
            }
        )
        client.response_create({})
        await asyncio.wait_for(finished.wait(), 30)
        stats = client.statistics()
        client.close()
        await client.wait_closed()
        print(
            f"done: {stats['responses']} responses, {stats['audio_received_ms']:.0f} ms of model audio, "
            f"{stats['messages_sent']} messages sent, {stats['messages_received']} received, "
            f"usage {stats['usage']}"
        )
        return 0 if answers else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
