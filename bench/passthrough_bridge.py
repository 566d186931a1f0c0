"""The control: a bare pass-through bridge, Twilio Media Streams <-> Realtime API, μ-law straight through.

What the issue's "100-line pass-through bridge" column stands for, on the same machine, callers and
fake server as voxline: per Twilio WebSocket (``/twilio``) one Realtime WebSocket; caller ``media``
payloads go out as ``input_audio_buffer.append`` without decoding (both are base64 μ-law), model
``response.output_audio.delta`` goes back as Twilio ``media`` at once (unpaced: Twilio buffers), and
``input_audio_buffer.speech_started`` becomes a Twilio ``clear``. No marks, no truncation, no
playout, no scenario: none of voxline's features. Same environment as voxline (``OPENAI_BASE_URL``);
``BENCH_EVENT_LOOP=uvloop`` runs it on uvloop, for the comparison with ``voxline run --event-loop uvloop``.

    python bench/passthrough_bridge.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection, connect


async def model_to_caller(model: ClientConnection, caller: web.WebSocketResponse, sid: str) -> None:
    async for message in model:
        event: dict[str, Any] = json.loads(message)
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            await caller.send_str(
                f'{{"event":"media","streamSid":"{sid}","media":{{"payload":"{event["delta"]}"}}}}'
            )
        elif kind == "input_audio_buffer.speech_started":
            await caller.send_str(f'{{"event":"clear","streamSid":"{sid}"}}')


async def twilio(request: web.Request) -> web.WebSocketResponse:
    caller = web.WebSocketResponse(compress=False)
    await caller.prepare(request)
    base = os.environ["OPENAI_BASE_URL"].replace("http://", "ws://").rstrip("/")
    model: ClientConnection | None = None
    pump: asyncio.Task[None] | None = None
    try:
        async for message in caller:
            if message.type is not WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            kind = event.get("event")
            if kind == "media" and model is not None:
                payload = event["media"]["payload"]
                await model.send(f'{{"type":"input_audio_buffer.append","audio":"{payload}"}}')
            elif kind == "start":
                start = event["start"]
                model = await connect(
                    f"{base}/v1/realtime?model=gpt-realtime",
                    additional_headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"},
                    compression=None,
                )
                pcmu = {"type": "audio/pcmu"}
                session = {
                    "type": "realtime",
                    "instructions": f"bench-call:{start.get('customParameters', {}).get('From', '')}",
                    "audio": {"input": {"format": pcmu}, "output": {"format": pcmu}},
                }
                await model.send(json.dumps({"type": "session.update", "session": session}))
                pump = asyncio.create_task(model_to_caller(model, caller, start["streamSid"]))
            elif kind == "stop":
                break
    finally:
        if pump is not None:
            pump.cancel()
        if model is not None:
            await model.close()
    return caller


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/twilio", twilio)
    loop = None
    if os.environ.get("BENCH_EVENT_LOOP") == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, loop=loop)


if __name__ == "__main__":
    main()
