"""Fixtures of the Chat Completions / Responses tests: a fake OpenAI server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voxline.eventtarget import Event
from voxline.openai.events import ChatCompletionsAPIEvents, ResponsesAPIEvents
from voxline.testing.openai_http import FakeOpenAIHTTPServer

SHARED = Path(__file__).resolve().parents[3] / "shared"
FIXTURES = SHARED / "openai-fixtures" / "chat-completions-sse"
SPEC_EXAMPLES = SHARED / "openai-spec" / "event-examples.json"

API_KEY = "sk-test"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIHTTPServer]:
    async with FakeOpenAIHTTPServer(api_key=API_KEY) as server:
        yield server


class Recorder:
    """Every event a client emits, in order."""

    def __init__(self, client: Any, constants: Any) -> None:
        self.events: list[Event] = []
        for constant in constants:
            client.add_event_listener(constant, self.events.append)

    def names(self, *, skip: tuple[str, ...] = ()) -> list[str]:
        return [e.name.rsplit(".", 1)[-1] for e in self.events if e.name.rsplit(".", 1)[-1] not in skip]

    def of(self, constant: Any) -> list[Any]:
        return [e.data for e in self.events if e.name == str(constant)]


def record_chat(client: Any) -> Recorder:
    return Recorder(client, ChatCompletionsAPIEvents)


def record_responses(client: Any) -> Recorder:
    return Recorder(client, ResponsesAPIEvents)
