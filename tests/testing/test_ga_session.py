"""GA session features on the fake: accepted when well-formed, refused with OpenAI's error codes and
``param`` when not, and their server events in OpenAI's order (MCP listing, the SIP sideband)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from voxline.testing import FakeRealtimeServer, ScriptedResponse

from .conftest import RawClient, open_client, types

MCP = {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/sse"}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


def session(**fields: Any) -> dict[str, Any]:
    return {"type": "realtime", **fields}


def vad(**fields: Any) -> dict[str, Any]:
    return {"audio": {"input": {"turn_detection": fields}}}


WELL_FORMED = [
    pytest.param(vad(type="semantic_vad", eagerness="high"), id="semantic-vad-eagerness"),
    pytest.param(vad(type="server_vad", idle_timeout_ms=6000), id="idle-timeout"),
    pytest.param({"audio": {"input": {"noise_reduction": {"type": "far_field"}}}}, id="noise-reduction"),
    pytest.param({"audio": {"output": {"speed": 1.25}}}, id="output-speed"),
    pytest.param({"truncation": {"type": "retention_ratio", "retention_ratio": 0.8}}, id="retention-ratio"),
    pytest.param({"truncation": "disabled"}, id="truncation-disabled"),
    pytest.param({"prompt": {"id": "pmpt_123", "version": "2", "variables": {"city": "Paris"}}}, id="prompt"),
    pytest.param({"tools": [{**MCP, "require_approval": "always"}]}, id="mcp-tool"),
]

MALFORMED = [
    pytest.param(
        vad(type="semantic_vad", eagerness="fast"),
        "invalid_value",
        "session.audio.input.turn_detection.eagerness",
        id="eagerness",
    ),
    pytest.param(
        vad(type="server_vad", idle_timeout_ms=1000),
        "integer_below_min_value",
        "session.audio.input.turn_detection.idle_timeout_ms",
        id="idle-timeout-too-short",
    ),
    pytest.param(
        vad(type="semantic_vad", idle_timeout_ms=6000),
        "unknown_parameter",
        "session.audio.input.turn_detection.idle_timeout_ms",
        id="idle-timeout-on-semantic-vad",
    ),
    pytest.param(
        {"audio": {"input": {"noise_reduction": {"type": "loud"}}}},
        "invalid_value",
        "session.audio.input.noise_reduction.type",
        id="noise-reduction-type",
    ),
    pytest.param(
        {"audio": {"output": {"speed": 2.0}}},
        "decimal_above_max_value",
        "session.audio.output.speed",
        id="speed",
    ),
    pytest.param(
        {"truncation": {"type": "retention_ratio", "retention_ratio": 1.5}},
        "decimal_above_max_value",
        "session.truncation.retention_ratio",
        id="retention-ratio-range",
    ),
    pytest.param(
        {"truncation": {"type": "retention_ratio"}},
        "missing_required_parameter",
        "session.truncation.retention_ratio",
        id="retention-ratio-missing",
    ),
    pytest.param(
        {"prompt": {"version": "2"}}, "missing_required_parameter", "session.prompt.id", id="prompt-id"
    ),
    pytest.param(
        {"tools": [{"type": "mcp", "server_label": "crm"}]},
        "missing_required_parameter",
        "session.tools[0].server_url",
        id="mcp-without-server",
    ),
    pytest.param(
        {"tools": [MCP, MCP]}, "invalid_value", "session.tools[1].server_label", id="mcp-duplicate-label"
    ),
    pytest.param(
        {"tools": [{**MCP, "require_approval": "sometimes"}]},
        "invalid_type",
        "session.tools[0].require_approval",
        id="mcp-approval",
    ),
]


@pytest.mark.parametrize("fields", WELL_FORMED)
async def test_well_formed_ga_settings_are_applied(
    server: FakeRealtimeServer, client: RawClient, fields: dict[str, Any]
) -> None:
    await client.send("session.update", session=session(**fields))
    updated = await client.recv()
    assert updated["type"] == "session.updated"
    assert contains(updated["session"], fields)
    server.assert_no_violations()


def contains(actual: Any, expected: Any) -> bool:
    """``expected``'s keys hold the same values in ``actual`` (objects merge, the rest is equal)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    return bool(actual == expected)


@pytest.mark.parametrize(("fields", "code", "param"), MALFORMED)
async def test_malformed_ga_settings_get_openais_error_and_change_nothing(
    server: FakeRealtimeServer, client: RawClient, fields: dict[str, Any], code: str, param: str
) -> None:
    await client.send("session.update", session=session(**fields), event_id="evt_bad")
    error = await client.recv()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["event_id"] == "evt_bad"
    # The whole update is discarded: the session is as it was.
    assert server.sessions[0].session["audio"]["input"]["noise_reduction"] is None
    assert server.sessions[0].session["tools"] == []


async def test_an_added_mcp_server_is_listed_in_openais_order() -> None:
    tools = [{"name": "lookup_order", "input_schema": {"type": "object"}, "description": "Find an order"}]
    async with FakeRealtimeServer(mcp_servers={"crm": tools}) as server:
        client, _ = await open_client(server)
        broken = {**MCP, "server_label": "down", "server_url": "https://down.example.com"}
        await client.send("session.update", session=session(tools=[MCP, broken]))
        events = [await client.recv() for _ in range(1 + 4 + 3)]
        assert events[0]["type"] == "session.updated"
        by_label: dict[str, list[str]] = {}
        item_ids: dict[str, str] = {}
        for event in events[1:]:
            if event["type"].startswith("conversation.item"):
                label = event["item"]["server_label"]
                item_ids[label] = event["item"]["id"]
            else:
                label = next(k for k, v in item_ids.items() if v == event["item_id"])
            by_label.setdefault(label, []).append(event["type"])
        assert by_label["crm"] == [
            "conversation.item.added",
            "mcp_list_tools.in_progress",
            "mcp_list_tools.completed",
            "conversation.item.done",
        ]
        assert by_label["down"] == [
            "conversation.item.added",
            "mcp_list_tools.in_progress",
            "mcp_list_tools.failed",
        ]
        done = next(e for e in events if e["type"] == "conversation.item.done")
        assert done["item"]["type"] == "mcp_list_tools" and done["item"]["tools"] == tools
        # Listed once: the same tools again list nothing new.
        await client.send("session.update", session=session(tools=[MCP, broken]))
        assert types([await client.recv()]) == ["session.updated"]
        server.assert_no_violations()
        await client.ws.close()


async def test_an_approval_response_item_is_accepted(server: FakeRealtimeServer, client: RawClient) -> None:
    item = {"type": "mcp_approval_response", "id": "mcpa_1", "approval_request_id": "mcpr_1", "approve": True}
    await client.send("conversation.item.create", item=item)
    added = await client.recv()
    assert added["type"] == "conversation.item.added"
    assert added["item"]["type"] == "mcp_approval_response" and added["item"]["approve"] is True
    server.assert_no_violations()


async def test_image_input_items_need_a_png_or_jpeg_data_uri(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    good = {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": PNG}]}
    await client.send("conversation.item.create", item=good)
    added = await client.recv()
    assert added["type"] == "conversation.item.added"
    assert added["item"]["content"][0]["type"] == "input_image"
    for url in ("https://example.com/cat.png", "data:image/gif;base64,R0lGOD=="):
        bad = {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": url}]}
        await client.send("conversation.item.create", item=bad)
        error = await client.recv()
        while error["type"] != "error":
            error = await client.recv()
        assert (error["error"]["code"], error["error"]["param"]) == (
            "invalid_value",
            "item.content[0].image_url",
        )


async def test_output_audio_buffer_clear_is_refused_on_a_plain_websocket_session(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.send("output_audio_buffer.clear")
    error = await client.recv()
    assert (error["type"], error["error"]["code"], error["error"]["param"]) == (
        "error",
        "invalid_value",
        "type",
    )


def compact(events: list[dict[str, Any]]) -> list[str]:
    """Event types with repeated deltas folded into one."""
    out: list[str] = []
    for kind in types(events):
        if not (out and kind == out[-1] and kind.endswith(".delta")):
            out.append(kind)
    return out


async def test_an_mcp_call_asks_approval_then_runs_in_openais_order() -> None:
    from voxline.testing import MCPCall, Say

    tools = [{"name": "lookup_order", "input_schema": {"type": "object"}}]
    async with FakeRealtimeServer(mcp_servers={"crm": tools}) as server:
        client, _ = await open_client(server)
        await client.send("session.update", session=session(output_modalities=["text"], tools=[MCP]))
        await client.until("conversation.item.done")  # the listing
        call = MCPCall("crm", "lookup_order", '{"order_id": "A-42"}', output='{"status": "shipped"}')
        server.script(
            ScriptedResponse(outputs=[call]), ScriptedResponse(outputs=[call, Say("It has shipped.")])
        )
        await client.send("response.create")
        first = await client.until("response.done")
        assert compact(first) == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "conversation.item.done",
            "response.output_item.done",
            "response.done",
        ]
        request = first[1]["item"]
        assert request["type"] == "mcp_approval_request"
        assert (request["server_label"], request["name"], request["arguments"]) == (
            "crm",
            "lookup_order",
            '{"order_id": "A-42"}',
        )
        answer = {
            "type": "mcp_approval_response",
            "id": "mcpa_1",
            "approval_request_id": request["id"],
            "approve": True,
        }
        await client.send("conversation.item.create", item=answer)
        await client.until("conversation.item.done")
        await client.send("response.create")
        second = await client.until("response.done")
        assert compact(second)[:10] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
            "conversation.item.done",
            "response.output_item.done",
            "response.output_item.added",  # then the message
        ]
        done = next(e for e in second if e["type"] == "response.output_item.done")["item"]
        assert (done["type"], done["output"], done["error"]) == ("mcp_call", '{"status": "shipped"}', None)
        assert (
            next(e for e in second if e["type"] == "response.mcp_call_arguments.done")["arguments"]
            == call.arguments
        )
        server.assert_no_violations()
        await client.ws.close()


async def test_an_mcp_call_without_approval_runs_at_once_and_a_failure_is_reported() -> None:
    from voxline.testing import MCPCall

    async with FakeRealtimeServer(mcp_servers={"crm": []}) as server:
        client, _ = await open_client(server)
        tool = {**MCP, "require_approval": "never"}
        await client.send("session.update", session=session(output_modalities=["text"], tools=[tool]))
        await client.until("conversation.item.done")
        server.script(
            ScriptedResponse(outputs=[MCPCall("crm", "lookup_order", error="timeout talking to CRM")])
        )
        await client.send("response.create")
        events = await client.until("response.done")
        assert "mcp_approval_request" not in str(events)
        assert "response.mcp_call.failed" in types(events)
        item = next(e for e in events if e["type"] == "response.output_item.done")["item"]
        assert item["error"] == {"type": "mcp_tool_execution_error", "message": "timeout talking to CRM"}
        await client.ws.close()


async def test_a_refused_approval_leaves_the_mcp_call_out() -> None:
    from voxline.testing import MCPCall, Say

    async with FakeRealtimeServer(mcp_servers={"crm": []}) as server:
        client, _ = await open_client(server)
        await client.send("session.update", session=session(output_modalities=["text"], tools=[MCP]))
        await client.until("conversation.item.done")
        call = MCPCall("crm", "delete_account")
        server.script(
            ScriptedResponse(outputs=[call]), ScriptedResponse(outputs=[call, Say("I won't do that.")])
        )
        await client.send("response.create")
        request = (await client.until("response.done"))[1]["item"]
        answer = {
            "type": "mcp_approval_response",
            "id": "mcpa_2",
            "approval_request_id": request["id"],
            "approve": False,
        }
        await client.send("conversation.item.create", item=answer)
        await client.until("conversation.item.done")
        await client.send("response.create")
        events = await client.until("response.done")
        assert not [e for e in events if e["type"].startswith("response.mcp_call")]
        assert events[-1]["response"]["output"][0]["type"] == "message"
        server.assert_no_violations()
        await client.ws.close()
