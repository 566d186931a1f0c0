"""Factory parameters: every parameter of the reference, and bad input named in the error."""

from __future__ import annotations

from typing import Any

import pytest

from voxline import OpenAI
from voxline.openai.params import (
    DEFAULT_SUMMARY_PROMPT,
    ChatCompletionsAPIClientParameters,
    RealtimeAPIClientParameters,
    build_parameters,
)


def test_defaults_follow_the_reference() -> None:
    p = build_parameters(RealtimeAPIClientParameters, None, {"api_key": "sk-x"})
    assert p.model == "gpt-realtime"
    assert p.type is OpenAI.RealtimeAPIClientType.REALTIME
    assert p.base_url == "https://api.openai.com/"
    assert (p.statistics, p.trace, p.privacy, p.auto_truncate) == (False, False, False, True)
    c = build_parameters(ChatCompletionsAPIClientParameters, {"apiKey": "sk-x"}, {})
    assert c.summary_model == "gpt-4o"
    assert c.summary_prompt == DEFAULT_SUMMARY_PROMPT
    assert c.store_context is False


def test_camel_case_dicts_objects_and_kwargs_merge() -> None:
    def on_close(event: dict[str, Any]) -> None: ...

    camel = {
        "apiKey": "sk-1",
        "baseUrl": "http://127.0.0.1:1/",
        "onWebSocketClose": on_close,
        "type": "transcription",
    }
    p = build_parameters(RealtimeAPIClientParameters, camel, {"model": "m"})
    assert (p.api_key, p.base_url, p.model) == ("sk-1", "http://127.0.0.1:1/", "m")
    assert p.on_web_socket_close is on_close
    assert p.type is OpenAI.RealtimeAPIClientType.TRANSCRIPTION
    again = build_parameters(RealtimeAPIClientParameters, p, {"trace": True})
    assert again.trace and again.api_key == "sk-1"


def test_api_key_never_in_repr() -> None:
    p = build_parameters(RealtimeAPIClientParameters, None, {"api_key": "sk-secret-123"})
    assert "sk-secret-123" not in repr(p)


@pytest.mark.parametrize(
    ("values", "error", "needle"),
    [
        ({}, TypeError, "api_key"),
        ({"api_key": ""}, TypeError, "api_key"),
        ({"api_key": 5}, TypeError, "api_key"),
        ({"api_key": "k", "type": "video"}, ValueError, "'type'"),
        ({"api_key": "k", "model": 3}, TypeError, "'model'"),
        ({"api_key": "k", "trace": "yes"}, TypeError, "'trace'"),
        ({"api_key": "k", "statistics": 1}, TypeError, "'statistics'"),
        ({"api_key": "k", "privacy": None}, TypeError, "'privacy'"),
        ({"api_key": "k", "base_url": "ftp://x"}, ValueError, "base_url"),
        ({"api_key": "k", "on_web_socket_close": "f"}, TypeError, "on_web_socket_close"),
        ({"api_key": "k", "colour": "red"}, TypeError, "colour"),
    ],
)
def test_bad_parameters_name_the_parameter(
    values: dict[str, Any], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        build_parameters(RealtimeAPIClientParameters, values, {})


def test_parameters_must_be_an_object_or_dict() -> None:
    with pytest.raises(TypeError, match="parameters"):
        build_parameters(RealtimeAPIClientParameters, "sk-key", {})


async def test_factory_rejects_bad_parameters_before_connecting() -> None:
    with pytest.raises(TypeError, match="api_key"):
        await OpenAI.create_realtime_api_client(model="gpt-realtime")
