"""The fake servers speak OpenAI's wire format: spec-valid chunks, events, errors; strict request checks."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voxline.openai.sse import SSEParser
from voxline.testing.openai_http import (
    ChatReply,
    FakeOpenAIHTTPServer,
    HTTPError,
    RawEvents,
    ResponsesReply,
    SSEReplay,
)

from .conftest import API_KEY, FIXTURES, SHARED

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _adapt(node: Any) -> Any:
    # OpenAPI -> JSON Schema: `nullable` admits null; oneOf read as anyOf (the spec's unions overlap).
    if isinstance(node, list):
        return [_adapt(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {("anyOf" if k == "oneOf" else k): _adapt(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _registry() -> Registry:
    document = _adapt(json.loads((SHARED / "openai-spec" / "openapi.json").read_text()))
    return Registry().with_resource(
        "urn:openai", Resource.from_contents(document, default_specification=DRAFT202012)
    )


def problems(schema: str, instance: Any) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": f"urn:openai#/components/schemas/{schema}"}, registry=_registry()
    )
    return [f"{list(e.absolute_path)}: {e.message[:160]}" for e in validator.iter_errors(instance)]


async def post(
    fake: FakeOpenAIHTTPServer, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(
            f"{fake.base_url}v1/{path}", content=content, headers=AUTH if headers is None else headers
        )


def sse_data(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in SSEParser().feed(response.content)]


def test_the_recordings_are_valid_chunks() -> None:
    for path in sorted(FIXTURES.glob("*.sse")):
        for line in path.read_text().splitlines():
            if line.startswith("data: {"):
                assert problems("CreateChatCompletionStreamResponse", json.loads(line[6:])) == [], path.name


@pytest.mark.parametrize(
    "reply",
    [
        ChatReply(text="Hello, caller."),
        ChatReply(text="Hi", logprobs=True),
        ChatReply(refusal="I can't help with that."),
        ChatReply(tool_calls=[("get_weather", '{"city":"Paris"}'), ("get_time", "{}")]),
        ChatReply(text="cut", finish_reason="length"),
    ],
    ids=["text", "logprobs", "refusal", "tool-calls", "length"],
)
async def test_chat_chunks_are_spec_valid_and_end_with_done(
    fake: FakeOpenAIHTTPServer, reply: ChatReply
) -> None:
    fake.script_chat(reply)
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await post(fake, "chat/completions", body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response)
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    for chunk in chunks:
        assert problems("CreateChatCompletionStreamResponse", chunk) == []
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert len({c["id"] for c in chunks}) == 1


async def test_usage_chunk_only_when_asked(fake: FakeOpenAIHTTPServer) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    chunks = [json.loads(d) for _, d in sse_data(await post(fake, "chat/completions", body))[:-1]]
    assert all(c["choices"] for c in chunks)


@pytest.mark.parametrize(
    "reply",
    [
        ResponsesReply(text="Hello"),
        ResponsesReply(refusal="No."),
        ResponsesReply(text="Let me check.", function_calls=[("get_weather", '{"city":"Paris"}')]),
        ResponsesReply(text="cut", status="incomplete"),
        ResponsesReply(text="oops", status="failed"),
        ResponsesReply(text="Hello", error_after=3),
    ],
    ids=["text", "refusal", "function-call", "incomplete", "failed", "error-event"],
)
async def test_responses_events_are_spec_valid_named_and_numbered(
    fake: FakeOpenAIHTTPServer, reply: ResponsesReply
) -> None:
    fake.script_responses(reply)
    response = await post(fake, "responses", {"model": "gpt-4o", "input": "hi", "stream": True})
    events = sse_data(response)
    payloads = [json.loads(data) for _, data in events]
    for (name, _), payload in zip(events, payloads, strict=True):
        assert name == payload["type"]
        assert problems("ResponseStreamEvent", payload) == [], payload["type"]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[-1]["type"] in ("response.completed", "response.incomplete", "response.failed", "error")


async def test_raw_events_are_sent_verbatim(fake: FakeOpenAIHTTPServer) -> None:
    events = [{"type": "response.queued", "sequence_number": 0, "response": {"id": "r", "status": "queued"}}]
    fake.script_responses(RawEvents(events=events, done_sentinel=True))
    response = await post(fake, "responses", {"model": "gpt-4o", "input": "hi", "stream": True})
    assert sse_data(response) == [("response.queued", json.dumps(events[0])), ("message", "[DONE]")]


async def test_replay_is_byte_for_byte(fake: FakeOpenAIHTTPServer) -> None:
    path = FIXTURES / "refusal.sse"
    fake.script_chat(SSEReplay.from_file(path, write_size=100))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await post(fake, "chat/completions", body)
    assert response.content == path.read_bytes()


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "message"),
    [
        ("chat/completions", {"model": "m", "messages": []}, {}, 401, None, "You didn't provide an API key"),
        (
            "chat/completions",
            {"model": "m", "messages": []},
            {"Authorization": "Bearer sk-nope1234"},
            401,
            "invalid_api_key",
            "Incorrect API key provided: sk-***1234",
        ),
        ("chat/completions", b"{not json", None, 400, None, "We could not parse the JSON body"),
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": "x"}]},
            None,
            400,
            None,
            "you must provide a model parameter",
        ),
        (
            "chat/completions",
            {"model": "m"},
            None,
            400,
            "missing_required_parameter",
            "Missing required parameter: 'messages'.",
        ),
        (
            "chat/completions",
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]},
            None,
            400,
            None,
            "messages with role 'tool' must be a response to a preceeding message",
        ),
        (
            "chat/completions",
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "user", "content": "x"},
                ],
            },
            None,
            400,
            None,
            "did not have response messages: c1",
        ),
        (
            "chat/completions",
            {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
            None,
            400,
            "invalid_value",
            "Invalid value: 'robot'",
        ),
        (
            "responses",
            {"model": "m"},
            None,
            400,
            "missing_required_parameter",
            "Missing required parameter: 'input'.",
        ),
        ("responses", {"model": "m", "input": 3}, None, 400, "invalid_type", "Invalid type for 'input'"),
        (
            "responses",
            {"model": "m", "input": "x", "previous_response_id": "resp_x"},
            None,
            400,
            "previous_response_not_found",
            "Previous response with id 'resp_x' not found.",
        ),
        (
            "responses",
            {"model": "m", "input": [{"type": "function_call_output", "call_id": "call_x", "output": ""}]},
            None,
            400,
            None,
            "No tool call found for function call output with call_id call_x.",
        ),
    ],
)
async def test_bad_requests_get_openai_errors(
    fake: FakeOpenAIHTTPServer,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
    status: int,
    code: str | None,
    message: str,
) -> None:
    response = await post(fake, path, body, headers)
    assert response.status_code == status
    error = response.json()
    assert problems("ErrorResponse", error) == []
    assert error["error"]["code"] == code
    assert error["error"]["message"].startswith(message) or message in error["error"]["message"]


async def test_scripted_http_error_with_retry_after(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(HTTPError(429, "Rate limit reached.", "requests", "rate_limit_exceeded", retry_after=3))
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    response = await post(fake, "chat/completions", body)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert problems("ErrorResponse", response.json()) == []


async def test_what_the_clients_send_is_spec_valid(fake: FakeOpenAIHTTPServer) -> None:
    from voxline.openai.chat import create_chat_completions_api_client
    from voxline.openai.responses import create_responses_api_client

    chat = await create_chat_completions_api_client(
        api_key=API_KEY, base_url=fake.base_url, store_context=True, context_budget_chars=200
    )
    fake.script_chat(ChatReply(tool_calls=[("f", "{}")]), ChatReply(text="done " * 30), ChatReply(text="ok"))
    completion = await chat.create_chat_completions(
        {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "go"}],
        }
    )
    call_id = completion["choices"][0]["message"]["tool_calls"][0]["id"]
    await chat.create_chat_completions(
        {"model": "gpt-4o", "messages": [{"role": "tool", "tool_call_id": call_id, "content": "42"}]}
    )
    await chat.create_chat_completions({"model": "gpt-4o", "messages": [{"role": "user", "content": "bye"}]})
    await chat.drain()
    await chat.close()
    responses = await create_responses_api_client(api_key=API_KEY, base_url=fake.base_url, store_context=True)
    await responses.create_responses({"model": "gpt-4o", "input": "hi", "store": False})
    await responses.create_responses({"model": "gpt-4o", "input": "again", "store": False})
    await responses.create_responses({"model": "gpt-4o", "input": [{"role": "user", "content": "x"}]})
    await responses.close()
    assert any(not r.body.get("stream") for r in fake.requests)  # a summary request was made
    for request in fake.requests:
        schema = "CreateChatCompletionRequest" if request.path.endswith("completions") else "CreateResponse"
        assert problems(schema, request.body) == [], request.body
