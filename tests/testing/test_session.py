"""Session updates, validation answers, and the conversation (create, retrieve, delete)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from voxline.testing import FakeRealtimeServer

from .conftest import RawClient, types


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_session_update_merges_and_answers_the_full_session(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.send(
        "session.update",
        session={
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "output": {"voice": "marin"},
                "input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}},
            },
        },
    )
    updated = (await client.recv())["session"]
    assert updated["instructions"] == "Be brief."
    assert updated["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1.0,
    }
    detection = updated["audio"]["input"]["turn_detection"]
    assert detection["threshold"] == 0.7
    assert detection["silence_duration_ms"] == 200  # untouched fields stay
    assert updated["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    # A format object is replaced whole: pcmu has no rate.
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    )
    again = await client.recv()
    assert again["type"] == "session.updated"
    assert again["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert again["session"]["instructions"] == "Be brief."
    connection = await server.wait_for_session()
    assert connection.session == again["session"]
    server.assert_no_violations()


async def test_turn_detection_null_turns_vad_off(client: RawClient) -> None:
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    assert (await client.recv())["session"]["audio"]["input"]["turn_detection"] is None


async def test_unknown_session_field_discards_the_whole_update(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.send(
        "session.update",
        event_id="evt_1",
        session={"type": "realtime", "instructions": "new", "voice_id": "v"},
    )
    error = await client.recv()
    assert error["type"] == "error"
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "unknown_parameter",
        "message": "Unknown parameter: 'session.voice_id'.",
        "param": "session.voice_id",
        "event_id": "evt_1",
    }
    connection = await server.wait_for_session()
    assert connection.session["instructions"] != "new"
    assert server.violations == ["session.update: unknown_parameter: Unknown parameter: 'session.voice_id'."]
    with pytest.raises(AssertionError, match="voice_id"):
        server.assert_no_violations()
    server.assert_no_violations(ignore={"unknown_parameter"})


async def test_pcm_rate_other_than_24k_is_rejected(server: FakeRealtimeServer, client: RawClient) -> None:
    fmt = {"type": "audio/pcm", "rate": 16000}
    await client.send("session.update", session={"type": "realtime", "audio": {"input": {"format": fmt}}})
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("integer_below_min_value", "session.audio.input.format.rate")
    assert (await server.wait_for_session()).session["audio"]["input"]["format"]["rate"] == 24000


async def test_legacy_and_webrtc_events_are_rejected(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send("transcription_session.update", session={"input_audio_format": "pcm16"})
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "type")
    await client.send("output_audio_buffer.clear")
    assert (await client.recv())["error"]["param"] == "type"
    assert len(server.violations) == 2


async def test_session_type_cannot_change(client: RawClient) -> None:
    await client.send("session.update", session={"type": "transcription"})
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "session.type")


async def test_binary_and_non_json_frames(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.ws.send(b"\x00\x01\x02")
    error = (await client.recv())["error"]
    assert error["code"] == "invalid_event"
    assert error["message"] == "Expected a text WebSocket message; binary frames are not supported."
    await client.ws.send("{not json")
    assert (await client.recv())["error"]["code"] == "invalid_json"
    # Neither is fatal: the session goes on.
    await client.send("input_audio_buffer.clear")
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    assert len(server.violations) == 2


async def test_bad_base64_audio(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send("input_audio_buffer.append", audio="!!!not base64")
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "audio")


async def test_every_client_event_is_recorded(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send("input_audio_buffer.clear", event_id="a")
    await client.send("input_audio_buffer.clear", event_id="b")
    events = await server.wait_for("input_audio_buffer.clear", count=2)
    assert [e["event_id"] for e in events] == ["a", "b"]
    connection = await server.wait_for_session()
    assert connection.received == server.received
    cleared = await server.wait_for_sent("input_audio_buffer.cleared", count=2)
    assert all(e["event_id"].startswith("event_") for e in cleared)
    with pytest.raises(TimeoutError, match=r"response\.create"):
        await server.wait_for("response.create", timeout=0.05)


async def test_item_create_added_done_and_previous_item_id(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.send("conversation.item.create", item=user_text("one"))
    added, done = await client.recv(), await client.recv()
    assert types([added, done]) == ["conversation.item.added", "conversation.item.done"]
    assert added["previous_item_id"] is None
    first = added["item"]
    assert first["id"].startswith("item_")
    assert first["status"] == "completed"
    assert first["content"] == [{"type": "input_text", "text": "one"}]
    await client.send("conversation.item.create", item={**user_text("two"), "id": "mine"})
    second = await client.recv()
    assert (second["item"]["id"], second["previous_item_id"]) == ("mine", first["id"])
    await client.recv()
    await client.send("conversation.item.create", previous_item_id="root", item=user_text("zero"))
    zero = await client.recv()
    assert zero["previous_item_id"] is None
    await client.recv()
    await client.send("conversation.item.create", previous_item_id=first["id"], item=user_text("between"))
    between = await client.recv()
    assert between["previous_item_id"] == first["id"]
    await client.recv()
    connection = await server.wait_for_session()
    texts = [item["content"][0]["text"] for item in connection.items]
    assert texts == ["zero", "one", "between", "two"]


async def test_item_create_errors(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send("conversation.item.create", previous_item_id="nope", item=user_text("x"))
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("item_not_found", "previous_item_id")
    await client.send(
        "conversation.item.create", event_id="e9", item={"type": "function_call_output", "output": "1"}
    )
    error = (await client.recv())["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "missing_required_parameter",
        "item.call_id",
        "e9",
    )


async def test_retrieve_and_delete(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send("conversation.item.create", item=user_text("keep"))
    item_id = (await client.recv())["item"]["id"]
    await client.recv()
    await client.send("conversation.item.retrieve", item_id=item_id)
    retrieved = await client.recv()
    assert retrieved["type"] == "conversation.item.retrieved"
    assert retrieved["item"]["id"] == item_id
    assert retrieved["item"]["object"] == "realtime.item"
    await client.send("conversation.item.delete", item_id=item_id)
    deleted = await client.recv()
    assert (deleted["type"], deleted["item_id"]) == ("conversation.item.deleted", item_id)
    await client.send("conversation.item.delete", item_id=item_id)
    assert (await client.recv())["error"]["code"] == "item_not_found"
    await client.send("conversation.item.retrieve", item_id=item_id)
    assert (await client.recv())["error"]["code"] == "item_not_found"
    assert (await server.wait_for_session()).items == []


async def test_function_call_output_item(client: RawClient) -> None:
    item = {"type": "function_call_output", "call_id": "call_1", "output": json.dumps({"ok": True})}
    await client.send("conversation.item.create", item=item)
    added = (await client.recv())["item"]
    assert added["type"] == "function_call_output"
    assert (added["call_id"], added["output"]) == ("call_1", '{"ok": true}')


async def test_input_audio_item_create(server: FakeRealtimeServer, client: RawClient) -> None:
    audio = bytes(range(256)) * 10
    content = [{"type": "input_audio", "audio": base64.b64encode(audio).decode("ascii")}]
    await client.send(
        "conversation.item.create", item={"type": "message", "role": "user", "content": content}
    )
    added = (await client.recv())["item"]
    assert added["content"] == [{"type": "input_audio", "transcript": None}]  # audio is not echoed
    await client.recv()
    assert (await server.wait_for_session()).item_audio(added["id"]) == audio
    bad = [{"type": "input_audio", "audio": "%%%"}]
    await client.send("conversation.item.create", item={"type": "message", "role": "user", "content": bad})
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "item.content[0].audio")
