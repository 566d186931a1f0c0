"""Stored context of the Chat Completions client: history, tool turns, rolling summary."""

from __future__ import annotations

import asyncio
from typing import Any

from voxline.openai import ChatCompletionsAPIEvents as E
from voxline.openai.chat import (
    SUMMARY_HEADER,
    ChatCompletionsAPIClient,
    ConversationContext,
    create_chat_completions_api_client,
    message_size,
)
from voxline.openai.params import DEFAULT_SUMMARY_PROMPT
from voxline.testing.openai_http import ChatReply, FakeOpenAIHTTPServer, HTTPError

from .conftest import API_KEY, record_chat

SYSTEM = {"role": "system", "content": "You are Voxy, a phone agent."}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


async def new_client(fake: FakeOpenAIHTTPServer, **kwargs: Any) -> ChatCompletionsAPIClient:
    return await create_chat_completions_api_client(
        api_key=API_KEY, base_url=fake.base_url, store_context=True, **kwargs
    )


def sent_messages(fake: FakeOpenAIHTTPServer) -> list[list[dict[str, Any]]]:
    return [r.body["messages"] for r in fake.requests_to("/v1/chat/completions") if r.body.get("stream")]


async def test_without_store_context_nothing_is_kept(fake: FakeOpenAIHTTPServer) -> None:
    client = await create_chat_completions_api_client(api_key=API_KEY, base_url=fake.base_url)
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("one")]})
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("two")]})
    await client.close()
    assert sent_messages(fake) == [[user("one")], [user("two")]]
    assert client.context() == []


async def test_multi_turn_conversation_sends_the_history(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(ChatReply(text="Hi, I'm Voxy."), ChatReply(text="It is 5 pm."), ChatReply(text="Bye!"))
    client = await new_client(fake)
    await client.create_chat_completions({"model": "gpt-4o", "messages": [SYSTEM, user("Hello")]})
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("What time is it?")]})
    # New instructions replace the old ones and stay first.
    brief = {"role": "developer", "content": "Be brief."}
    await client.create_chat_completions({"model": "gpt-4o", "messages": [brief, user("Thanks")]})
    await client.close()
    assert sent_messages(fake) == [
        [SYSTEM, user("Hello")],
        [SYSTEM, user("Hello"), assistant("Hi, I'm Voxy."), user("What time is it?")],
        [
            brief,
            user("Hello"),
            assistant("Hi, I'm Voxy."),
            user("What time is it?"),
            assistant("It is 5 pm."),
            user("Thanks"),
        ],
    ]
    assert client.context()[-1] == assistant("Bye!")


async def test_tool_call_round_trip_keeps_calls_and_results(fake: FakeOpenAIHTTPServer) -> None:
    fake.script_chat(
        ChatReply(tool_calls=[("get_weather", '{"city":"Paris"}'), ("get_time", '{"tz":"CET"}')]),
        ChatReply(text="Sunny, 5 pm."),
    )
    client = await new_client(fake)
    recorder = record_chat(client)
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    await client.create_chat_completions(
        {"model": "gpt-4o", "messages": [SYSTEM, user("Weather?")], "tools": tools}
    )
    done = recorder.of(E.FunctionToolCallArgumentsDone)
    assert [(d["index"], d["name"], d["arguments"]) for d in done] == [
        (0, "get_weather", '{"city":"Paris"}'),
        (1, "get_time", '{"tz":"CET"}'),
    ]
    calls = recorder.of(E.Content)[0]["choices"][0]["message"]["tool_calls"]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls]
    # The fake refuses tool messages that do not answer a preceding assistant tool call.
    completion = await client.create_chat_completions(
        {"model": "gpt-4o", "messages": results, "tools": tools}
    )
    await client.close()
    assert completion is not None, recorder.of(E.ChatCompletionsAPIError)
    assert sent_messages(fake)[1] == [
        SYSTEM,
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        *results,
    ]


async def test_cancelled_turn_keeps_the_user_message_failed_turn_keeps_nothing(
    fake: FakeOpenAIHTTPServer,
) -> None:
    fake.script_chat(ChatReply(text="A long answer", hold_after=2), HTTPError(500), ChatReply(text="Fine."))
    client = await new_client(fake)
    started = asyncio.Event()
    client.add_event_listener(E.Chunk, lambda e: started.set())
    client.create_chat_completions({"model": "gpt-4o", "messages": [user("Tell me a story")]})
    await asyncio.wait_for(started.wait(), 5)
    client.cancel()  # barge-in
    fake.release()
    assert (
        await client.create_chat_completions({"model": "gpt-4o", "messages": [user("Actually, stop")]})
        is None
    )
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("Actually, stop")]})
    await client.close()
    assert sent_messages(fake)[-1] == [user("Tell me a story"), user("Actually, stop")]


def test_fold_point_keeps_recent_turns_and_tool_groups_together() -> None:
    ctx = ConversationContext(budget_chars=400)
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ctx.commit(
        [
            user("a" * 60),
            assistant("b" * 60),
            user("c" * 60),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "d" * 60},
            assistant("e" * 20),
            user("f" * 20),
            assistant("g" * 20),
        ]
    )
    cut = ctx.fold_point()
    kept = ctx.history[cut:]
    assert kept[0]["role"] == "user"
    assert sum(message_size(m) for m in kept) <= 200
    assert cut == 6  # the tool group (too big for half the budget) is folded whole, not split


async def test_summary_at_the_budget_previous_summary_inserted_and_old_turns_replaced(
    fake: FakeOpenAIHTTPServer,
) -> None:
    budget = 400
    client = await new_client(fake, context_budget_chars=budget, summary_model="gpt-4o-mini", statistics=True)
    recorder = record_chat(client)
    fake.script_chat_json(
        "Caller Ann wants a table for two.", "Ann booked a table for two at 8 pm; pays by card."
    )
    turns = [
        (
            "Hi, this is Ann, I'd like to book a table for two tonight.",
            "Hello Ann! For what time would you like it?",
        ),
        ("Around eight in the evening, if that's possible.", "Eight o'clock works. Any seating preference?"),
        ("A quiet table by the window, please.", "Noted: a quiet window table for two at 8 pm."),
        ("Can I pay by card when I arrive?", "Yes, we accept all major cards at the restaurant."),
        ("Great, thank you very much.", "You're welcome, Ann. See you tonight!"),
    ]
    fake.script_chat(*(ChatReply(text=a) for _, a in turns))
    sizes = []
    summary_requests = []
    history_before = []
    for question, _ in turns:
        history_before.append(sum(message_size(m) for m in client.context() if m["role"] != "system"))
        await client.create_chat_completions({"model": "gpt-4o", "messages": [SYSTEM, user(question)]})
        await client.drain()
        sizes.append(sum(message_size(m) for m in client.context() if m["role"] != "system"))
        summary_requests.append(len([r for r in fake.requests if not r.body.get("stream")]))

    # A summary runs exactly after the turns that took the history past the budget.
    grown = [
        h + message_size(user(q)) + message_size(assistant(a))
        for h, (q, a) in zip(history_before, turns, strict=True)
    ]
    summarised = [now - before for before, now in zip([0, *summary_requests], summary_requests, strict=False)]
    assert summarised == [int(g > budget) for g in grown] == [0, 0, 1, 0, 1]

    summaries = [r.body for r in fake.requests_to("/v1/chat/completions") if not r.body.get("stream")]
    assert len(summaries) == 2
    first, second = summaries
    assert first["model"] == "gpt-4o-mini" and first["stream"] is False
    assert (
        first["messages"][0]["content"] == DEFAULT_SUMMARY_PROMPT + "\n\n1. The previous summary:\n(none yet)"
    )
    assert "user: Hi, this is Ann" in first["messages"][1]["content"]
    assert "assistant: Hello Ann!" in first["messages"][1]["content"]
    # The second summary request carries the first summary.
    assert second["messages"][0]["content"].endswith(
        "1. The previous summary:\nCaller Ann wants a table for two."
    )
    assert "Hi, this is Ann" not in second["messages"][1]["content"]  # already folded

    assert client.summary == "Ann booked a table for two at 8 pm; pays by card."
    context = client.context()
    assert context[:2] == [SYSTEM, {"role": "system", "content": SUMMARY_HEADER + client.summary}]
    assert context[2]["role"] == "user"
    assert all(size <= budget for size in sizes[-2:])  # summarising keeps the history within the budget
    # The request after a summary sends the summary, not the folded turns.
    last_sent = sent_messages(fake)[-1]
    assert last_sent[1] == {"role": "system", "content": SUMMARY_HEADER + "Caller Ann wants a table for two."}
    assert user(turns[0][0]) not in last_sent
    assert client.statistics()["summaries"] == 2
    assert recorder.of(E.ChatCompletionsAPIError) == []
    await client.close()


async def test_summary_prompt_placeholder_and_summary_failure(fake: FakeOpenAIHTTPServer) -> None:
    client = await new_client(
        fake, context_budget_chars=120, summary_prompt="Summarise. Before: {previous_summary}."
    )
    recorder = record_chat(client)
    fake.script_chat_json(HTTPError(503, "busy"), "Short summary.")
    fake.script_chat(ChatReply(text="x" * 80), ChatReply(text="y" * 80), ChatReply(text="z" * 80))
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("first question")]})
    await client.drain()
    assert fake.requests_to("/v1/chat/completions")[-1].body["stream"]  # one turn alone is never folded
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("second question")]})
    await client.drain()
    (error,) = recorder.of(E.ChatCompletionsAPIError)
    assert error["request"] == "summary" and error["status"] == 503 and error["message"] == "busy"
    assert client.summary is None and len(client.context()) == 4  # nothing folded; retried next turn
    await client.create_chat_completions({"model": "gpt-4o", "messages": [user("third question")]})
    await client.drain()
    summaries = [r.body for r in fake.requests_to("/v1/chat/completions") if not r.body.get("stream")]
    assert len(summaries) == 2
    assert summaries[-1]["messages"][0]["content"] == "Summarise. Before: (none yet)."
    assert client.summary == "Short summary."
    assert client.context()[0] == {"role": "system", "content": SUMMARY_HEADER + "Short summary."}
    assert client.context()[1] == user("third question")
    client.reset_context()
    assert client.context() == [] and client.summary is None
    await client.close()


async def test_next_turn_from_a_content_done_listener_keeps_the_reply(fake: FakeOpenAIHTTPServer) -> None:
    """The reference's multi-turn pattern: the next request is made from ContentDone."""
    fake.script_chat(ChatReply(text="Hi, I'm Voxy."), ChatReply(text="Sure."))
    client = await new_client(fake)
    recorder = record_chat(client)
    follow_ups: list[Any] = []

    def on_done(event: Any) -> None:
        if not follow_ups:
            follow_ups.append(
                client.create_chat_completions({"model": "gpt-4o", "messages": [user("Go on")]})
            )

    client.add_event_listener(E.ContentDone, on_done)
    first = client.create_chat_completions({"model": "gpt-4o", "messages": [SYSTEM, user("Hello")]})
    assert await first is not None  # not cancelled by the request made in its ContentDone
    assert await follow_ups[0] is not None
    await client.close()
    assert len(recorder.of(E.Content)) == 2
    assert sent_messages(fake)[1] == [SYSTEM, user("Hello"), assistant("Hi, I'm Voxy."), user("Go on")]


async def test_cancel_after_the_answer_is_complete_keeps_the_whole_turn(fake: FakeOpenAIHTTPServer) -> None:
    # Chunks: role, "Hi", finish, usage, [DONE]; the server holds before the usage chunk.
    fake.script_chat(ChatReply(text="Hi", piece_chars=8, hold_after=3))
    client = await new_client(fake)
    done = asyncio.Event()
    client.add_event_listener(E.ContentDone, lambda e: done.set())
    handle = client.create_chat_completions({"model": "gpt-4o", "messages": [user("Hello")]})
    await asyncio.wait_for(done.wait(), 5)
    assert handle.generated and client.cancel()
    fake.release()
    await client.close()
    assert client.context() == [user("Hello"), assistant("Hi")]
