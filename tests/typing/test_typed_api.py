"""The typed API: mypy catches a misspelt factory parameter and an unknown event name in a typed
scenario; at run time an unknown name raises naming the closest constant; run_tools answers the
model's function call with the function's result and the follow-up response.create."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from voxline import AppEvents, CallEvents, OpenAI
from voxline.eventtarget import EventTarget
from voxline.openai.events import (
    CHAT_COMPLETIONS_TYPES,
    REALTIME_SERVER_TYPES,
    RESPONSES_SERVER_TYPES,
    Events,
    RealtimeAPIEvents,
)
from voxline.openai.typed import ChatCompletionsEventType, RealtimeEventType, ResponsesEventType
from voxline.runtime.event_types import AppEventName, CallEventName
from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            "pyproject.toml",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mypy_reports_the_misspelt_parameter_and_the_unknown_event() -> None:
    result = mypy(DATA / "wrong_scenario.py")
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert 'wrong_scenario.py:11: error: Unexpected keyword argument "modle"' in errors[0]
    assert 'did you mean "model"' in errors[0]
    assert 'wrong_scenario.py:19: error: No overload variant of "add_event_listener"' in errors[1]


def test_mypy_accepts_the_correct_scenario() -> None:
    result = mypy(DATA / "right_scenario.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_literal_names_are_the_enums() -> None:
    assert set(typing.get_args(RealtimeEventType)) == set(REALTIME_SERVER_TYPES)
    assert set(typing.get_args(ResponsesEventType)) == set(RESPONSES_SERVER_TYPES)
    assert set(typing.get_args(ChatCompletionsEventType)) == set(CHAT_COMPLETIONS_TYPES)
    assert set(typing.get_args(AppEventName)) == {str(e) for e in AppEvents}
    assert set(typing.get_args(CallEventName)) == {str(e) for e in CallEvents}


def test_the_keyword_types_have_every_parameter_and_nothing_else() -> None:
    # A parameter added to a parameters dataclass must be added to its TypedDict too (and the
    # reverse): the types cannot drift from what build_parameters accepts.
    from voxline.openai import params, typed

    for options, cls, extra in (
        (typed.RealtimeAPIClientOptions, params.RealtimeAPIClientParameters, {"media_clock"}),
        (typed.ChatCompletionsAPIClientOptions, params.ChatCompletionsAPIClientParameters, set()),
        (typed.ResponsesAPIClientOptions, params.ResponsesAPIClientParameters, set()),
    ):
        keys = set(options.__optional_keys__) | set(options.__required_keys__)
        fields = set(cls.__dataclass_fields__)
        camel = {k for k, v in params._CAMEL.items() if v in fields}
        assert keys == fields | camel | extra, (options.__name__, keys ^ (fields | camel | extra))


class Emitter(EventTarget):
    _event_enums = (CallEvents,)


def test_an_unknown_name_raises_naming_the_closest_constant() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown event 'Call.Disconected' for Emitter: did you mean "
        r"CallEvents.Disconnected \('Call.Disconnected'\)\?",
    ):
        Emitter().add_event_listener("Call.Disconected", print)
    Emitter().add_event_listener("Call.Disconnected", print)  # the value string is the constant
    Emitter().add_event_listener(CallEvents.Failed, print)


async def test_the_realtime_client_refuses_an_unknown_event_string() -> None:
    async with FakeRealtimeServer() as server:
        client = await OpenAI.create_realtime_api_client(api_key="sk-test", base_url=server.base_url)
        try:
            with pytest.raises(ValueError) as info:
                client.add_event_listener("response.don", print)  # type: ignore[call-overload]
            assert str(info.value) == (
                "unknown event 'response.don' for RealtimeAPIClient: did you mean "
                "RealtimeAPIEvents.ResponseDone ('OpenAI.RealtimeAPI.ResponseDone')?"
            )
            with pytest.raises(
                ValueError, match=r"unknown event 'Not\.AnEvent' for RealtimeAPIClient: did you mean"
            ):
                client.add_event_listener("Not.AnEvent", print)  # type: ignore[call-overload]
            # Every accepted spelling still works: constant, value, provider type, member name.
            client.add_event_listener(RealtimeAPIEvents.ResponseDone, print)
            client.add_event_listener("OpenAI.RealtimeAPI.ResponseDone", print)
            client.add_event_listener("response.done", print)
            client.add_event_listener(Events.WebSocketMediaStarted, print)
        finally:
            client.close()


async def test_run_tools_sends_the_output_and_the_follow_up_response() -> None:
    async with FakeRealtimeServer() as server:
        server.script(
            ScriptedResponse(
                function_calls=[FunctionCall("check_order", '{"order_id": "42"}', call_id="c1")]
            ),
            ScriptedResponse(function_calls=[FunctionCall("nope", "{}", call_id="c2")]),
            ScriptedResponse(text="Done."),
        )
        client = await OpenAI.create_realtime_api_client(api_key="sk-test", base_url=server.base_url)
        seen: list[str] = []

        async def check_order(order_id: str) -> dict[str, str]:
            seen.append(order_id)
            return {"order_id": order_id, "status": "shipped"}

        runner = OpenAI.run_tools(client, {"check_order": check_order})
        connection = await server.wait_for_session(timeout=5)
        client.response_create({})
        creates = await connection.wait_for("response.create", count=3, timeout=10)
        assert len(creates) == 3
        outputs = [e["item"] for e in connection.received if e["type"] == "conversation.item.create"]
        assert outputs[0] == {
            "type": "function_call_output",
            "call_id": "c1",
            "output": json.dumps({"order_id": "42", "status": "shipped"}),
        }
        assert outputs[1]["call_id"] == "c2"
        assert json.loads(outputs[1]["output"]) == {"error": "unknown function 'nope'"}
        assert seen == ["42"]
        assert [c[0] for c in runner.calls] == ["check_order", "nope"]
        runner.stop()
        client.close()
        server.assert_no_violations()


def test_run_tools_refuses_a_non_function() -> None:
    with pytest.raises(TypeError, match="tool 'x' must be a function, not int"):
        OpenAI.run_tools(Emitter(), {"x": 1})  # type: ignore[arg-type, dict-item]
