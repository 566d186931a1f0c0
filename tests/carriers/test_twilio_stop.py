"""After Twilio's `stop` the socket stays open a moment (the server drains, then closes); audio the
runtime's playout sends in that moment is dropped and counted, never an error."""

from __future__ import annotations

import asyncio
import base64
import json

from websockets.asyncio.client import connect

from voxline.carriers import CarrierStream

from .conftest import ServerFactory

STREAM = "MZ" + "1" * 32


async def test_audio_sent_after_stop_is_dropped_not_raised(make_server: ServerFactory) -> None:
    errors: list[BaseException] = []
    sent_after_stop = asyncio.Event()

    async def speaking_bridge(stream: CarrierStream) -> None:
        # Like a playout: one frame every 20 ms until the stream is closed.
        while not stream.is_closed:
            try:
                stream.send_audio(b"\xff" * 160, source_ms=0)
            except Exception as exc:
                errors.append(exc)
            if stream.stats.get("audio_dropped_after_close"):
                sent_after_stop.set()
            await asyncio.sleep(0)  # every turn of the loop, so the moment after `stop` is hit

    server = await make_server(speaking_bridge)
    async with connect(server.ws_url("/twilio")) as ws:
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM,
            "start": {
                "streamSid": STREAM,
                "callSid": "CA1",
                "accountSid": "AC1",
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start))
        payload = base64.b64encode(b"\xff" * 160).decode()
        await ws.send(json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": payload}}))
        await asyncio.sleep(0.1)
        await ws.send(json.dumps({"event": "stop", "streamSid": STREAM, "stop": {"callSid": "CA1"}}))
        # Keep reading (Twilio does) while the server drains and closes.
        try:
            async for _ in ws:
                pass
        except Exception:
            pass
    await asyncio.wait_for(server.streams[0].wait_closed(), 5)
    assert errors == []
    assert sent_after_stop.is_set()
