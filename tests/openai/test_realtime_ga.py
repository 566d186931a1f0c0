"""The GA events beyond the reference, on a SIP call's sideband of the fake (real loopback sockets).

Each added constant is delivered by constant, by value and by provider type, from an event the fake
produces the way OpenAI does (``conversation.created``, which OpenAI's GA captures never showed, is
sent as is).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from voxline import OpenAI
from voxline.eventtarget import Event
from voxline.openai.events import ADDITIONS, GA_ADDITIONS, REALTIME_SERVER_TYPES
from voxline.realtime_server.server import RealtimeConnection
from voxline.testing import FakeRealtimeServer, ScriptedResponse

Ev = OpenAI.RealtimeAPIEvents
KEY = "sk-test-secret-key-123"
CALL = "rtc_479a275623b54bdb9b6fbae2f7cbd408"
ACCEPTED = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "audio": {"output": {"voice": "marin"}},
}
TYPE_OF = {constant: provider for provider, constant in REALTIME_SERVER_TYPES.items()}


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as srv:
        srv.accept_call(CALL, ACCEPTED)
        yield srv


async def sideband(server: FakeRealtimeServer) -> tuple[OpenAI.RealtimeAPIClient, RealtimeConnection]:
    client = await OpenAI.create_realtime_api_client(api_key=KEY, base_url=server.base_url, call_id=CALL)
    return client, await server.wait_for_session()


async def respond(client: OpenAI.RealtimeAPIClient, connection: RealtimeConnection) -> None:
    client.response_create()


async def clear(client: OpenAI.RealtimeAPIClient, connection: RealtimeConnection) -> None:
    fake = connection.server
    assert isinstance(fake, FakeRealtimeServer)
    fake.script(ScriptedResponse(text="A long answer that is still playing.", pace=1.0))
    client.response_create()
    await connection.wait_for_sent("output_audio_buffer.started")
    client.output_audio_buffer_clear()


async def dtmf(client: OpenAI.RealtimeAPIClient, connection: RealtimeConnection) -> None:
    connection.send_dtmf("7")


async def created(client: OpenAI.RealtimeAPIClient, connection: RealtimeConnection) -> None:
    connection.send_event(
        {
            "type": "conversation.created",
            "event_id": "event_c1",
            "conversation": {"id": "conv_1", "object": "realtime.conversation"},
        }
    )


Produce = Callable[[OpenAI.RealtimeAPIClient, RealtimeConnection], Awaitable[None]]
PRODUCE: dict[OpenAI.RealtimeAPIEvents, Produce] = {
    Ev.OutputAudioBufferStarted: respond,
    Ev.OutputAudioBufferStopped: respond,
    Ev.OutputAudioBufferCleared: clear,
    Ev.InputAudioBufferDTMFEventReceived: dtmf,
    Ev.ConversationCreated: created,
}


def test_every_ga_server_event_of_the_installed_spec_has_a_constant_and_the_additions_are_documented() -> (
    None
):
    import json
    from pathlib import Path

    spec = Path(__file__).resolve().parents[3] / "shared" / "openai-spec" / "openapi.json"
    if not spec.exists():
        pytest.skip(f"spec not found at {spec}")
    schemas = json.loads(spec.read_text())["components"]["schemas"]
    union = schemas["RealtimeServerEvent"].get("anyOf") or schemas["RealtimeServerEvent"]["oneOf"]
    ga_types = {schemas[ref["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["enum"][0] for ref in union}
    audio = {"response.output_audio.delta"}  # becomes media, never a listener event
    assert ga_types - audio <= set(REALTIME_SERVER_TYPES)
    assert set(GA_ADDITIONS) <= set(ADDITIONS)
    assert set(PRODUCE) == set(GA_ADDITIONS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "realtime-ga.md").read_text()
    for constant in GA_ADDITIONS:
        assert f"RealtimeAPIEvents.{constant.name}" in docs and TYPE_OF[constant] in docs


@pytest.mark.parametrize("constant", sorted(GA_ADDITIONS), ids=lambda c: c.name)
async def test_added_ga_event_reaches_listeners_by_constant_value_and_provider_type(
    server: FakeRealtimeServer, constant: OpenAI.RealtimeAPIEvents
) -> None:
    client, connection = await sideband(server)
    got: dict[str, asyncio.Queue[Event]] = {
        "constant": asyncio.Queue(),
        "value": asyncio.Queue(),
        "type": asyncio.Queue(),
    }
    client.add_event_listener(constant, got["constant"].put_nowait)
    client.add_event_listener(constant.value, got["value"].put_nowait)
    client.add_event_listener(TYPE_OF[constant], got["type"].put_nowait)
    await PRODUCE[constant](client, connection)
    sent = (await connection.wait_for_sent(TYPE_OF[constant]))[-1]
    for queue in got.values():
        event = await asyncio.wait_for(queue.get(), 5)
        assert event.name == constant and event.client is client
        assert event.data == sent
    server.assert_no_violations(ignore=("response_cancel_not_active",))
    client.close()
    await client.wait_closed()


async def test_a_sideband_starts_with_the_accepted_config_and_gets_no_audio(
    server: FakeRealtimeServer,
) -> None:
    client, connection = await sideband(server)
    created_session = connection.sent[0]
    assert created_session["type"] == "session.created"
    assert created_session["session"]["instructions"] == "Be brief."
    assert created_session["session"]["audio"]["output"]["voice"] == "marin"
    assert connection.call_id == CALL and "call_id=" + CALL in connection.ws.request.path  # type: ignore[union-attr]
    client.response_create()
    await connection.wait_for_sent("output_audio_buffer.stopped")
    kinds = [e["type"] for e in connection.sent]
    assert "response.output_audio.delta" not in kinds
    start = kinds.index("response.created")
    order = [
        k
        for k in kinds[start:]
        if k
        in (
            "output_audio_buffer.started",
            "response.output_audio.done",
            "response.done",
            "output_audio_buffer.stopped",
        )
    ]
    assert order == [
        "output_audio_buffer.started",
        "response.output_audio.done",
        "response.done",
        "output_audio_buffer.stopped",
    ]
    client.close()


async def test_output_audio_buffer_clear_sends_the_exact_event_and_stops_the_playback(
    server: FakeRealtimeServer,
) -> None:
    client, connection = await sideband(server)
    server.script(ScriptedResponse(text="Something long enough to interrupt, at real time.", pace=1.0))
    client.response_create()
    started = (await connection.wait_for_sent("output_audio_buffer.started"))[0]
    client.output_audio_buffer_clear({"event_id": "evt_clear"})
    received = await connection.wait_for("output_audio_buffer.clear")
    assert received[-1] == {"type": "output_audio_buffer.clear", "event_id": "evt_clear"}
    cleared = (await connection.wait_for_sent("output_audio_buffer.cleared"))[0]
    assert cleared["response_id"] == started["response_id"]
    done = (await connection.wait_for_sent("response.done"))[-1]
    assert done["response"]["status"] == "cancelled"
    server.assert_no_violations()
    client.close()


async def test_a_sideband_for_an_unknown_call_is_refused(server: FakeRealtimeServer) -> None:
    closes: list[dict[str, Any]] = []
    client = await OpenAI.create_realtime_api_client(
        api_key=KEY, base_url=server.base_url, call_id="rtc_nope", on_web_socket_close=closes.append
    )
    errors: asyncio.Queue[Event] = asyncio.Queue()
    client.add_event_listener(Ev.Error, errors.put_nowait)
    error = await asyncio.wait_for(errors.get(), 5)
    assert error.data["error"]["code"] == "call_not_found"
    await client.wait_closed()
