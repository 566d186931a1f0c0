"""The VoxEngine-format media endpoint: several tagged streams on one socket, over real loopback."""

from __future__ import annotations

import base64
import json

from websockets.asyncio.client import connect

from voxline.audio import PCM16_16K, PCMU_8K, Frame
from voxline.audio.tone import tone
from voxline.carriers import CarrierStream, VoxEngineCarrierStream
from voxline.testing.carrier_callers import VoxEngineStreamSpec, VoxEngineTestCaller

from .conftest import ServerFactory
from .test_twilio_endpoint import prompt


async def test_two_tagged_streams_on_one_socket_echo_separately(make_server: ServerFactory) -> None:
    frames: dict[str | None, list[Frame]] = {}

    async def bridge(stream: CarrierStream) -> None:
        got = frames.setdefault(stream.tag, [])

        def on_audio(frame: Frame) -> None:
            got.append(frame)
            stream.send_audio(frame.data)

        stream.on_audio = on_audio
        await stream.wait_closed()

    server = await make_server(bridge)
    narrow = prompt(1000, seed=11)
    wide = tone(500, 1000, 16000)
    caller = VoxEngineTestCaller(
        server.ws_url("/media"),
        [
            VoxEngineStreamSpec("caller", narrow, "ULAW", {"callId": "c-1", "lang": "de"}),
            VoxEngineStreamSpec("agent", wide, "PCM16"),
        ],
        done_when=lambda c: (
            len(c.received("caller")) == len(narrow) and len(c.received("agent")) == len(wide)
        ),
        linger_ms=10_000,
    )
    await caller.run()

    assert caller.errors == []
    assert caller.received("caller") == narrow
    assert caller.received("agent") == wide
    streams = {s.tag: s for s in server.streams}
    assert set(streams) == {"caller", "agent"}
    caller_stream, agent_stream = streams["caller"], streams["agent"]
    assert isinstance(caller_stream, VoxEngineCarrierStream) and caller_stream.kind == "voxengine"
    assert caller_stream.media_format == PCMU_8K and agent_stream.media_format == PCM16_16K
    # customParameters travelled as a JSON string and arrive as a dict.
    assert caller_stream.custom_parameters == {"callId": "c-1", "lang": "de"}
    assert agent_stream.custom_parameters == {}
    # The format has no playout acknowledgement.
    assert caller_stream.acknowledged_ms is None and caller_stream.sent_ms == 1000
    assert [f.timestamp_ms for f in frames["agent"]] == list(range(0, 1000, 20))
    assert all(len(f.data) == 640 for f in frames["agent"])
    # The server's outbound streams mirror the tags and formats.
    assert caller.server_streams["caller"].start["mediaFormat"]["encoding"] == "ULAW"
    assert caller.server_streams["agent"].start["mediaFormat"] == {
        "encoding": "PCM16",
        "sampleRate": 16000,
        "channels": 1,
    }
    for stream in server.streams:
        await stream.wait_closed()
        assert stream.close_reason == "stop"
    # Our stop per tag answered the caller's stop.
    assert all(s.stopped for s in caller.server_streams.values())


async def test_clear_for_one_tag_drops_its_audio_only(make_server: ServerFactory) -> None:
    async def bridge(stream: CarrierStream) -> None:
        if stream.tag == "a":
            stream.send_audio(b"\xff" * 8000)  # 1 s: written at once on the fast path, queued on aiohttp's
            stream.clear()  # ... and cleared: the peer drops what it has, the writer what it holds
            stream.send_audio(b"\x7f" * 800)  # then 100 ms that stays
        else:
            stream.send_audio(b"\xd5" * 1600)
        await stream.wait_closed()

    server = await make_server(bridge)
    caller = VoxEngineTestCaller(
        server.ws_url("/media"),
        [VoxEngineStreamSpec("a", prompt(200), "ULAW"), VoxEngineStreamSpec("b", b"\xd5" * 1600, "ALAW")],
        done_when=lambda c: len(c.received("a")) == 800 and len(c.received("b")) == 1600,
        linger_ms=10_000,
    )
    await caller.run()
    assert caller.errors == []
    assert caller.clears == {"a": 1}
    if server.listener == "aiohttp":  # the writer task had not run: none of the 1 s went out
        assert caller.received("a") == b"\x7f" * 800
    else:
        assert caller.received("a") == b"\xff" * 8000 + b"\x7f" * 800
        # The clear reached the caller right behind the second: it dropped (nearly) all of it.
        assert caller.server_streams["a"].playback.cleared_bytes >= 8000 - 160
    assert caller.received("b") == b"\xd5" * 1600


async def test_a_stream_can_stop_and_start_again_on_the_same_tag(make_server: ServerFactory) -> None:
    server = await make_server()
    payload = base64.b64encode(bytes(range(256)) + bytes(64)).decode()  # 20 ms of PCM8
    async with connect(server.ws_url("/media")) as ws:
        for round_ in range(2):
            base = round_ * 3
            await ws.send(json.dumps({"event": "start", "sequenceNumber": base, "start": {"tag": "t"}}))
            await ws.send(
                json.dumps(
                    {
                        "event": "media",
                        "sequenceNumber": base + 1,
                        "media": {"tag": "t", "chunk": 1, "timestamp": 0, "payload": payload},
                    }
                )
            )
            started = json.loads(await ws.recv())
            echoed = json.loads(await ws.recv())
            assert started["event"] == "start" and started["start"]["tag"] == "t"
            assert echoed["event"] == "media" and echoed["media"]["payload"] == payload
            await ws.send(json.dumps({"event": "stop", "sequenceNumber": base + 2, "stop": {"tag": "t"}}))
            stopped = json.loads(await ws.recv())
            assert stopped["event"] == "stop" and stopped["stop"]["mediaInfo"]["bytesSent"] == 320
    assert len(server.streams) == 2
    assert all(s.close_reason == "stop" for s in server.streams)
