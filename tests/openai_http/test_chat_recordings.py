"""Each live recording replayed over loopback through the real client: the events and payloads
must be those the official SDK's stream helper (``ChatCompletionStreamState``) produces for the
same chunks. The ``openai`` package is a test-only oracle here (``jiter``, its partial-JSON parser,
is voxline's too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jiter
import pydantic
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

import openai
from voxline.openai.chat import ChatCompletionStream, create_chat_completions_api_client, parse_partial_json
from voxline.openai.events import CHAT_COMPLETIONS_TYPES, ChatCompletionsAPIEvents
from voxline.testing.openai_http import FakeOpenAIHTTPServer, SSEReplay

from .conftest import API_KEY, FIXTURES, record_chat

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")


class Location(pydantic.BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


# What the SDK sends for response_format=Location (voxline only looks at "type").
LOCATION_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "Location",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "temperature": {"type": "number"},
                "units": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "temperature", "units"],
            "additionalProperties": False,
        },
    },
}


class GetWeatherArgs(pydantic.BaseModel):
    city: str
    country: str
    units: Literal["c", "f"] = "c"


STRICT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "state": {"type": "string"}},
            "required": ["city", "state"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
NON_STRICT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# The request options of openai-python's own test for each recording: (oracle kwargs, voxline body extras).
# Typed formats/tools go to the oracle as pydantic models and to voxline as their JSON form.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "parse_nothing": ({}, {}),
    "parse_pydantic_model": (
        {"response_format": Location},
        {"response_format": LOCATION_FORMAT},
    ),
    # openai-python's test raises LengthFinishReasonError with a typed format; compare untyped here
    # (the typed case is test_length_with_a_typed_format_does_not_raise below).
    "max_tokens_reached_length": ({}, {"max_tokens": 1}),
    "refusal": ({"response_format": Location}, {"response_format": LOCATION_FORMAT}),
    "content_logprobs": ({}, {"logprobs": True}),
    "tool_call_single": (
        {"input_tools": [openai.pydantic_function_tool(GetWeatherArgs)]},
        {"tools": [json.loads(json.dumps(openai.pydantic_function_tool(GetWeatherArgs)))]},
    ),
    "tool_call_strict": ({"input_tools": [STRICT_TOOL]}, {"tools": [STRICT_TOOL]}),
    "tool_call_non_strict": ({"input_tools": [NON_STRICT_TOOL]}, {"tools": [NON_STRICT_TOOL]}),
    "non_pydantic_response_format": (
        {"response_format": {"type": "json_object"}},
        {"response_format": {"type": "json_object"}},
    ),
}

SDK_TYPE = {constant: sdk_type for sdk_type, constant in CHAT_COMPLETIONS_TYPES.items()}


def recorded_chunks(path: Path) -> list[dict[str, Any]]:
    lines = [line[6:] for line in path.read_text().split("\n") if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    return value


def oracle(path: Path, kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    state: Any = ChatCompletionStreamState(**kwargs)
    events = []
    for chunk in recorded_chunks(path):
        for event in state.handle_chunk(ChatCompletionChunk.model_validate(chunk)):
            dumped = event.model_dump(mode="json")
            if dumped["type"] == "chunk":
                dumped = {"type": "chunk", "chunk": chunk}  # voxline's Chunk data is the raw chunk
            events.append(dumped)
    # The snapshot: get_final_completion() raises for finish_reason "length" even without a typed format.
    return events, state.current_completion_snapshot


def voxline_helper_events(recorder: Any) -> list[dict[str, Any]]:
    out = []
    for event in recorder.events:
        constant = ChatCompletionsAPIEvents(event.name)
        if constant is ChatCompletionsAPIEvents.Chunk:
            out.append({"type": "chunk", "chunk": event.data})
        elif constant in SDK_TYPE and constant is not ChatCompletionsAPIEvents.Content:
            assert event.data["type"] == SDK_TYPE[constant]
            out.append(event.data)
    return out


def completion_fields(completion: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion["id"],
        "model": completion["model"],
        "created": completion["created"],
        "usage": strip_none(completion["usage"]),
        "choices": [
            {
                "index": c["index"],
                "finish_reason": c["finish_reason"],
                "logprobs": c["logprobs"],
                "role": c["message"]["role"],
                "content": c["message"]["content"],
                "refusal": c["message"]["refusal"],
                "tool_calls": [
                    {"id": t["id"], "name": t["function"]["name"], "arguments": t["function"]["arguments"]}
                    for t in c["message"].get("tool_calls") or []
                ],
            }
            for c in completion["choices"]
        ],
    }


@pytest.mark.parametrize("write_size", [None, 61], ids=["per-event", "61-byte-writes"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_recording_replayed_gives_the_sdk_helper_events(
    fake: FakeOpenAIHTTPServer, name: str, write_size: int | None
) -> None:
    path = FIXTURES / f"{name}.sse"
    oracle_kwargs, extras = CASES[name]
    expected, final = oracle(path, oracle_kwargs)

    fake.script_chat(SSEReplay.from_file(path, write_size=write_size))
    client = await create_chat_completions_api_client(api_key=API_KEY, base_url=fake.base_url)
    recorder = record_chat(client)
    completion = await client.create_chat_completions(
        {
            "model": "gpt-4o-2024-08-06",
            "messages": [{"role": "user", "content": "What's the weather like in SF?"}],
            **extras,
        }
    )
    await client.close()

    assert voxline_helper_events(recorder) == expected
    # Content comes once, last, with the whole completion.
    assert recorder.names(skip=("ConnectorInformation",))[-1] == "Content"
    (content,) = recorder.of(ChatCompletionsAPIEvents.Content)
    assert content == completion
    assert completion_fields(content) == completion_fields(final.model_dump(mode="json"))
    assert recorder.of(ChatCompletionsAPIEvents.ChatCompletionsAPIError) == []


def test_every_helper_event_constant_is_exercised_by_the_recordings() -> None:
    seen: set[str] = set()
    for name, (kwargs, _) in CASES.items():
        events, _ = oracle(FIXTURES / f"{name}.sse", kwargs)
        seen |= {e["type"] for e in events}
    # No recording refuses with logprobs; that pair is covered by test_refusal_logprobs below.
    assert seen == set(CHAT_COMPLETIONS_TYPES) - {
        "content",
        "logprobs.refusal.delta",
        "logprobs.refusal.done",
    }


def test_refusal_logprobs_and_parallel_tool_calls_match_the_sdk() -> None:
    """Shapes seen in openai-python's other recordings: refusal logprobs, two tool calls, n=2."""
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**base, "choices": choices, **extra}

    def lp(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": []}

    chunks = [
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": None, "refusal": ""},
                    "logprobs": {"content": None, "refusal": []},
                    "finish_reason": None,
                },
                {
                    "index": 1,
                    "delta": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ],
                    },
                    "logprobs": None,
                    "finish_reason": None,
                },
            ]
        ),
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"refusal": "No"},
                    "logprobs": {"content": None, "refusal": [lp("No")]},
                    "finish_reason": None,
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Pa'}}]},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ris","state":"-"}'}}]},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_b",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"refusal": "."},
                    "logprobs": {"content": None, "refusal": [lp(".")]},
                    "finish_reason": None,
                }
            ]
        ),
        chunk(
            [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [{"index": 1, "function": {"arguments": 'ty":"Rome","state":"-"}'}}]
                    },
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
        chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]),
        chunk([{"index": 1, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]),
        chunk([], usage={"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}),
    ]
    state: Any = ChatCompletionStreamState(input_tools=[STRICT_TOOL])
    expected = []
    for c in chunks:
        for event in state.handle_chunk(ChatCompletionChunk.model_validate(c)):
            if event.type != "chunk":
                expected.append(event.model_dump(mode="json"))
    mine = ChatCompletionStream(tools=[STRICT_TOOL])
    got = []
    for c in chunks:
        got.extend(payload for _, payload in mine.handle_chunk(c))
    assert got == expected
    assert {e["type"] for e in got} >= {
        "logprobs.refusal.delta",
        "logprobs.refusal.done",
        "tool_calls.function.arguments.done",
    }
    assert completion_fields(mine.final_completion()) == completion_fields(
        state.current_completion_snapshot.model_dump(mode="json")
    )


async def test_length_with_a_typed_format_does_not_raise(fake: FakeOpenAIHTTPServer) -> None:
    """Deliberate difference: the SDK raises LengthFinishReasonError here; voxline reports it in Content."""
    fake.script_chat(SSEReplay.from_file(FIXTURES / "max_tokens_reached_length.sse"))
    client = await create_chat_completions_api_client(api_key=API_KEY, base_url=fake.base_url)
    recorder = record_chat(client)
    completion = await client.create_chat_completions(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "?"}],
            "max_tokens": 1,
            "response_format": LOCATION_FORMAT,
        }
    )
    await client.close()
    assert completion["choices"][0]["finish_reason"] == "length"
    assert recorder.of(ChatCompletionsAPIEvents.ContentDone) == [
        {"type": "content.done", "content": '{"', "parsed": None}
    ]
    assert [d["parsed"] for d in recorder.of(ChatCompletionsAPIEvents.ContentDelta)] == [None, {}]


def partial_json_cases() -> list[str]:
    texts = []
    for path in sorted(FIXTURES.glob("*.sse")):
        content, args = "", ""
        for chunk in recorded_chunks(path):
            for choice in chunk["choices"]:
                content += choice["delta"].get("content") or ""
                for tc in choice["delta"].get("tool_calls") or []:
                    args += tc.get("function", {}).get("arguments") or ""
        texts += [t for t in (content, args) if t.lstrip().startswith(("{", "["))]
    texts.append('{"a": [1, 2.5, -3e2, true, false, null, {"b": "\\u00e9\\"x"}], "c": "d"}')
    return texts


def test_partial_json_matches_jiter_on_every_prefix() -> None:
    for text in partial_json_cases():
        for end in range(1, len(text) + 1):
            prefix = text[:end]
            if not prefix.strip():
                continue
            try:
                expected = jiter.from_json(prefix.encode(), partial_mode=True)
            except ValueError:
                expected = None
            assert parse_partial_json(prefix) == expected, prefix


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(json_values, st.sampled_from([None, 1]))
def test_partial_json_matches_jiter_on_random_documents(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    for end in range(1, len(text) + 1):
        prefix = text[:end]
        try:
            expected = jiter.from_json(prefix.encode(), partial_mode=True)
        except ValueError:
            expected = None
        assert parse_partial_json(prefix) == expected, prefix


@st.composite
def chunk_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random but well-formed streams: text / refusal / tool calls, 1-2 choices, optional logprobs."""
    base = {"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    n_choices = draw(st.integers(1, 2))
    per_choice: list[list[dict[str, Any]]] = []
    texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    for index in range(n_choices):
        kind = draw(st.sampled_from(["content", "refusal", "tools", "content+tools"]))
        logprobs = draw(st.booleans()) and kind in ("content", "refusal")
        first: dict[str, Any] = {"role": "assistant"}
        lp_key = "refusal" if kind == "refusal" else "content"
        pieces: list[dict[str, Any]] = []
        if kind in ("content", "content+tools"):
            first.update(content="", refusal=None)
            pieces += [{"delta": {"content": t}} for t in draw(st.lists(texts, max_size=4))]
        elif kind == "refusal":
            first.update(content=None, refusal="")
            pieces += [{"delta": {"refusal": t}} for t in draw(st.lists(texts, max_size=4))]
        if kind in ("tools", "content+tools"):
            for tool_index in range(draw(st.integers(1, 2))):
                args = json.dumps({"city": draw(texts), "n": draw(st.integers(0, 99))})
                cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
                parts = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
                head = {
                    "index": tool_index,
                    "id": f"call_{index}_{tool_index}",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
                pieces.append({"delta": {"tool_calls": [head]}})
                pieces += [
                    {"delta": {"tool_calls": [{"index": tool_index, "function": {"arguments": p}}]}}
                    for p in parts
                ]
        for piece in pieces:
            text = piece["delta"].get(lp_key)
            piece["logprobs"] = (
                {
                    lp_key: [
                        {"token": text, "logprob": -0.5, "bytes": list(text.encode()), "top_logprobs": []}
                    ],
                    ("content" if lp_key == "refusal" else "refusal"): None,
                }
                if logprobs and isinstance(text, str)
                else None
            )
        start = {"delta": first, "logprobs": {"content": [], "refusal": None} if logprobs else None}
        finish = {"delta": {}, "logprobs": None, "finish_reason": "tool_calls" if "tools" in kind else "stop"}
        per_choice.append([{**c, "index": index} for c in [start, *pieces, finish]])
    # Interleave the choices' chunks, keeping each choice's own order.
    order = draw(st.permutations([i for i, chunks in enumerate(per_choice) for _ in chunks]))
    # Choices first appear in index order (as OpenAI sends them; the SDK relies on it).
    first_seen = sorted(range(n_choices), key=order.index)
    assume(first_seen == list(range(n_choices)))
    positions = [0] * n_choices
    stream = []
    for i in order:
        choice = {"finish_reason": None, **per_choice[i][positions[i]]}
        positions[i] += 1
        stream.append({**base, "choices": [choice]})
    stream.append(
        {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    return stream


@settings(max_examples=100, deadline=None)
@given(chunk_streams(), st.booleans())
def test_random_streams_give_the_sdk_helper_events(chunks: list[dict[str, Any]], strict: bool) -> None:
    tools = [STRICT_TOOL if strict else NON_STRICT_TOOL]
    state: Any = ChatCompletionStreamState(input_tools=tools)
    mine = ChatCompletionStream(tools=tools)
    for chunk in chunks:
        expected = [
            e.model_dump(mode="json") for e in state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
        ]
        got = [payload for _, payload in mine.handle_chunk(chunk)]
        assert got == [e for e in expected if e["type"] != "chunk"]
    assert completion_fields(mine.final_completion()) == completion_fields(
        state.current_completion_snapshot.model_dump(mode="json")
    )
