"""The Realtime client against the fake OpenAI server, over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voxline import OpenAI
from voxline.eventtarget import Event
from voxline.openai.events import REALTIME_SERVER_TYPES
from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse

Ev = OpenAI.RealtimeAPIEvents
KEY = "sk-test-secret-key-123"


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as srv:
        yield srv


class Recorder:
    """Collects events of one name; ``await next()`` waits for the next one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.all: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.all.append(event)
        self.queue.put_nowait(event)

    async def next(self, timeout: float = 5.0) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)


class CloseRecorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.done.set()


async def connect(server: FakeRealtimeServer, **kwargs: Any) -> OpenAI.RealtimeAPIClient:
    return await OpenAI.create_realtime_api_client(api_key=KEY, base_url=server.base_url, **kwargs)


# -- events ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider_type", "constant"), sorted(REALTIME_SERVER_TYPES.items()))
async def test_server_event_reaches_listeners_by_constant_value_and_provider_type(
    server: FakeRealtimeServer, provider_type: str, constant: OpenAI.RealtimeAPIEvents
) -> None:
    client = await connect(server)
    by_constant, by_value, by_type = Recorder(), Recorder(), Recorder()
    client.add_event_listener(constant, by_constant)
    client.add_event_listener(constant.value, by_value)
    client.add_event_listener(provider_type, by_type)
    connection = await server.wait_for_session()
    payload = {"type": provider_type, "event_id": "event_test", "marker": [1, 2]}
    connection.send_event(payload)
    for recorder in (by_constant, by_value, by_type):
        event = await recorder.next()
        while event.data.get("event_id") != "event_test":  # session.created/updated come first
            event = await recorder.next()
        assert event.name == constant
        assert event.client is client
        assert event.data == payload
    client.close()
    await client.wait_closed()


async def test_events_without_a_constant_arrive_as_unknown(server: FakeRealtimeServer) -> None:
    client = await connect(server)
    unknown = Recorder()
    client.add_event_listener(Ev.Unknown, unknown)
    connection = await server.wait_for_session()
    payload = {"type": "brand_new.started", "event_id": "e1", "response_id": "r1"}
    connection.send_event(payload)
    connection.send_event({"type": "brand_new.event", "x": {"y": 1}})
    assert (await unknown.next()).data == payload
    assert (await unknown.next()).data == {"type": "brand_new.event", "x": {"y": 1}}
    client.close()


async def test_connection_events_come_first(server: FakeRealtimeServer) -> None:
    client = await connect(server)
    order: list[str] = []
    info, http = Recorder(), Recorder()
    client.add_event_listener(Ev.HTTPResponse, http)
    client.add_event_listener(Ev.ConnectorInformation, info)
    for name in (Ev.HTTPResponse, Ev.ConnectorInformation, Ev.SessionCreated):
        client.add_event_listener(name, lambda e: order.append(str(e.name)))
    created = Recorder()
    client.add_event_listener(Ev.SessionCreated, created)
    await created.next()
    assert order == [str(Ev.HTTPResponse), str(Ev.ConnectorInformation), str(Ev.SessionCreated)]
    response = (await http.next()).data
    assert response["status"] == 101
    assert response["headers"]["Upgrade"].lower() == "websocket"
    data = (await info.next()).data
    assert data["applicationVersion"] == __import__("voxline").__version__
    assert data["id"] == client.id()
    assert data["endpoint"] == server.ws_url
    assert KEY not in json.dumps(data)
    assert client.web_socket_id()
    client.close()


async def test_ga_wire_only_bearer_auth_and_no_beta_header(server: FakeRealtimeServer) -> None:
    client = await connect(server, model="gpt-realtime-mini")
    connection = await server.wait_for_session()
    headers = {k.lower(): v for k, v in connection.headers.items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "openai-beta" not in headers
    assert connection.ws.request is not None
    assert connection.ws.request.path == "/v1/realtime?model=gpt-realtime-mini"
    client.close()


async def test_transcription_type_opens_a_transcription_session(server: FakeRealtimeServer) -> None:
    client = await connect(server, type=OpenAI.RealtimeAPIClientType.TRANSCRIPTION)
    created = Recorder()
    client.add_event_listener(Ev.SessionCreated, created)
    session = (await created.next()).data["session"]
    assert session["type"] == "transcription"
    client.session_update(
        {"session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}
    )
    await server.wait_for_sent("session.updated")
    server.assert_no_violations()
    client.close()


# -- commands -------------------------------------------------------------------------------------

ITEM = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}

COMMANDS: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
    (
        "session_update",
        {"session": {"type": "realtime", "instructions": "You are Voxy."}},
        {"type": "session.update", "session": {"type": "realtime", "instructions": "You are Voxy."}},
    ),
    ("response_create", {}, {"type": "response.create"}),
    (
        "response_create",
        {"response": {"instructions": "Be brief.", "output_modalities": ["text"]}},
        {"type": "response.create", "response": {"instructions": "Be brief.", "output_modalities": ["text"]}},
    ),
    ("response_cancel", {}, {"type": "response.cancel"}),
    ("conversation_item_create", {"item": ITEM}, {"type": "conversation.item.create", "item": ITEM}),
    (
        "conversation_item_create",
        {"previous_item_id": "root", "item": ITEM, "event_id": "evt_1"},
        {"type": "conversation.item.create", "previous_item_id": "root", "item": ITEM, "event_id": "evt_1"},
    ),
    (
        "conversation_item_delete",
        {"item_id": "item_x"},
        {"type": "conversation.item.delete", "item_id": "item_x"},
    ),
    (
        "conversation_item_retrieve",
        {"item_id": "item_x"},
        {"type": "conversation.item.retrieve", "item_id": "item_x"},
    ),
    (
        "conversation_item_truncate",
        {"item_id": "item_x", "content_index": 0, "audio_end_ms": 1500},
        {"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, "audio_end_ms": 1500},
    ),
    ("input_audio_buffer_clear", None, {"type": "input_audio_buffer.clear"}),
    ("input_audio_buffer_commit", None, {"type": "input_audio_buffer.commit"}),
]


@pytest.mark.parametrize(("method", "parameters", "wire"), COMMANDS)
async def test_each_command_sends_the_exact_event_and_it_is_valid(
    server: FakeRealtimeServer, method: str, parameters: dict[str, Any] | None, wire: dict[str, Any]
) -> None:
    client = await connect(server)
    connection = await server.wait_for_session()
    if parameters is None:
        getattr(client, method)()
    else:
        getattr(client, method)(parameters)
    received = await connection.wait_for(wire["type"])
    assert received[-1] == wire
    assert next(iter(received[-1])) == "type"
    # Commands on an empty conversation get OpenAI's normal error replies; nothing else is tolerated.
    server.assert_no_violations(
        ignore=("response_cancel_not_active", "item_not_found", "input_audio_buffer_commit_empty")
    )
    client.close()


async def test_commands_are_sent_in_call_order(server: FakeRealtimeServer) -> None:
    client = await connect(server)
    connection = await server.wait_for_session()
    for i in range(50):
        client.conversation_item_create(
            {"item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": str(i)}]}}
        )
    received = await connection.wait_for("conversation.item.create", count=50)
    assert [e["item"]["content"][0]["text"] for e in received] == [str(i) for i in range(50)]
    server.assert_no_violations()
    client.close()


async def test_commands_keep_call_order_when_the_socket_pushes_back(server: FakeRealtimeServer) -> None:
    """A slow reader fills the socket (flow control): commands still go out whole and in order."""
    client = await connect(server)
    connection = await server.wait_for_session()
    ws = client._ws
    assert ws is not None

    def item(i: int) -> dict[str, object]:
        content = [{"type": "input_text", "text": f"{i}:" + "x" * 100_000}]
        return {"item": {"type": "message", "role": "user", "content": content}}

    connection.ws.transport.pause_reading()  # the server stops reading: buffers fill up
    for i in range(60):
        client.conversation_item_create(item(i))
    await asyncio.sleep(0.05)
    assert ws.write_paused  # the transport told us its buffer is over the high-water mark
    connection.ws.transport.resume_reading()
    received = await connection.wait_for("conversation.item.create", count=60, timeout=20)
    texts = [e["item"]["content"][0]["text"] for e in received]
    assert [t.split(":")[0] for t in texts] == [str(i) for i in range(60)]
    assert all(len(t) == len(str(i)) + 1 + 100_000 for i, t in enumerate(texts))
    server.assert_no_violations()
    client.close()


async def test_a_text_turn_and_a_function_call_round_trip(server: FakeRealtimeServer) -> None:
    server.script(
        ScriptedResponse(function_calls=[FunctionCall("check_order", '{"order_id":"42"}', call_id="call_1")]),
        ScriptedResponse(text="Your order ships today."),
    )
    client = await connect(server)
    done, arguments = Recorder(), Recorder()
    client.add_event_listener(Ev.ResponseDone, done)
    client.add_event_listener(Ev.ResponseFunctionCallArgumentsDone, arguments)
    client.session_update({"session": {"type": "realtime", "output_modalities": ["text"]}})
    client.conversation_item_create({"item": ITEM})
    client.response_create({})
    call = (await arguments.next()).data
    assert (call["name"], call["call_id"], json.loads(call["arguments"])) == (
        "check_order",
        "call_1",
        {"order_id": "42"},
    )
    first = (await done.next()).data["response"]
    assert first["status"] == "completed"
    assert first["output"][0]["type"] == "function_call"
    client.conversation_item_create(
        {"item": {"type": "function_call_output", "call_id": "call_1", "output": '{"status":"shipped"}'}}
    )
    client.response_create({})
    second = (await done.next()).data["response"]
    assert second["output"][0]["content"][0]["text"] == "Your order ships today."
    server.assert_no_violations()
    client.close()


async def test_a_raising_listener_does_not_stop_delivery(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connect(server)

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    after = Recorder()
    client.add_event_listener(Ev.SessionCreated, broken)
    client.add_event_listener(Ev.SessionCreated, after)
    client.add_event_listener(Ev.SessionUpdated, after)
    with caplog.at_level(logging.ERROR):
        await after.next()
        client.session_update({"session": {"type": "realtime", "instructions": "x"}})
        assert (await after.next()).name == Ev.SessionUpdated
    assert "listener bug" in caplog.text
    client.remove_event_listener(Ev.SessionUpdated)
    client.session_update({"session": {"type": "realtime", "instructions": "y"}})
    await server.wait_for_sent("session.updated", count=2)
    await asyncio.sleep(0.05)
    assert after.queue.empty()
    client.close()


# -- closing and faults ---------------------------------------------------------------------------


async def test_close_reports_once_and_later_commands_raise(server: FakeRealtimeServer) -> None:
    closes = CloseRecorder()
    client = await connect(server, on_web_socket_close=closes)
    client.response_create({})  # queued before close(): still sent
    client.close()
    client.close()
    await client.wait_closed()
    assert closes.events == [{"code": 1000, "reason": "", "was_clean": True}]
    assert await server.wait_for("response.create")
    with pytest.raises(OpenAI.ClientClosedError, match="closed"):
        client.session_update({"session": {"type": "realtime"}})


async def test_server_close_reaches_on_web_socket_close(server: FakeRealtimeServer) -> None:
    closes = CloseRecorder()
    client = await connect(server, on_web_socket_close=closes)
    connection = await server.wait_for_session()
    connection.close(4001, "going away")
    await asyncio.wait_for(closes.done.wait(), 5)
    assert closes.events == [{"code": 4001, "reason": "going away", "was_clean": True}]
    assert client.closed


async def test_bad_key_gives_error_then_close_3000(server: FakeRealtimeServer) -> None:
    closes = CloseRecorder()
    client = await OpenAI.create_realtime_api_client(
        api_key="wrong-key", base_url=server.base_url, on_web_socket_close=closes
    )
    errors = Recorder()
    client.add_event_listener(Ev.Error, errors)
    error = (await errors.next()).data
    assert error["error"]["code"] == "invalid_api_key"
    await asyncio.wait_for(closes.done.wait(), 5)
    assert closes.events[0]["code"] == 3000
    assert closes.events[0]["reason"] == "invalid_request_error.invalid_api_key"


async def test_refused_handshake_makes_the_factory_raise(server: FakeRealtimeServer) -> None:
    server.refuse_handshake(403, "Project does not have access to model", code="model_not_found")
    with pytest.raises(OpenAI.RealtimeAPIError) as info:
        await connect(server)
    assert info.value.status == 403
    assert info.value.code == "model_not_found"
    assert "Project does not have access to model" in str(info.value)
    assert KEY not in str(info.value)


async def test_unreachable_endpoint_makes_the_factory_raise() -> None:
    with pytest.raises(OpenAI.RealtimeAPIError, match="cannot connect"):
        await OpenAI.create_realtime_api_client(api_key=KEY, base_url="http://127.0.0.1:9/")


async def test_socket_dropped_mid_response(server: FakeRealtimeServer) -> None:
    server.script(ScriptedResponse(text="A long answer that never ends", drop_after_ms=200))
    closes = CloseRecorder()
    client = await connect(server, on_web_socket_close=closes)
    client.response_create({})
    await asyncio.wait_for(closes.done.wait(), 5)
    assert closes.events == [{"code": 1006, "reason": "", "was_clean": False}]
    with pytest.raises(OpenAI.ClientClosedError):
        client.response_create({})


async def test_garbage_frames_are_reported_and_the_session_goes_on(server: FakeRealtimeServer) -> None:
    client = await connect(server)
    errors, updated = Recorder(), Recorder()
    client.add_event_listener(Ev.WebSocketError, errors)
    client.add_event_listener(Ev.SessionUpdated, updated)
    connection = await server.wait_for_session()
    connection.send_binary(b"\x00\xff")
    connection.send_text("this is not json")
    connection.send_text('{"no_type": true}')
    problems = [(await errors.next()).data["error"] for _ in range(3)]
    assert "binary" in problems[0] and "non-JSON" in problems[1] and "type" in problems[2]
    client.session_update({"session": {"type": "realtime", "instructions": "still here"}})
    assert (await updated.next()).data["session"]["instructions"] == "still here"
    client.close()


# -- trace, privacy, statistics -------------------------------------------------------------------


async def test_trace_records_every_message_without_secrets(
    server: FakeRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXLINE_TRACE_DIR", str(tmp_path))
    client = await connect(server, trace=True)
    info = Recorder()
    client.add_event_listener(Ev.ConnectorInformation, info)
    trace_path = Path((await info.next()).data["trace"])
    client.session_update({"session": {"type": "realtime", "instructions": "traced"}})
    await server.wait_for_sent("session.updated")
    await asyncio.sleep(0.05)
    client.close()
    await client.wait_closed()
    text = trace_path.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    out_types = [e["msg"]["type"] for e in entries if e["dir"] == "out"]
    in_types = [e["msg"].get("type") for e in entries if e["dir"] == "in"]
    assert out_types == ["session.update"]
    assert in_types[:2] == ["session.created", "session.updated"]
    assert entries[-1]["msg"]["code"] == 1000
    assert KEY not in text and "Bearer" not in text


async def test_privacy_keeps_payloads_out_of_logs_and_traces(
    server: FakeRealtimeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("VOXLINE_TRACE_DIR", str(tmp_path))
    with caplog.at_level(logging.DEBUG, logger="voxline.openai"):
        client = await connect(server, trace=True, privacy=True)
        updated = Recorder()
        client.add_event_listener(Ev.SessionUpdated, updated)
        client.session_update({"session": {"type": "realtime", "instructions": "SECRET-INSTRUCTIONS"}})
        event = await updated.next()
        client.close()
        await client.wait_closed()
    assert event.data["session"]["instructions"] == "SECRET-INSTRUCTIONS"  # the scenario still sees it
    assert "session.update" in caplog.text
    assert "SECRET-INSTRUCTIONS" not in caplog.text
    trace = next(tmp_path.glob("realtime-*.jsonl")).read_text()
    assert "SECRET-INSTRUCTIONS" not in trace
    first = json.loads(trace.splitlines()[0])
    assert set(first) == {"t", "dir", "type", "size"}


async def test_statistics_after_a_scripted_turn(server: FakeRealtimeServer) -> None:
    pcm = b"\x10\x00" * 24000  # one second of 24 kHz PCM16
    server.script(
        ScriptedResponse(
            text="Hello there", audio=pcm, usage={"input_tokens": 7, "output_tokens": 5, "total_tokens": 12}
        )
    )
    client = await connect(server, statistics=True)
    done = Recorder()
    client.add_event_listener(Ev.ResponseDone, done)
    client.response_create({})
    await done.next()
    stats = client.statistics()
    assert stats["responses"] == 1
    assert stats["usage"] == {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12}
    assert stats["audio_received_ms"] == 1000.0
    assert stats["messages_sent"] == 1
    assert stats["messages_received"] >= 10
    assert stats["first_audio_latency"]["count"] == 1
    assert stats["first_audio_latency"]["last_ms"] >= 0
    client.close()


async def test_statistics_are_off_unless_asked_for(server: FakeRealtimeServer) -> None:
    client = await connect(server)
    with pytest.raises(RuntimeError, match="statistics=True"):
        client.statistics()
    client.close()
