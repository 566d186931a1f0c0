"""The Twilio stream endpoint over real loopback WebSockets, against the Twilio test caller."""

from __future__ import annotations

import asyncio

import numpy as np

from voxline.audio import PCMU_8K, Frame
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.carriers import CarrierStream, TwilioCarrierStream
from voxline.testing.carrier_callers import TwilioTestCaller, VirtualClock

from .conftest import ServerFactory


def prompt(ms: int, seed: int = 1) -> bytes:
    """μ-law audio that differs per seed (tone plus noise), so crossed streams would show."""
    rng = np.random.default_rng(seed)
    pcm = np.frombuffer(tone(300 + seed % 700, ms, 8000, amplitude=0.2), dtype="<i2").astype(np.int32)
    noisy = np.clip(pcm + rng.integers(-800, 800, pcm.size), -32768, 32767).astype("<i2")
    return ulaw_encode(noisy.tobytes())


async def test_echo_returns_the_prompt_byte_for_byte_and_marks_acknowledge_it(
    make_server: ServerFactory,
) -> None:
    frames: list[Frame] = []
    digits: list[str] = []
    acks: list[tuple[int, int | None]] = []

    async def bridge(stream: CarrierStream) -> None:
        def on_audio(frame: Frame) -> None:
            frames.append(frame)
            stream.send_audio(frame.data, source_ms=frame.timestamp_ms + 20)

        stream.on_audio = on_audio
        stream.on_dtmf = digits.append
        stream.on_acknowledged = lambda position, source: acks.append((position, source))
        await stream.wait_closed()

    server = await make_server(bridge)
    audio = prompt(2000)
    caller = TwilioTestCaller(
        server.ws_url("/twilio"),
        audio,
        custom_parameters={"From": "+15550100", "lang": "en"},
        dtmf=[(300, "4"), (600, "2")],
        mark_delay_ms=30,
        mark_jitter_ms=40,
        # Hang up once all audio came back and a mark after it was echoed (the tail mark follows
        # the last audio by up to two mark intervals).
        done_when=lambda c: len(c.received) == len(audio) and c.fully_acknowledged,
        linger_ms=10_000,
    )
    await caller.run()

    assert caller.errors == []
    assert bytes(caller.received) == audio
    assert bytes(caller.playback.played) == audio
    (stream,) = server.streams
    assert isinstance(stream, TwilioCarrierStream) and stream.kind == "twilio"
    assert (stream.stream_id, stream.call_id) == (caller.stream_sid, caller.call_sid)
    assert stream.custom_parameters == {"From": "+15550100", "lang": "en"}
    assert stream.media_format == PCMU_8K
    # Inbound: 20 ms frames with Twilio's timestamps, payloads as sent.
    assert [f.timestamp_ms for f in frames] == list(range(0, 2000, 20))
    assert b"".join(f.data for f in frames) == audio
    assert digits == ["4", "2"]
    # Every mark came back after its audio played; the last acknowledgement covers all audio.
    assert caller.marks_echoed == caller.marks_received and len(caller.marks_received) >= 20
    assert stream.sent_ms == stream.acknowledged_ms == 2000
    assert acks[-1] == (2000, 2000)
    assert [a[0] for a in acks] == sorted(a[0] for a in acks)
    await stream.wait_closed()
    assert stream.close_reason == "stop" and stream.close_code == 1000


async def test_barge_in_clear_drops_unplayed_audio_and_its_marks_never_count(
    make_server: ServerFactory,
) -> None:
    long_reply = prompt(3000, seed=7)

    async def bridge(stream: CarrierStream) -> None:
        # A model that answers with 3 s at once; a DTMF digit stands in for the caller barging in.
        stream.send_audio(long_reply)

        def barge_in(digit: str) -> None:
            stream.clear()

        stream.on_dtmf = barge_in
        await stream.wait_closed()

    server = await make_server(bridge)
    caller = TwilioTestCaller(server.ws_url("/twilio"), prompt(1000), dtmf=[(500, "1")], mark_jitter_ms=0)
    await caller.run()

    assert caller.errors == []
    assert caller.clears == 1
    cleared_at = caller.events.index("clear")
    # Nothing of the cleared reply is sent after the clear.
    assert "media" not in caller.events[cleared_at:]
    assert caller.playback.cleared_bytes > 0
    assert 0 < len(caller.playback.played) < len(long_reply)
    assert bytes(caller.playback.played) == long_reply[: len(caller.playback.played)]
    (stream,) = server.streams
    # Twilio echoed the marks of the cleared audio; none of them counted as played.
    assert stream.stats["marks_cleared"] > 0
    assert stream.acknowledged_ms <= len(caller.playback.played) // 8
    assert stream.acknowledged_ms < stream.sent_ms == 3000


async def settle(caller: TwilioTestCaller, streams: list[CarrierStream]) -> None:
    """Wait (real time, bounded) until both sides have read everything the other side wrote."""
    for _ in range(2000):
        stream = streams[0] if streams else None
        if (
            isinstance(stream, TwilioCarrierStream)
            and stream.stats["messages_in"] == caller.messages_sent
            and stream.queued_messages == 0
            and caller.messages_received == stream.stats["messages_out"]
        ):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("loopback did not settle")


async def test_barge_in_on_virtual_time_acknowledges_exactly_what_played(make_server: ServerFactory) -> None:
    long_reply = prompt(3000, seed=8)

    async def bridge(stream: CarrierStream) -> None:
        stream.send_audio(long_reply)
        stream.on_dtmf = lambda digit: stream.clear()
        await stream.wait_closed()

    server = await make_server(bridge)
    clock = VirtualClock()
    caller = TwilioTestCaller(
        server.ws_url("/twilio"),
        prompt(400),
        dtmf=[(200, "1")],
        clock=clock,
        mark_delay_ms=0,
        mark_jitter_ms=0,
        quiet_ms=100,
        linger_ms=400,
    )
    run = asyncio.create_task(caller.run())
    while not server.streams:
        await asyncio.sleep(0.001)
    # Step the caller 20 ms at a time, letting the loopback settle after each step.
    while not run.done():
        await settle(caller, server.streams)
        await clock.advance(20)
    await run

    assert caller.errors == [] and caller.clears == 1
    # The reply began playing at 0 ms; the barge-in came at 200 ms: exactly 200 ms were heard.
    assert bytes(caller.playback.played) == long_reply[: 200 * 8]
    (stream,) = server.streams
    assert stream.acknowledged_ms == 200
    assert stream.stats["marks_acknowledged"] == 2 and stream.stats["marks_cleared"] == 28


async def test_frames_can_be_consumed_with_async_for(make_server: ServerFactory) -> None:
    async def bridge(stream: CarrierStream) -> None:
        async for frame in stream:
            stream.send_audio(frame.data)

    server = await make_server(bridge)
    audio = prompt(600, seed=3)
    caller = TwilioTestCaller(
        server.ws_url("/twilio"), audio, done_when=lambda c: len(c.received) == len(audio)
    )
    await caller.run()
    assert caller.errors == [] and bytes(caller.received) == audio


async def test_runtime_close_hangs_up_the_stream(make_server: ServerFactory) -> None:
    async def bridge(stream: CarrierStream) -> None:
        stream.send_audio(b"\xff" * 160)
        await stream.close(reason="call ended")

    server = await make_server(bridge)
    caller = TwilioTestCaller(server.ws_url("/twilio"), prompt(2000), linger_ms=0)
    await caller.run()
    assert caller.close_code == 1000 and caller.close_reason == "call ended"
    assert caller.received == b"\xff" * 160  # what was queued before close still went out
    (stream,) = server.streams
    assert stream.is_closed
    stream.send_audio(b"\xff" * 160)  # after close: dropped and counted, not an error
    assert stream.stats["audio_dropped_after_close"] == 1


async def test_a_failing_stream_handler_closes_only_its_stream(make_server: ServerFactory) -> None:
    async def bridge(stream: CarrierStream) -> None:
        if stream.custom_parameters.get("fail"):
            raise RuntimeError("scenario bug")
        stream.on_audio = lambda frame: stream.send_audio(frame.data)
        await stream.wait_closed()

    server = await make_server(bridge)
    audio = prompt(1000, seed=5)
    bad = TwilioTestCaller(server.ws_url("/twilio"), prompt(1000), custom_parameters={"fail": "1"})
    good = TwilioTestCaller(
        server.ws_url("/twilio"), audio, done_when=lambda c: len(c.received) == len(audio)
    )
    await asyncio.gather(bad.run(), good.run())
    assert bad.close_code == 1011
    assert good.errors == [] and bytes(good.received) == audio and good.close_code == 1000


async def test_on_audio_that_raises_is_logged_once_and_the_stream_goes_on(make_server: ServerFactory) -> None:
    calls = 0

    async def bridge(stream: CarrierStream) -> None:
        def on_audio(frame: Frame) -> None:
            nonlocal calls
            calls += 1
            raise ValueError("bad sink")

        stream.on_audio = on_audio
        await stream.wait_closed()

    server = await make_server(bridge)
    caller = TwilioTestCaller(server.ws_url("/twilio"), prompt(400), linger_ms=0)
    await caller.run()
    (stream,) = server.streams
    assert calls == 20 and stream.stats["callback_errors"] == 20
    assert caller.close_code == 1000
