"""The carrier endpoints on uvloop (``voxline run --event-loop uvloop``): both socket layers, the
listener's hand-over of the upgrade included, on a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from voxline.audio import Frame
from voxline.carriers import CarrierConfig, CarrierEndpoints, CarrierStream
from voxline.carriers.http_guard import start_http_site
from voxline.testing.carrier_callers import TwilioTestCaller

uvloop = pytest.importorskip("uvloop")


async def echo_call(listener_kind: str) -> tuple[TwilioTestCaller, bytes, list[CarrierStream]]:
    streams: list[CarrierStream] = []

    async def bridge(stream: CarrierStream) -> None:
        streams.append(stream)

        def on_audio(frame: Frame) -> None:
            stream.send_audio(frame.data, source_ms=frame.timestamp_ms + 20)

        stream.on_audio = on_audio
        await stream.wait_closed()

    endpoints = CarrierEndpoints(bridge, CarrierConfig(token="t"))
    app = web.Application()
    if listener_kind == "ws_server":
        endpoints.add_to(app)
    else:
        app.add_routes(endpoints.routes())
    listener = await start_http_site(app, "127.0.0.1", 0)
    audio = bytes(range(256)) * 10  # 320 ms
    try:
        caller = TwilioTestCaller(
            f"ws://127.0.0.1:{listener.port}/twilio?token=t",
            audio,
            done_when=lambda c: len(c.received) >= len(audio) and c.fully_acknowledged,
            linger_ms=5000,
        )
        await caller.run()
        for stream in streams:
            await asyncio.wait_for(stream.wait_closed(), 2)
        assert listener.guard.stats["websocket_upgrades"] == (1 if listener_kind == "ws_server" else 0)
    finally:
        await endpoints.close()
        await listener.runner.cleanup()
    return caller, audio, streams


@pytest.mark.parametrize("listener_kind", ["ws_server", "aiohttp"])
def test_a_twilio_call_on_uvloop(listener_kind: str) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert "uvloop" in type(runner.get_loop()).__module__
        caller, audio, streams = runner.run(echo_call(listener_kind))
    assert caller.errors == []
    assert bytes(caller.received) == audio  # echoed byte for byte
    assert caller.marks_echoed  # marks went out and came back
    [stream] = streams
    assert stream.acknowledged_ms == len(audio) // 8
    assert (stream.close_code, stream.close_reason) == (1000, "stop")
