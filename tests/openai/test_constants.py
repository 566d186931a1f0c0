"""The OpenAI namespace holds every constant of the reference, with unique values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voxline import OpenAI
from voxline.openai.events import (
    ADDITIONS,
    ALL_EVENT_ENUMS,
    CHAT_COMPLETIONS_TYPES,
    REALTIME_SERVER_TYPES,
    RESPONSES_SERVER_TYPES,
)

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "000_a40007576c2a1f1a.txt"


def reference_constants() -> list[tuple[str, str]]:
    if not SEED.exists():
        pytest.skip(f"reference not found at {SEED}")
    found = re.findall(r"Event constant: `(\w+)\.(\w+)`", SEED.read_text(encoding="utf-8"))
    return [(ns, name) for ns, name in found]


def test_every_reference_constant_exists_with_a_unique_value() -> None:
    constants = reference_constants()
    assert len(constants) == 112
    values = []
    for namespace, name in constants:
        enum = getattr(OpenAI, namespace)
        member = getattr(enum, name)
        values.append(str(member))
        prefix = "Events" if namespace == "Events" else namespace.removesuffix("Events")
        assert str(member) == f"OpenAI.{prefix}.{name}"
    assert len(set(values)) == 112
    # Every other constant is one of voxline's documented additions.
    assert {m for e in ALL_EVENT_ENUMS for m in e} - {str(v) for v in values} == set(ADDITIONS)
    assert sum(len(list(e)) for e in ALL_EVENT_ENUMS) == 112 + len(ADDITIONS)


def test_namespace_exports_the_reference_types() -> None:
    for name in (
        "RealtimeAPIClient",
        "RealtimeAPIClientParameters",
        "ChatCompletionsAPIClientParameters",
        "ResponsesAPIClientParameters",
        "ChatCompletionsAPIClient",
        "ResponsesAPIClient",
        "create_realtime_api_client",
        "create_chat_completions_api_client",
        "create_responses_api_client",
    ):
        assert hasattr(OpenAI, name), name
    assert OpenAI.RealtimeAPIClientType.REALTIME == "realtime"
    assert OpenAI.RealtimeAPIClientType.TRANSCRIPTION == "transcription"


def test_provider_type_maps_point_at_their_own_namespace() -> None:
    assert all(isinstance(c, OpenAI.RealtimeAPIEvents) for c in REALTIME_SERVER_TYPES.values())
    assert all(isinstance(c, OpenAI.ResponsesAPIEvents) for c in RESPONSES_SERVER_TYPES.values())
    assert all(isinstance(c, OpenAI.ChatCompletionsAPIEvents) for c in CHAT_COMPLETIONS_TYPES.values())
    # Every Realtime constant except the connector's own has a provider type.
    connector_only = {"Unknown", "HTTPResponse", "WebSocketError", "ConnectorInformation"}
    mapped = {c.name for c in REALTIME_SERVER_TYPES.values()}
    assert mapped == {m.name for m in OpenAI.RealtimeAPIEvents} - connector_only
    connector_only_responses = {"Unknown", "ResponsesAPIError", "ConnectorInformation"}
    assert {c.name for c in RESPONSES_SERVER_TYPES.values()} == (
        {m.name for m in OpenAI.ResponsesAPIEvents} - connector_only_responses
    )
