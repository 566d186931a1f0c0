"""The Chat Completions responder against the fake OpenAI HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from voxline.local.chat_responder import ChatCompletionsResponder, chat_tools, items_to_messages
from voxline.local.responder import FunctionCallSpec, ReplySpec, Responder, Vocabulary
from voxline.openai.chat import ChatCompletionsAPIClient, create_chat_completions_api_client
from voxline.testing.openai_http import ChatReply, FakeOpenAIHTTPServer, HTTPError

API_KEY = "sk-test"
CHECK_ORDER = {
    "type": "function",
    "name": "check_order",
    "description": "Look up an order",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": text}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIHTTPServer]:
    async with FakeOpenAIHTTPServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAIHTTPServer) -> AsyncIterator[ChatCompletionsAPIClient]:
    chat = await create_chat_completions_api_client(
        api_key=API_KEY, base_url=fake.base_url, store_context=False
    )
    yield chat
    await chat.close()


def test_items_to_messages() -> None:
    conversation = [
        assistant("Hello, how can I help?"),
        user("check my order one two three four"),
        user(""),  # nothing understood: not sent
        assistant("One moment."),
        {"type": "function_call", "call_id": "c1", "name": "check_order", "arguments": '{"order_id":"1234"}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"status":"shipped"}'},
        {"type": "function_call", "call_id": "c2", "name": "hang_up", "arguments": ""},
        {"type": "function_call_output", "call_id": "c2", "output": {"ok": True}},
    ]
    assert items_to_messages(conversation, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "check my order one two three four"},
        {
            "role": "assistant",
            "content": "One moment.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "check_order", "arguments": '{"order_id":"1234"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status":"shipped"}'},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "hang_up", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'},
    ]


def test_chat_tools() -> None:
    converted = chat_tools([CHECK_ORDER])
    assert converted == [
        {
            "type": "function",
            "function": {k: CHECK_ORDER[k] for k in ("name", "description", "parameters")},
        }
    ]
    assert chat_tools(converted) == converted
    with pytest.raises(ValueError, match=r"tools\[0\]"):
        chat_tools([{"type": "mcp"}])


async def test_text_reply_and_request_shape(
    fake: FakeOpenAIHTTPServer, client: ChatCompletionsAPIClient
) -> None:
    fake.script_chat(ChatReply(text="We open at nine."))
    brain = ChatCompletionsResponder(
        client,
        model="gpt-4o-mini",
        instructions="You are Voxy.",
        tools=[CHECK_ORDER],
        request={"temperature": 0},
    )
    assert isinstance(brain, Responder) and brain.vocabulary is None
    reply = await brain.respond([assistant("Hi!"), user("when are you open")])
    assert reply == ReplySpec("We open at nine.")
    (request,) = fake.requests_to("/v1/chat/completions")
    body = request.body
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": "You are Voxy."}
    assert body["messages"][-1] == {"role": "user", "content": "when are you open"}
    assert body["tools"][0]["function"]["name"] == "check_order"


async def test_tool_call_reply(fake: FakeOpenAIHTTPServer, client: ChatCompletionsAPIClient) -> None:
    fake.script_chat(ChatReply(tool_calls=[("check_order", json.dumps({"order_id": "1234"}))]))
    brain = ChatCompletionsResponder(client, model="gpt-4o-mini", tools=[CHECK_ORDER])
    reply = await brain.respond([user("check my order one two three four")])
    assert reply.text == ""
    assert reply.function_calls == (FunctionCallSpec("check_order", {"order_id": "1234"}),)


async def test_greeting_without_the_model(
    fake: FakeOpenAIHTTPServer, client: ChatCompletionsAPIClient
) -> None:
    vocabulary = Vocabulary(("hello",))
    brain = ChatCompletionsResponder(
        client, model="m", greeting="Hello, this is Voxy.", vocabulary=vocabulary
    )
    assert await brain.respond([]) == ReplySpec("Hello, this is Voxy.", kind="greeting")
    assert brain.vocabulary is vocabulary
    assert fake.requests_to("/v1/chat/completions") == []


async def test_failure_gives_the_fallback(
    fake: FakeOpenAIHTTPServer, client: ChatCompletionsAPIClient
) -> None:
    fake.script_chat(HTTPError(500))
    brain = ChatCompletionsResponder(client, model="m", fallback="Sorry, try later.")
    assert await brain.respond([user("hello")]) == ReplySpec("Sorry, try later.", kind="fallback")


async def test_context_storing_client_is_refused(fake: FakeOpenAIHTTPServer) -> None:
    storing = await create_chat_completions_api_client(
        api_key=API_KEY, base_url=fake.base_url, store_context=True
    )
    try:
        with pytest.raises(ValueError, match="store_context=False"):
            ChatCompletionsResponder(storing, model="m")
    finally:
        await storing.close()
