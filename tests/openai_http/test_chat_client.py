"""The Chat Completions client over real loopback HTTP: request shape, errors, cancel, queue, reuse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voxline.openai import ChatCompletionsAPIEvents as E
from voxline.openai import ClientClosedError
from voxline.openai.chat import ChatCompletionsAPIClient, create_chat_completions_api_client
from voxline.openai.params import ChatCompletionsAPIClientParameters
from voxline.testing.openai_http import ChatReply, FakeOpenAIHTTPServer, HTTPError, SSEReplay

from .conftest import API_KEY, FIXTURES, record_chat

USER = [{"role": "user", "content": "Hello"}]


async def new_client(fake: FakeOpenAIHTTPServer, **kwargs: Any) -> ChatCompletionsAPIClient:
    return await create_chat_completions_api_client(api_key=API_KEY, base_url=fake.base_url, **kwargs)


async def test_request_shape_headers_and_forced_streaming(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake, project="proj_123")
    await client.create_chat_completions(
        {"model": "gpt-4o", "messages": USER, "stream": False, "temperature": 0}
    )
    await client.create_chat_completions(
        {"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": False}}
    )
    await client.close()
    first, second = fake.requests_to("/v1/chat/completions")
    assert first.headers["Authorization"] == f"Bearer {API_KEY}"
    assert first.headers["OpenAI-Project"] == "proj_123"
    assert first.headers["Accept"] == "text/event-stream"
    assert first.body == {
        "model": "gpt-4o",
        "messages": USER,
        "stream": True,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    assert second.body["stream_options"] == {"include_usage": False}  # the caller's choice is kept


async def test_no_project_header_unless_given_and_camel_case_dict(fake: FakeOpenAIHTTPServer) -> None:
    client = await create_chat_completions_api_client({"apiKey": API_KEY, "baseUrl": fake.base_url})
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    assert "OpenAI-Project" not in fake.requests[0].headers


async def test_sequential_requests_reuse_one_connection(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    for _ in range(4):
        await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    assert len(fake.requests) == 4
    assert fake.connections == 1


async def test_events_are_delivered_to_constants_values_and_provider_names(
    fake: FakeOpenAIHTTPServer,
) -> None:
    fake.script_chat(ChatReply(text="Hi there"))
    client = await new_client(fake)
    by_constant: list[Any] = []
    by_value: list[Any] = []
    by_provider: list[Any] = []
    client.add_event_listener(E.ContentDone, by_constant.append)
    client.add_event_listener("OpenAI.ChatCompletionsAPI.ContentDone", by_value.append)
    client.add_event_listener("content.done", by_provider.append)
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    assert len(by_constant) == len(by_value) == len(by_provider) == 1
    event = by_constant[0]
    assert event.name == E.ContentDone and event.client is client
    assert event.data == {"type": "content.done", "content": "Hi there", "parsed": None}


async def test_connector_information_per_request(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    recorder = record_chat(client)
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    (info,) = recorder.of(E.ConnectorInformation)
    assert info["id"] == client.id()
    assert info["connectionId"] == client.web_socket_id()
    assert info["endpoint"] == f"{fake.base_url}v1/chat/completions"
    assert info["status"] == 200 and info["requestId"].startswith("req_")
    assert recorder.names()[0] == "ConnectorInformation"


@pytest.mark.parametrize(
    ("error", "status", "code", "message", "retry_after"),
    [
        (
            HTTPError(
                429, "Rate limit reached for gpt-4o.", "requests", "rate_limit_exceeded", retry_after=2
            ),
            429,
            "rate_limit_exceeded",
            "Rate limit reached for gpt-4o.",
            2.0,
        ),
        (HTTPError(500), 500, None, "The server had an error while processing your request.", None),
        (
            HTTPError(503, body=b"upstream overloaded"),
            503,
            None,
            "HTTP 503 Service Unavailable: upstream overloaded",
            None,
        ),
    ],
    ids=["429", "500", "503-not-json"],
)
async def test_http_errors_become_error_events(
    fake: FakeOpenAIHTTPServer,
    error: HTTPError,
    status: int,
    code: str | None,
    message: str,
    retry_after: float | None,
) -> None:
    fake.script_chat(error)
    client = await new_client(fake, statistics=True)
    recorder = record_chat(client)
    handle = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    assert await handle is None
    (data,) = recorder.of(E.ChatCompletionsAPIError)
    assert (data["status"], data["code"], data["message"], data["retry_after"]) == (
        status,
        code,
        message,
        retry_after,
    )
    assert handle.status == "failed" and handle.error == data
    assert recorder.of(E.Content) == []
    # The client stays usable after an error.
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    assert client.statistics()["errors"] == 1
    await client.close()


async def test_wrong_api_key_gives_401_with_openai_message(fake: FakeOpenAIHTTPServer) -> None:
    client = await create_chat_completions_api_client(api_key="sk-wrong-key-1234", base_url=fake.base_url)
    recorder = record_chat(client)
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    (data,) = recorder.of(E.ChatCompletionsAPIError)
    assert data["status"] == 401 and data["code"] == "invalid_api_key"
    assert data["message"].startswith("Incorrect API key provided")
    assert "sk-wrong-key-1234" not in json.dumps(data)  # OpenAI masks the key, so does the fake


async def test_mid_stream_error_chunk(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(
        ChatReply(
            text="one two three four",
            error_after=3,
            error={"message": "overloaded", "type": "server_error", "param": None, "code": "overloaded"},
        )
    )
    client = await new_client(fake)
    recorder = record_chat(client)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is None
    await client.close()
    assert len(recorder.of(E.Chunk)) == 3
    (data,) = recorder.of(E.ChatCompletionsAPIError)
    assert (data["status"], data["message"], data["code"]) == (200, "overloaded", "overloaded")
    assert recorder.of(E.Content) == [] and recorder.of(E.ContentDone) == []


async def test_dropped_stream(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="one two three four", drop_after=2))
    client = await new_client(fake)
    recorder = record_chat(client)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is None
    (data,) = recorder.of(E.ChatCompletionsAPIError)
    assert data["status"] is None and data["type"] == "network_error" and data["message"]
    assert recorder.of(E.Content) == []
    # A fresh connection serves the next request.
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()


async def test_stream_that_ends_without_done(fake: FakeOpenAIHTTPServer) -> None:
    body = (FIXTURES / "parse_nothing.sse").read_bytes().replace(b"data: [DONE]\n\n", b"")
    fake.script_chat(SSEReplay(body=body))
    client = await new_client(fake)
    recorder = record_chat(client)
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.close()
    (data,) = recorder.of(E.ChatCompletionsAPIError)
    assert data["code"] == "stream_interrupted" and "[DONE]" in data["message"]


async def test_data_that_is_not_a_chunk_is_unknown(fake: FakeOpenAIHTTPServer) -> None:
    body = (FIXTURES / "parse_nothing.sse").read_bytes()
    extra = b'data: {"object":"","prompt_filter_results":[]}\n\ndata: not json\n\n'
    fake.script_chat(SSEReplay(body=extra + body))
    client = await new_client(fake)
    recorder = record_chat(client)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()
    assert recorder.of(E.Unknown) == [{"object": "", "prompt_filter_results": []}, {"raw": "not json"}]


async def test_cancel_in_a_listener_stops_events_at_once(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="a b c d e f g h i j k l m n o p", piece_chars=2))
    client = await new_client(fake, statistics=True)
    recorder = record_chat(client)

    def barge_in(event: Any) -> None:
        if event.data["delta"]:
            client.cancel()

    client.add_event_listener(E.ContentDelta, barge_in)
    handle = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    assert await handle is None
    assert handle.status == "cancelled"
    # The whole stream may sit in one TCP read; still nothing after the cancelling event.
    names = recorder.names(skip=("ConnectorInformation",))
    assert names == ["Chunk", "ContentDelta", "Chunk", "ContentDelta"]
    await client.drain()
    assert recorder.names(skip=("ConnectorInformation",)) == names
    assert client.statistics()["cancelled"] == 1
    await client.close()


async def test_cancel_mid_stream_closes_the_connection(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="Hello there, how are you today?", hold_after=3))
    client = await new_client(fake)
    recorder = record_chat(client)
    two_deltas = asyncio.Event()
    client.add_event_listener(
        E.ContentDelta, lambda e: two_deltas.set() if len(recorder.of(E.ContentDelta)) == 2 else None
    )
    handle = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await asyncio.wait_for(two_deltas.wait(), 5)
    seen = len(recorder.events)
    assert handle.cancel() is True
    assert handle.cancel() is False
    await asyncio.wait_for(fake.disconnected.wait(), 5)  # the server saw the client go away
    fake.release()
    assert await handle is None
    assert len(recorder.events) == seen
    assert fake.disconnects == 1
    # Next request: served, on a new connection (the aborted one was not put back in the pool).
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    assert fake.connections == 2
    await client.close()


async def test_new_request_replaces_the_one_in_flight(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="old answer that is long", hold_after=2), ChatReply(text="new"))
    client = await new_client(fake)
    recorder = record_chat(client)
    started = asyncio.Event()
    client.add_event_listener(E.Chunk, lambda e: started.set())
    first = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await asyncio.wait_for(started.wait(), 5)
    second = client.create_chat_completions(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Stop"}]}
    )
    assert first.status == "cancelled"
    fake.release()
    assert await second is not None and await first is None
    assert [c["choices"][0]["message"]["content"] for c in recorder.of(E.Content)] == ["new"]
    await client.close()


async def test_queued_request_starts_after_the_previous_one(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="first", hold_after=2), ChatReply(text="second"))
    client = await new_client(fake)
    recorder = record_chat(client)
    started = asyncio.Event()
    client.add_event_listener(E.Chunk, lambda e: started.set())
    first = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    second = client.create_chat_completions({"model": "gpt-4o", "messages": USER}, queue=True)
    await asyncio.wait_for(started.wait(), 5)
    # The first is streaming (held by the server); the second has not been sent.
    assert (first.status, second.status) == ("streaming", "queued")
    assert len(fake.requests) == 1
    fake.release()
    assert (await first)["choices"][0]["message"]["content"] == "first"
    assert (await second)["choices"][0]["message"]["content"] == "second"
    assert [c["choices"][0]["message"]["content"] for c in recorder.of(E.Content)] == ["first", "second"]
    await client.close()


async def test_close_is_idempotent_cancels_and_refuses_new_requests(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="never finished", hold_after=1))
    client = await new_client(fake)
    handle = client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await asyncio.sleep(0)
    closing = client.close()
    assert client.close() is closing
    await closing
    assert handle.status == "cancelled" and client.closed
    with pytest.raises(ClientClosedError, match="closed"):
        client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    fake.release()


@pytest.mark.parametrize(
    ("parameters", "error", "match"),
    [
        ("hello", TypeError, "parameters must be a dict"),
        ({"messages": USER}, ValueError, r"parameters\['model'\]"),
        ({"model": "gpt-4o", "messages": "hi"}, TypeError, r"parameters\['messages'\] must be a list"),
        ({"model": "gpt-4o", "messages": []}, ValueError, "must not be empty"),
        ({"model": "gpt-4o", "messages": USER, "x": object()}, TypeError, "JSON-serialisable"),
    ],
)
async def test_bad_request_parameters_are_refused_by_name(
    fake: FakeOpenAIHTTPServer, parameters: Any, error: type[Exception], match: str
) -> None:
    client = await new_client(fake)
    with pytest.raises(error, match=match):
        client.create_chat_completions(parameters)
    with pytest.raises(TypeError, match="queue must be a bool"):
        client.create_chat_completions({"model": "gpt-4o", "messages": USER}, queue="yes")  # type: ignore[arg-type]
    await client.close()
    assert fake.requests == []


async def test_bad_factory_parameters() -> None:
    with pytest.raises(TypeError, match="api_key"):
        await create_chat_completions_api_client(base_url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="http"):
        await create_chat_completions_api_client(api_key="k", base_url="wss://api.openai.com/")
    with pytest.raises(ValueError, match="context_budget_chars"):
        await create_chat_completions_api_client(api_key="k", context_budget_chars=0)
    with pytest.raises(TypeError, match="unknown parameter"):
        await create_chat_completions_api_client(api_key="k", model="gpt-4o")


async def test_openai_compatible_base_url_with_version_path(fake: FakeOpenAIHTTPServer) -> None:
    client = await create_chat_completions_api_client(api_key=API_KEY, base_url=f"{fake.base_url}v1")
    assert await client.create_chat_completions({"model": "llama", "messages": USER}) is not None
    await client.close()
    assert fake.requests[0].path == "/v1/chat/completions"


async def test_statistics_count_requests_bytes_usage_and_time_to_first_token(
    fake: FakeOpenAIHTTPServer,
) -> None:
    ticks = iter(range(100))
    params = ChatCompletionsAPIClientParameters(api_key=API_KEY, base_url=fake.base_url, statistics=True)
    client = ChatCompletionsAPIClient(params, clock=lambda: float(next(ticks)))
    fake.script_chat(ChatReply(text="abcdefgh", piece_chars=4), ChatReply(text="xy"))
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    await client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    stats = client.statistics()
    await client.close()
    assert stats["requests"] == 2 and stats["completed"] == 2 and stats["errors"] == 0
    assert stats["bytes_sent"] == sum(len(json.dumps(r.body, ensure_ascii=False)) for r in fake.requests)
    assert stats["bytes_received"] > 0
    assert stats["usage"]["completion_tokens"] == 3
    assert stats["usage"]["total_tokens"] == stats["usage"]["prompt_tokens"] + 3
    # The clock ticks once at send and once at the first token of each request: 1 s each.
    assert stats["ttft_last_ms"] == 1000.0 and stats["ttft_avg_ms"] == 1000.0


@pytest.mark.parametrize("privacy", [False, True])
async def test_trace_file(
    fake: FakeOpenAIHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privacy: bool
) -> None:
    monkeypatch.setenv("VOXLINE_TRACE_DIR", str(tmp_path))
    client = await new_client(fake, trace=True, privacy=privacy)
    recorder = record_chat(client)
    await client.create_chat_completions(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "secret"}]}
    )
    await client.close()
    (trace,) = tmp_path.glob("chat-completions-*.jsonl")
    assert recorder.of(E.ConnectorInformation)[0]["trace"] == str(trace.resolve())
    text = trace.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert API_KEY not in text
    assert entries[0]["dir"] == "out" and entries[-1]["dir"] == "in"
    if privacy:
        assert "secret" not in text and all(set(e) == {"t", "dir", "type", "size"} for e in entries)
    else:
        assert entries[0]["msg"]["messages"] == [{"role": "user", "content": "secret"}]
        assert entries[1]["msg"]["object"] == "chat.completion.chunk"


async def test_a_raising_listener_does_not_break_the_stream(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    recorder = record_chat(client)

    def broken(event: Any) -> None:
        raise RuntimeError("listener bug")

    client.add_event_listener(E.Chunk, broken)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()
    assert len(recorder.of(E.Content)) == 1


async def test_a_call_session_closes_its_clients(fake: FakeOpenAIHTTPServer, tmp_path: Path) -> None:
    from voxline.openai.responses import create_responses_api_client
    from voxline.runtime.context import current_session
    from voxline.runtime.session import Scenario, Session

    scenario = tmp_path / "scenario.py"
    scenario.write_text("")
    session = Session(Scenario(scenario))
    token = current_session.set(session)
    try:
        chat = await new_client(fake)
        responses = await create_responses_api_client(api_key=API_KEY, base_url=fake.base_url)
    finally:
        current_session.reset(token)
    session.terminate()
    assert chat.closed and responses.closed
    await chat.wait_closed()
    await responses.wait_closed()


def test_the_call_summary_example_compiles() -> None:
    import py_compile

    example = Path(__file__).resolve().parents[2] / "examples" / "call_summary.py"
    py_compile.compile(str(example), doraise=True)


async def test_statistics_are_off_unless_asked(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    with pytest.raises(RuntimeError, match="statistics=True"):
        client.statistics()
    await client.close()


def test_requests_need_a_running_loop() -> None:
    client = ChatCompletionsAPIClient(ChatCompletionsAPIClientParameters(api_key=API_KEY))
    with pytest.raises(RuntimeError, match="running event loop"):
        client.create_chat_completions({"model": "gpt-4o", "messages": USER})
    client.close()


async def test_openai_base_url_environment_variable(
    fake: FakeOpenAIHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake.base_url}v1")
    client = await create_chat_completions_api_client(api_key=API_KEY)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()
    # An explicit base_url wins over the environment.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = await create_chat_completions_api_client({"apiKey": API_KEY, "baseUrl": fake.base_url})
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()
    assert len(fake.requests) == 2


async def test_malformed_chunk_is_an_error_not_a_crash(fake: FakeOpenAIHTTPServer) -> None:
    bad = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"function": {}}]}}],
    }
    second = {**bad, "choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "x"}}]}}]}
    body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in (bad, second)) + b"data: [DONE]\n\n"
    fake.script_chat(SSEReplay(body=body), ChatReply(text="fine"))
    client = await new_client(fake)
    recorder = record_chat(client)
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is None
    (error,) = recorder.of(E.ChatCompletionsAPIError)
    assert error["code"] == "invalid_chunk" and "index" in error["message"]
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()


async def test_warm_up_opens_the_connection_the_first_request_uses(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    assert await client.warm_up() is True
    assert [r.path for r in fake.requests] == ["/v1/models"]
    assert await client.create_chat_completions({"model": "gpt-4o", "messages": USER}) is not None
    await client.close()
    assert fake.connections == 1  # the request reused the warmed connection


async def test_warm_up_reports_an_unreachable_server() -> None:
    client = await create_chat_completions_api_client(api_key=API_KEY, base_url="http://127.0.0.1:9/")
    assert await client.warm_up() is False
    await client.close()


async def test_repr_names_the_client_and_hides_the_key(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    assert repr(client) == f"<ChatCompletionsAPIClient {client.id()} {fake.base_url}v1/chat/completions>"
    await client.close()
    assert repr(client).endswith(" closed>") and API_KEY not in repr(client)


async def test_a_server_that_does_not_stream(fake: FakeOpenAIHTTPServer) -> None:
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    fake.script_chat(
        HTTPError(200, body=json.dumps(completion).encode()), HTTPError(200, body=b"<html>hi</html>")
    )
    client = await new_client(fake)
    recorder = record_chat(client)
    assert await client.create_chat_completions({"model": "m", "messages": USER}) == completion
    assert recorder.of(E.Content) == [completion]
    assert await client.create_chat_completions({"model": "m", "messages": USER}) is None
    (error,) = recorder.of(E.ChatCompletionsAPIError)
    assert error["code"] == "invalid_response" and "expected an event stream" in error["message"]
    await client.close()
