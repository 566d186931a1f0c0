"""100 concurrent Twilio streams on loopback against the echo bridge: no frame lost, none crossed."""

from __future__ import annotations

import asyncio

from voxline.testing.carrier_callers import TwilioTestCaller

from .conftest import ServerFactory
from .test_twilio_endpoint import prompt

CALLERS = 100
STREAM_MS = 2000


async def test_100_concurrent_twilio_callers_get_every_frame_back(make_server: ServerFactory) -> None:
    server = await make_server()
    audios = [prompt(STREAM_MS, seed=i) for i in range(CALLERS)]
    callers = [
        TwilioTestCaller(
            server.ws_url("/twilio"),
            audio,
            seed=i,
            mark_jitter_ms=20,
            done_when=lambda c: len(c.received) == STREAM_MS * 8 and c.fully_acknowledged,
            linger_ms=10_000,
        )
        for i, audio in enumerate(audios)
    ]
    await asyncio.gather(*(caller.run() for caller in callers))

    for caller, audio in zip(callers, audios, strict=True):
        assert caller.errors == []
        assert caller.media_received == STREAM_MS // 20
        assert bytes(caller.received) == audio  # its own audio, complete and in order
        assert caller.marks_echoed == caller.marks_received
        assert caller.close_code == 1000
    assert len(server.streams) == CALLERS
    for stream in server.streams:
        await stream.wait_closed()
        assert stream.stats["frames_in"] == STREAM_MS // 20
        assert stream.sent_ms == stream.acknowledged_ms == STREAM_MS
    assert server.endpoints.active_sockets == 0
