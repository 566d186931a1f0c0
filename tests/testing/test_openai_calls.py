"""The OpenAI SIP call-control fake against voxline's RealtimeCallsClient (loopback HTTP): bodies
validated like OpenAI's, its errors surfacing as RealtimeCallError with OpenAI's fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from voxline.openai.calls import OpenAICall, RealtimeCallError, RealtimeCallsClient
from voxline.testing import FakeOpenAICalls

KEY = "sk-test-calls-0001"
SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "Hi."}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAICalls]:
    async with FakeOpenAICalls(api_key=KEY) as calls:
        yield calls


@pytest.fixture
async def client(fake: FakeOpenAICalls) -> AsyncIterator[RealtimeCallsClient]:
    calls = RealtimeCallsClient(KEY, fake.base_url)
    yield calls
    await calls.aclose()


def ring(fake: FakeOpenAICalls, call_id: str = "rtc_1") -> OpenAICall:
    return OpenAICall(fake.incoming_call_event(call_id))


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({**SESSION, "audio": {"output": {"speed": 3}}}, "integer_above_max_value", "audio.output.speed"),
        ({**SESSION, "voice_of": "marin"}, "unknown_parameter", "voice_of"),
        (
            {**SESSION, "tools": [{"type": "mcp", "server_label": "x"}]},
            "missing_required_parameter",
            "tools[0].server_url",
        ),
        ({**SESSION, "type": "transcription"}, "invalid_value", "type"),
        ({"model": "gpt-realtime"}, "missing_required_parameter", "type"),
    ],
)
async def test_a_malformed_accept_gets_openais_400_and_the_call_stays_pending(
    fake: FakeOpenAICalls, client: RealtimeCallsClient, session: dict[str, Any], code: str, param: str
) -> None:
    call = ring(fake)
    with pytest.raises(RealtimeCallError) as info:
        await client.accept(call, session)
    error = info.value
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", code, param)
    assert fake.calls["rtc_1"].state == "pending" and not call.accepted
    await client.accept(call, SESSION)  # a good one still goes through
    assert call.accepted and fake.calls["rtc_1"].session == SESSION


async def test_refer_and_reject_bodies_are_checked_by_the_client_and_by_the_fake(
    fake: FakeOpenAICalls, client: RealtimeCallsClient
) -> None:
    call = ring(fake)
    with pytest.raises(ValueError, match="target_uri"):
        await client.refer(call, "+14155550123")  # not a URI: refused before sending
    with pytest.raises(ValueError, match="status_code"):
        await client.reject(call, 200)
    assert not fake.requests
    with pytest.raises(RealtimeCallError) as info:
        await client.refer(call, "tel:+14155550123")  # not accepted yet
    assert (info.value.status, info.value.code) == (400, "call_not_active")
    await client.reject(call)
    assert fake.calls["rtc_1"].reject_status == 603 and call.ended
    assert fake.rejected[0].body is None


async def test_the_fake_refuses_what_openai_refuses(fake: FakeOpenAICalls) -> None:
    ring(fake)
    wrong_key = RealtimeCallsClient("sk-wrong-key-0000", fake.base_url)
    with pytest.raises(RealtimeCallError) as info:
        await wrong_key.hangup("rtc_1")
    assert (info.value.status, info.value.code) == (401, "invalid_api_key")
    await wrong_key.aclose()
    client = RealtimeCallsClient(KEY, fake.base_url)
    with pytest.raises(RealtimeCallError) as info:
        await client.accept("rtc_unknown", SESSION)
    assert (info.value.status, info.value.code, info.value.param) == (404, "call_not_found", "call_id")
    await client.accept("rtc_1", SESSION)
    with pytest.raises(RealtimeCallError) as info:
        await client.accept("rtc_1", SESSION)
    assert info.value.code == "call_not_pending"
    # Refer's body has additionalProperties: false in OpenAI's schema.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as raw:
        response = await raw.post(
            f"{fake.base_url}v1/realtime/calls/rtc_1/refer", json={"target_uri": "tel:+1", "note": "x"}
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_parameter"
    await client.aclose()


async def test_a_network_failure_is_a_call_error_without_status() -> None:
    client = RealtimeCallsClient(KEY, "http://127.0.0.1:9/")
    with pytest.raises(RealtimeCallError) as info:
        await client.hangup("rtc_1")
    assert info.value.status is None and info.value.type == "network_error"
    await client.aclose()


def test_the_incoming_call_reads_the_invite_headers(fake: FakeOpenAICalls) -> None:
    call = ring(fake)
    assert (call.caller_id(), call.destination()) == ("+14155550100", "+14155550199")
    assert call.header("cseq") == "851287 INVITE" and call.headers()["Max-Forwards"] == "63"
    with pytest.raises(ValueError, match="call_id"):
        OpenAICall({"type": "realtime.call.incoming", "data": {"sip_headers": []}})
    with pytest.raises(ValueError, match=r"realtime\.call\.incoming"):
        OpenAICall({"type": "response.completed", "data": {}})
