"""The Realtime client as a media unit: format negotiation, G.711 pass-through, paced playout,
media events and barge-in truncation, against the fake server on a virtual media clock."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from voxline import OpenAI
from voxline.audio import FRAME_MS, PCM16_24K, PCMU_8K
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.eventtarget import Event
from voxline.media import send_media_between
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.testing import FakeRealtimeServer, RealtimeConnection, Say, ScriptedResponse

Ev = OpenAI.RealtimeAPIEvents
NO_VAD = {"session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as srv:
        yield srv


class Waiter:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def count(self, n: int, timeout: float = 5.0) -> list[Event]:
        async def wait() -> None:
            while len(self.events) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return self.events


async def bridged(
    server: FakeRealtimeServer, clock: VirtualMediaClock, **call_args: Any
) -> tuple[OpenAI.RealtimeAPIClient, LoopbackCall, RealtimeConnection]:
    client = await OpenAI.create_realtime_api_client(
        api_key="sk-t", base_url=server.base_url, media_clock=clock
    )
    connection = await server.wait_for_session()
    client.session_update(NO_VAD)
    call = LoopbackCall(clock, send_silence=False, **call_args)
    call.answer()
    send_media_between(call, client)
    await connection.wait_for_sent("session.updated", count=2)
    return client, call, connection


async def play_response(
    client: OpenAI.RealtimeAPIClient, connection: RealtimeConnection, done: Waiter, n: int
) -> list[dict[str, Any]]:
    client.response_create({})
    await done.count(n)  # every delta of the response is in the playout buffer once this is seen
    return [e for e in connection.sent if e["type"] == "response.output_audio.delta"]


def delta_bytes(deltas: list[dict[str, Any]], item_id: str | None = None) -> bytes:
    return b"".join(base64.b64decode(d["delta"]) for d in deltas if item_id in (None, d["item_id"]))


async def test_g711_call_negotiates_pcmu_and_bytes_pass_through_both_ways(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    voice = tone(440, 1000, 8000)
    server.script(ScriptedResponse(text="Hello caller", audio=tone(300, 700, 24000)))
    client, call, connection = await bridged(server, clock, voice=voice, voice_rate=8000)
    update = (await connection.wait_for("session.update", count=2))[-1]
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert connection.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert connection.session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    clock.advance(1000)
    await connection.wait_for("input_audio_buffer.append", count=50)
    assert connection.input_audio == ulaw_encode(voice)  # the caller's μ-law, byte for byte
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    deltas = await play_response(client, connection, done, 1)
    sent = delta_bytes(deltas)
    assert len(sent) == 700 * 8
    clock.advance(1000)
    heard = b"".join(r.frame.data for r in call.received)
    assert heard == sent  # the model's μ-law reaches the sink untouched (700 ms = 35 whole frames)
    assert all(r.frame.format == PCMU_8K for r in call.received)
    assert [r.frame.timestamp_ms for r in call.received] == list(range(0, 700, FRAME_MS))
    server.assert_no_violations()
    client.close()


async def test_formats_set_by_the_scenario_are_honoured_and_transcoded(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    client = await OpenAI.create_realtime_api_client(
        api_key="sk-t", base_url=server.base_url, media_clock=clock
    )
    connection = await server.wait_for_session()
    pcm = {"type": "audio/pcm", "rate": 24000}
    client.session_update(
        {
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": pcm, "turn_detection": None}, "output": {"format": pcm}},
            }
        }
    )
    call = LoopbackCall(clock, send_silence=False, voice=tone(440, 400, 8000), voice_rate=8000)
    call.answer()
    send_media_between(call, client)
    clock.advance(400)
    await connection.wait_for("input_audio_buffer.append", count=20)
    assert [e["type"] for e in connection.received].count("session.update") == 1  # no negotiation
    assert connection.session["audio"]["input"]["format"] == pcm
    assert abs(len(connection.input_audio) - 400 * PCM16_24K.bytes_per_ms) <= 2 * PCM16_24K.bytes_per_ms
    server.script(ScriptedResponse(text="ok", audio=tone(300, 200, 24000)))
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    await play_response(client, connection, done, 1)
    clock.advance(400)
    assert sum(len(r.frame.data) for r in call.received) == 200 * PCM16_24K.bytes_per_ms
    assert call.received[0].frame.format == PCM16_24K  # the call's own adapter converts to μ-law
    server.assert_no_violations()
    client.close()


async def test_media_started_and_ended_events(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    server.script(ScriptedResponse(text="Hi", audio=tone(300, 500, 24000)))
    client, _call, connection = await bridged(server, clock)
    started, ended, done = Waiter(), Waiter(), Waiter()
    client.add_event_listener(OpenAI.Events.WebSocketMediaStarted, started)
    client.add_event_listener(OpenAI.Events.WebSocketMediaEnded, ended)
    client.add_event_listener(Ev.ResponseDone, done)
    await play_response(client, connection, done, 1)
    clock.advance(20)
    assert len(started.events) == 1 and started.events[0].encoding == "audio/pcmu"
    clock.advance(480 + 980)
    assert ended.events == []  # not yet a full second of silence
    clock.advance(40)
    assert len(ended.events) == 1
    assert ended.events[0].media_info == {"duration": 0.5}
    client.close()


async def test_clear_silences_at_once_and_truncates_to_what_was_emitted(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    server.script(ScriptedResponse(text="A long answer", audio=tone(300, 2000, 24000)))
    client, call, connection = await bridged(server, clock)
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    deltas = await play_response(client, connection, done, 1)
    item_id = deltas[0]["item_id"]
    clock.advance(740)  # 38 frames delivered: at once (t=0), then on the ticks 20..740
    client.clear_media_buffer()
    frames_before = len(call.received)
    clock.advance(200)
    assert len(call.received) == frames_before == 38  # nothing more of the cleared stream
    truncate = (await connection.wait_for("conversation.item.truncate"))[0]
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": 760,
    }
    await connection.wait_for_sent("conversation.item.truncated")
    server.assert_no_violations()
    client.close()


@pytest.mark.parametrize("batch_ms", [FRAME_MS, 100])
@pytest.mark.parametrize("seed", range(12))
async def test_truncation_matches_what_the_carrier_really_played(
    server: FakeRealtimeServer, seed: int, batch_ms: int
) -> None:
    """Interrupt at random points, with a sink that acknowledges playout late and with jitter, and
    that takes audio 20 ms at a time or (like Twilio) in 100 ms batches, acknowledging each whole."""
    rng = random.Random(seed)
    clock = VirtualMediaClock()
    server.script(
        ScriptedResponse(
            outputs=[Say("first part", tone(300, 700, 24000)), Say("second", tone(500, 500, 24000))]
        )
    )
    client, call, connection = await bridged(
        server,
        clock,
        acknowledge=True,
        playout_delay_ms=rng.choice([0, 40, 100]),
        jitter_ms=rng.choice([0, 30]),
        seed=seed,
    )
    call.playout_batch_ms = batch_ms
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    deltas = await play_response(client, connection, done, 1)
    items = list(dict.fromkeys(d["item_id"] for d in deltas))
    assert len(items) == 2
    clock.advance(rng.randrange(0, 1500))
    assert {len(r.frame.data) for r in call.received} <= {8 * batch_ms}  # 700 + 500 ms: whole batches
    played = {item: 0 for item in items}
    first_ms = len(delta_bytes(deltas, items[0])) // 8
    total_played = call.played_ms(client)
    played[items[0]] = min(total_played, first_ms)
    played[items[1]] = max(0, total_played - first_ms)
    client.clear_media_buffer()
    await asyncio.sleep(0)
    client.input_audio_buffer_clear()  # a marker: everything sent before it has arrived
    await connection.wait_for("input_audio_buffer.clear")
    truncates = {e["item_id"]: e for e in connection.received if e["type"] == "conversation.item.truncate"}
    for item in items:
        full = len(delta_bytes(deltas, item)) // 8
        if item in truncates:
            # Reports come per piece the sink took: the truncation trails by less than one.
            assert played[item] - batch_ms <= truncates[item]["audio_end_ms"] <= played[item] + FRAME_MS
            assert 0 < truncates[item]["audio_end_ms"] < full
        else:
            # Not truncated: nothing (or less than the piece still playing) was heard, or all of it.
            assert played[item] <= batch_ms or played[item] >= full - batch_ms
    server.assert_no_violations()
    client.close()


async def test_nothing_is_truncated_when_nothing_was_interrupted(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    server.script(ScriptedResponse(text="short", audio=tone(300, 300, 24000)))
    client, _call, connection = await bridged(server, clock)
    client.clear_media_buffer()  # nothing played yet, nothing buffered
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    await play_response(client, connection, done, 1)
    clock.advance(2000)  # fully played
    client.clear_media_buffer()
    client.input_audio_buffer_clear()
    await connection.wait_for("input_audio_buffer.clear")
    assert not [e for e in connection.received if e["type"] == "conversation.item.truncate"]
    client.close()


async def test_auto_truncate_can_be_turned_off(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    server.script(ScriptedResponse(text="long", audio=tone(300, 1000, 24000)))
    client = await OpenAI.create_realtime_api_client(
        api_key="sk-t", base_url=server.base_url, media_clock=clock, auto_truncate=False
    )
    connection = await server.wait_for_session()
    call = LoopbackCall(clock, send_silence=False)
    call.answer()
    client.send_media_to(call)
    done = Waiter()
    client.add_event_listener(Ev.ResponseDone, done)
    await play_response(client, connection, done, 1)
    clock.advance(300)
    client.clear_media_buffer({"tag": None})
    client.input_audio_buffer_clear()
    await connection.wait_for("input_audio_buffer.clear")
    assert not [e for e in connection.received if e["type"] == "conversation.item.truncate"]
    client.close()


async def test_closing_the_client_detaches_its_media(server: FakeRealtimeServer) -> None:
    clock = VirtualMediaClock()
    client, call, _ = await bridged(server, clock)
    client.close()
    await client.wait_closed()
    assert call.media_source is None and client.media_closed
    clock.advance(100)  # the call keeps running; nothing raises


@pytest.mark.parametrize("seed", range(12))
async def test_over_rtp_truncation_is_what_the_sender_really_sent(
    server: FakeRealtimeServer, seed: int
) -> None:
    """A real SIP call on loopback: the model's answer goes out over RTP on a virtual clock and the
    caller barges in at a random moment. ``audio_end_ms`` is the model audio that had left the RTP
    socket: exactly what arrived at the caller's socket, to the frame, never more."""
    from tests.sip.loopback import loopback_call
    from voxline.rtp import RtpPacket
    from voxline.runtime.call import Call
    from voxline.runtime.legs import SipLeg

    rng = random.Random(seed)
    clock = VirtualMediaClock()
    calls: list[Call] = []
    heard: list[bytes] = []
    async with loopback_call(clock=clock, prepare=lambda callee: calls.append(Call(SipLeg(callee)))) as (
        caller,
        callee,
    ):
        assert caller.rtp is not None
        deliver = caller.rtp.datagram_received

        def arrived(data: bytes, addr: tuple[Any, ...]) -> None:  # every packet, before any buffering
            heard.append(RtpPacket.parse(data).payload)
            deliver(data, addr)

        caller.rtp.datagram_received = arrived  # type: ignore[method-assign]
        (call,) = calls
        client = await OpenAI.create_realtime_api_client(
            api_key="sk-t", base_url=server.base_url, media_clock=clock
        )
        connection = await server.wait_for_session()
        client.session_update(NO_VAD)
        send_media_between(call, client)
        await connection.wait_for_sent("session.updated", count=2)
        server.script(ScriptedResponse(outputs=[Say("an answer", tone(300, 1200, 24000))]))
        done = Waiter()
        client.add_event_listener(Ev.ResponseDone, done)
        deltas = await play_response(client, connection, done, 1)
        (item,) = dict.fromkeys(d["item_id"] for d in deltas)
        barge_in = rng.randrange(20, 1100)
        for _ in range(barge_in // 20):
            clock.advance(20)
            await asyncio.sleep(0)
        clock.advance(barge_in % 20)
        sender = callee.rtp.session  # type: ignore[union-attr]
        async with asyncio.timeout(5):  # every packet the call's sender sent has arrived
            while len(heard) < sender.stats["sent"]:
                await asyncio.sleep(0.005)
        received = sum(len(d) for d in heard if d != b"\xff" * 160) // 8  # the model's audio, in ms
        client.clear_media_buffer()
        client.input_audio_buffer_clear()  # a marker: everything sent before it has arrived
        await connection.wait_for("input_audio_buffer.clear")
        truncates = [e for e in connection.received if e["type"] == "conversation.item.truncate"]
        assert len(truncates) == 1 and truncates[0]["item_id"] == item
        assert truncates[0]["audio_end_ms"] == received  # to the frame: the sender's real position
        server.assert_no_violations()
        client.close()
