"""Connecting: URL, headers, keys, models, refusals, session.created — as the live GA service does it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxline.testing import FakeRealtimeServer

from .conftest import KEY, open_client


async def closed_with(
    server: FakeRealtimeServer, query: str, headers: dict[str, str]
) -> tuple[dict[str, Any], int, str]:
    """Connect (expecting 101), read the error event, then the close frame."""
    async with connect(server.ws_url + query, additional_headers=headers) as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code is not None
        return error, ws.close_code, ws.close_reason or ""


async def test_urls(server: FakeRealtimeServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/"
    assert server.ws_url == f"ws://127.0.0.1:{server.port}/v1/realtime"


async def test_session_created_with_ga_defaults(server: FakeRealtimeServer) -> None:
    client, created = await open_client(server)
    assert created["type"] == "session.created"
    assert created["event_id"].startswith("event_")
    session = created["session"]
    assert session["object"] == "realtime.session"
    assert session["type"] == "realtime"
    assert session["id"].startswith("sess_")
    assert session["model"] == "gpt-realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "alloy",
        "speed": 1.0,
    }
    assert session["max_output_tokens"] == "inf"
    assert isinstance(session["expires_at"], int)
    connection = await server.wait_for_session()
    assert connection.id == session["id"]
    await client.ws.close()


async def test_transcription_intent_gets_a_transcription_session(server: FakeRealtimeServer) -> None:
    client, created = await open_client(server, "?intent=transcription")
    session = created["session"]
    assert session["object"] == "realtime.transcription_session"
    assert session["type"] == "transcription"
    assert "output_modalities" not in session
    await client.ws.close()


async def test_missing_authorization_closes_3000(server: FakeRealtimeServer) -> None:
    error, code, reason = await closed_with(server, "?model=gpt-realtime", {})
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] is None
    assert error["error"]["message"] == "Missing bearer or basic authentication in header"
    assert code == 3000
    assert reason == "invalid_request_error"
    assert server.sessions == []
    assert (await server.wait_for_rejection()).close_code == 3000


async def test_wrong_key_closes_3000_with_reason(server: FakeRealtimeServer) -> None:
    error, code, reason = await closed_with(
        server, "?model=gpt-realtime", {"Authorization": "Bearer nope-123456789"}
    )
    assert error["error"]["code"] == "invalid_api_key"
    assert "nope-123456789" not in error["error"]["message"]  # keys are never echoed whole
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")


async def test_configured_keys_only() -> None:
    async with FakeRealtimeServer(api_keys={"ek_ephemeral"}) as server:
        _, code, _ = await closed_with(server, "?model=gpt-realtime", KEY)
        assert code == 3000
        client, created = await open_client(server, headers={"Authorization": "Bearer ek_ephemeral"})
        assert created["type"] == "session.created"
        await client.ws.close()


async def test_beta_header_is_fatal(server: FakeRealtimeServer) -> None:
    headers = {**KEY, "OpenAI-Beta": "realtime=v1"}
    error, code, reason = await closed_with(server, "?model=gpt-realtime", headers)
    assert error["error"]["code"] == "beta_api_shape_disabled"
    assert (code, reason) == (4000, "invalid_request_error.beta_api_shape_disabled")


async def test_missing_model_closes_4000(server: FakeRealtimeServer) -> None:
    error, code, reason = await closed_with(server, "", KEY)
    assert error["error"]["code"] == "missing_model"
    assert "model" in error["error"]["message"]
    assert (code, reason) == (4000, "invalid_request_error.missing_model")


async def test_unknown_model_when_models_are_configured() -> None:
    async with FakeRealtimeServer(models={"gpt-realtime"}) as server:
        error, code, _ = await closed_with(server, "?model=gpt-9", KEY)
        assert (error["error"]["code"], code) == ("invalid_model", 4000)


async def test_refused_handshake_has_status_and_openai_error_body(server: FakeRealtimeServer) -> None:
    server.refuse_handshake(429, "You exceeded your current quota.", code="insufficient_quota", times=1)
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url + "?model=gpt-realtime", additional_headers=KEY)
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert body == {
        "error": {
            "message": "You exceeded your current quota.",
            "type": "invalid_request_error",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    # times=1: the next handshake is accepted again.
    client, created = await open_client(server)
    assert created["type"] == "session.created"
    await client.ws.close()


async def test_refusal_lasts_until_accepted_again(server: FakeRealtimeServer) -> None:
    server.refuse_handshake(401, "Incorrect API key provided.", code="invalid_api_key")
    for _ in range(2):
        with pytest.raises(InvalidStatus):
            await connect(server.ws_url + "?model=gpt-realtime", additional_headers=KEY)
    server.accept_handshakes()
    client, _ = await open_client(server)
    await client.ws.close()
    with pytest.raises(ValueError, match="status"):
        server.refuse_handshake(200, "fine")


async def test_wrong_path_is_404(server: FakeRealtimeServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{server.port}/v1/realtimes?model=gpt-realtime", additional_headers=KEY)
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["message"] == "Invalid URL (GET /v1/realtimes)"


async def test_port_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeRealtimeServer().port
