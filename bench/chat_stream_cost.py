"""Per-chunk cost of the Chat Completions stream accumulator on the recorded live streams.

Run: .venv/bin/python bench/chat_stream_cost.py [--fixtures DIR]
Feeds each recording in ``shared/openai-fixtures/chat-completions-sse`` (beside the repository unless
``--fixtures`` says otherwise), already decoded from JSON, through a fresh ``ChatCompletionStream``
NUMBER times with the request options that make voxline parse what the SDK helper parses (a strict
tool's arguments, ``json_schema`` content), and prints Markdown: microseconds per chunk, the median over
REPEATS runs. It also times ``parse_partial_json`` alone on every prefix of each recording's JSON text,
as the stream calls it. Only what ``voxline.openai.chat`` exports is used, so the same script measures
any commit (``PYTHONPATH=<old checkout>/src``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from host import cpu_model

from voxline.openai.chat import ChatCompletionStream, parse_partial_json

NUMBER = 100
REPEATS = 15
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "openai-fixtures" / "chat-completions-sse"
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "Location", "schema": {}}}


def strict(name: str) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "strict": True}}]


# (label, recording, ChatCompletionStream options): the options say what is parsed while streaming.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("text, nothing parsed", "parse_nothing", {}),
    ("text with logprobs", "content_logprobs", {}),
    ("json_schema content, parsed", "parse_pydantic_model", {"response_format": JSON_SCHEMA}),
    ("strict tool arguments, parsed", "tool_call_strict", {"tools": strict("get_weather")}),
    ("strict pydantic tool, parsed", "tool_call_single", {"tools": strict("GetWeatherArgs")}),
    ("long JSON text, not parsed", "non_pydantic_response_format", {}),
    ("long JSON text, parsed", "non_pydantic_response_format", {"response_format": JSON_SCHEMA}),
]


def recorded_chunks(path: Path) -> list[dict[str, Any]]:
    lines = [line[6:] for line in path.read_text().split("\n") if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def stream_cost(chunks: list[dict[str, Any]], options: dict[str, Any]) -> float:
    """Median microseconds per chunk."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(NUMBER):
            stream = ChatCompletionStream(**options)
            for chunk in chunks:
                stream.handle_chunk(chunk)
        runs.append((time.perf_counter() - start) / (NUMBER * len(chunks)) * 1e6)
    return statistics.median(runs)


def json_prefixes(chunks: list[dict[str, Any]]) -> list[str]:
    """The snapshots the stream parses: the content and each tool call's arguments after every chunk."""
    content, args, out = "", "", []
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("content"):
                content += delta["content"]
                out.append(content)
            for tc in delta.get("tool_calls") or []:
                if (tc.get("function") or {}).get("arguments"):
                    args += tc["function"]["arguments"]
                    out.append(args)
    return [p for p in out if p.lstrip().startswith(("{", "["))]


def parser_cost(prefixes: list[str]) -> float:
    """Median microseconds per parse_partial_json call."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(NUMBER):
            for prefix in prefixes:
                parse_partial_json(prefix)
        runs.append((time.perf_counter() - start) / (NUMBER * len(prefixes)) * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="the chat-completions-sse folder")
    args = parser.parse_args()
    print(f"Machine: {cpu_model()}, Python {platform.python_version()} ({sys.implementation.name})")
    print(f"Median of {REPEATS} runs of {NUMBER} streams each.\n")
    print("| stream | chunks | µs per chunk |")
    print("| --- | ---: | ---: |")
    for label, name, options in CASES:
        chunks = recorded_chunks(args.fixtures / f"{name}.sse")
        print(f"| {label} ({name}) | {len(chunks)} | {stream_cost(chunks, options):.1f} |")
    print("\n| parse_partial_json on | prefixes | mean length | µs per call |")
    print("| --- | ---: | ---: | ---: |")
    for name in ("parse_pydantic_model", "tool_call_strict", "non_pydantic_response_format"):
        prefixes = json_prefixes(recorded_chunks(args.fixtures / f"{name}.sse"))
        mean = sum(map(len, prefixes)) / len(prefixes)
        print(f"| {name} | {len(prefixes)} | {mean:.0f} | {parser_cost(prefixes):.2f} |")


if __name__ == "__main__":
    main()
