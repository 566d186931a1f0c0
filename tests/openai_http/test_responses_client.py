"""The Responses client over real loopback HTTP: every event type, chaining, input forms, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from voxline.openai import ClientClosedError
from voxline.openai import ResponsesAPIEvents as R
from voxline.openai.events import RESPONSES_SERVER_TYPES
from voxline.openai.responses import ResponsesAPIClient, create_responses_api_client
from voxline.testing.openai_http import FakeOpenAIHTTPServer, HTTPError, RawEvents, ResponsesReply

from .conftest import API_KEY, SPEC_EXAMPLES, record_responses

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


async def new_client(fake: FakeOpenAIHTTPServer, **kwargs: Any) -> ResponsesAPIClient:
    return await create_responses_api_client(api_key=API_KEY, base_url=fake.base_url, **kwargs)


def spec_events() -> dict[str, dict[str, Any]]:
    """One payload per event type of the spec's ResponseStreamEvent union (its example when it parses)."""
    examples = json.loads(SPEC_EXAMPLES.read_text())["responses_stream"]
    events = {}
    for n, (event_type, entry) in enumerate(sorted(examples.items())):
        try:
            payload = json.loads(entry["example"] or "")
        except ValueError:
            payload = {"type": event_type}
        payload["type"] = event_type
        payload["sequence_number"] = n
        events[event_type] = payload
    return events


async def test_every_event_type_reaches_its_constant(fake: FakeOpenAIHTTPServer) -> None:
    events = spec_events()
    assert len(events) == 58
    assert set(RESPONSES_SERVER_TYPES) <= set(events)  # every constant has a spec event type
    future = {"type": "response.something_new.delta", "sequence_number": 99, "delta": "?"}
    middle = [e for t, e in events.items() if t not in TERMINAL] + [future]
    fake.script_responses(*(RawEvents(events=[*middle, events[t]]) for t in TERMINAL))
    client = await new_client(fake)
    recorder = record_responses(client)
    for _ in TERMINAL:
        await client.create_responses({"model": "gpt-4o", "input": "hi"})
    await client.close()

    received = [e for e in recorder.events if e.name not in (R.ConnectorInformation, R.ResponsesAPIError)]
    sent = [e for t in TERMINAL for e in [*middle, events[t]]]
    assert [e.data for e in received] == sent  # exactly as sent, none dropped
    for event, payload in zip(received, sent, strict=True):
        assert event.name == RESPONSES_SERVER_TYPES.get(payload["type"], R.Unknown)
    reached = {e.name for e in recorder.events}
    assert reached == {c.value for c in R}  # every constant, Unknown and ResponsesAPIError included
    unknown_types = {e.data["type"] for e in received if e.name == R.Unknown}
    assert unknown_types == {"response.something_new.delta"} | {
        t for t in events if t not in RESPONSES_SERVER_TYPES
    }


async def test_listeners_by_provider_type(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="Hello caller"))
    client = await new_client(fake)
    deltas: list[str] = []
    client.add_event_listener("response.output_text.delta", lambda e: deltas.append(e.data["delta"]))
    response = await client.create_responses({"model": "gpt-4o", "input": "Say hello"})
    await client.close()
    assert "".join(deltas) == "Hello caller"
    assert response["status"] == "completed" and response["output"][0]["content"][0]["text"] == "Hello caller"
    assert fake.requests[0].body == {"model": "gpt-4o", "input": "Say hello", "stream": True}


async def test_array_input_is_sent_as_given(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    items = [
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
    ]
    assert await client.create_responses({"model": "gpt-4o", "input": items}) is not None
    await client.close()
    assert fake.requests[0].body["input"] == items


async def test_function_call_round_trip_chained_with_previous_response_id(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(
        ResponsesReply(function_calls=[("get_weather", '{"city":"Paris"}')]),
        ResponsesReply(text="It is sunny in Paris."),
        ResponsesReply(text="You're welcome."),
    )
    client = await new_client(fake, store_context=True)
    recorder = record_responses(client)
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    outputs: list[dict[str, Any]] = []

    def run_tool(event: Any) -> None:
        item = event.data["item"]
        if item["type"] == "function_call":
            outputs.append(
                {"type": "function_call_output", "call_id": item["call_id"], "output": '{"sky":"sunny"}'}
            )

    client.add_event_listener(R.ResponseOutputItemDone, run_tool)
    first = await client.create_responses(
        {"model": "gpt-4o", "instructions": "You are Voxy.", "input": "Weather in Paris?", "tools": tools}
    )
    (args_done,) = recorder.of(R.ResponseFunctionCallArgumentsDone)
    assert (args_done["name"], args_done["arguments"]) == ("get_weather", '{"city":"Paris"}')
    assert client.previous_response_id == first["id"]
    # The fake refuses a function_call_output whose call is not in the chained response.
    second = await client.create_responses({"model": "gpt-4o", "input": outputs, "tools": tools})
    assert second is not None, recorder.of(R.ResponsesAPIError)
    third = await client.create_responses({"model": "gpt-4o", "input": "Thanks!"})
    await client.close()
    bodies = [r.body for r in fake.requests]
    assert [b.get("previous_response_id") for b in bodies] == [None, first["id"], second["id"]]
    assert bodies[1]["input"] == outputs
    assert [b["instructions"] for b in bodies] == ["You are Voxy."] * 3  # re-sent: not carried by the chain
    assert third["output"][0]["content"][0]["text"] == "You're welcome."


async def test_store_false_keeps_the_history_locally(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="Hi Ann."), ResponsesReply(text="Your name is Ann."))
    client = await new_client(fake, store_context=True)
    await client.create_responses({"model": "gpt-4o", "input": "I'm Ann.", "store": False})
    await client.create_responses({"model": "gpt-4o", "input": "What's my name?", "store": False})
    await client.close()
    second = fake.requests[1].body
    assert "previous_response_id" not in second
    assert [i.get("role") for i in second["input"]] == ["user", "assistant", "user"]
    assert second["input"][0] == {"role": "user", "content": "I'm Ann."}
    assert second["input"][1]["content"][0]["text"] == "Hi Ann."
    assert second["input"][2] == {"role": "user", "content": "What's my name?"}


async def test_cancelled_input_is_sent_again_with_the_next_turn(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="First."), ResponsesReply(text="A long story", hold_after=6))
    client = await new_client(fake, store_context=True)
    recorder = record_responses(client)
    first = await client.create_responses({"model": "gpt-4o", "input": "Hi"})
    started = asyncio.Event()
    client.add_event_listener(R.ResponseTextDelta, lambda e: started.set())
    story = client.create_responses({"model": "gpt-4o", "input": "Tell me a story"})
    await asyncio.wait_for(started.wait(), 5)
    seen = len(recorder.events)
    client.cancel()
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    fake.release()
    assert await story is None and len(recorder.events) == seen
    await client.create_responses({"model": "gpt-4o", "input": "Stop, what time is it?"})
    await client.close()
    last = fake.requests[-1].body
    assert last["previous_response_id"] == first["id"]
    assert last["input"] == [
        {"role": "user", "content": "Tell me a story"},
        {"role": "user", "content": "Stop, what time is it?"},
    ]


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (
            HTTPError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            401,
            "invalid_api_key",
            None,
        ),
        (
            HTTPError(429, "Rate limit reached.", "requests", "rate_limit_exceeded", retry_after=1.5),
            429,
            "rate_limit_exceeded",
            1.5,
        ),
        (HTTPError(500), 500, None, None),
    ],
    ids=["401", "429", "500"],
)
async def test_http_errors(
    fake: FakeOpenAIHTTPServer, error: HTTPError, status: int, code: str | None, retry_after: float | None
) -> None:
    fake.script_responses(error)
    client = await new_client(fake)
    recorder = record_responses(client)
    assert await client.create_responses({"model": "gpt-4o", "input": "hi"}) is None
    await client.close()
    (data,) = recorder.of(R.ResponsesAPIError)
    assert (data["status"], data["code"], data["message"], data["retry_after"]) == (
        status,
        code,
        error.message,
        retry_after,
    )


async def test_error_event_mid_stream(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(
        ResponsesReply(
            text="Hello there", error_after=4, error={"code": "server_error", "message": "Stream failed."}
        )
    )
    client = await new_client(fake)
    recorder = record_responses(client)
    assert await client.create_responses({"model": "gpt-4o", "input": "hi"}) is None
    await client.close()
    (provider,) = recorder.of(R.ResponseError)
    assert provider == {
        "type": "error",
        "param": None,
        "code": "server_error",
        "message": "Stream failed.",
        "sequence_number": 4,
    }
    (data,) = recorder.of(R.ResponsesAPIError)
    assert (data["status"], data["code"], data["message"]) == (200, "server_error", "Stream failed.")
    assert recorder.names()[-2:] == ["ResponseError", "ResponsesAPIError"]


async def test_dropped_stream_and_recovery(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="Hello there", drop_after=3), ResponsesReply(text="Again"))
    client = await new_client(fake, store_context=True)
    recorder = record_responses(client)
    assert await client.create_responses({"model": "gpt-4o", "input": "hi"}) is None
    (data,) = recorder.of(R.ResponsesAPIError)
    assert data["status"] is None and data["type"] == "network_error"
    assert client.previous_response_id is None  # nothing to chain on
    assert await client.create_responses({"model": "gpt-4o", "input": "hi"}) is not None
    await client.close()


async def test_failed_response_is_an_event_not_an_api_error(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="partial", status="failed"))
    client = await new_client(fake, store_context=True)
    recorder = record_responses(client)
    response = await client.create_responses({"model": "gpt-4o", "input": "hi"})
    await client.close()
    assert response["status"] == "failed"
    assert len(recorder.of(R.ResponseFailed)) == 1 and recorder.of(R.ResponsesAPIError) == []
    assert client.previous_response_id is None


async def test_bad_parameters_and_closed_client(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake)
    with pytest.raises(TypeError, match=r"parameters\['input'\] must be a string or a list"):
        client.create_responses({"model": "gpt-4o", "input": 42})
    with pytest.raises(ValueError, match=r"parameters\['model'\]"):
        client.create_responses({"input": "hi"})
    await client.close()
    with pytest.raises(ClientClosedError):
        client.create_responses({"model": "gpt-4o", "input": "hi"})
    assert fake.requests == []


async def test_sequential_requests_reuse_one_connection(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(fake, project="proj_9", statistics=True)
    for _ in range(3):
        await client.create_responses({"model": "gpt-4o", "input": "hi"})
    stats = client.statistics()
    await client.close()
    assert fake.connections == 1
    assert {r.headers["OpenAI-Project"] for r in fake.requests} == {"proj_9"}
    assert (
        stats["requests"] == 3 and stats["usage"]["output_tokens"] == 3 and stats["ttft_last_ms"] is not None
    )


async def test_next_turn_from_a_response_completed_listener_chains(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_responses(ResponsesReply(text="Hello."), ResponsesReply(text="Sure."))
    client = await new_client(fake, store_context=True)
    follow_ups: list[Any] = []

    def on_completed(event: Any) -> None:
        if not follow_ups:
            follow_ups.append(client.create_responses({"model": "gpt-4o", "input": "Go on"}))

    client.add_event_listener(R.ResponseCompleted, on_completed)
    first = await client.create_responses({"model": "gpt-4o", "input": "Hi"})
    assert first is not None
    assert await follow_ups[0] is not None
    await client.close()
    assert fake.requests[1].body["previous_response_id"] == first["id"]
    assert fake.requests[1].body["input"] == "Go on"
