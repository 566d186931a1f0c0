"""Responses: OpenAI's event order, audio in the session's output format, text mode, function calls,
multi-item responses, cancellation, barge-in and truncation."""

from __future__ import annotations

import base64
import json
from typing import Any

from voxline.audio.tone import tone
from voxline.testing import FakeRealtimeServer, FunctionCall, Say, ScriptedResponse

from .conftest import RawClient, open_client, types


def collapse(names: list[str]) -> list[str]:
    """Event types with runs of one delta type folded into one entry."""
    out: list[str] = []
    for name in names:
        if not (out and out[-1] == name and name.endswith(".delta")):
            out.append(name)
    return out


async def say_hi(client: RawClient) -> str:
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    )
    added = await client.recv()
    await client.recv()
    return str(added["item"]["id"])


async def response(client: RawClient, **params: Any) -> list[dict[str, Any]]:
    if params:
        await client.send("response.create", response=params)
    else:
        await client.send("response.create")
    events = await client.until("response.done")
    events.append(await client.recv())
    return events


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )


async def test_audio_response_in_openai_order(server: FakeRealtimeServer, client: RawClient) -> None:
    audio = tone(300.0, 1000, 24000)
    server.script(ScriptedResponse(text="Loud and clear! How can I help?", audio=audio, chunk_ms=200))
    user_id = await say_hi(client)
    events = await response(client)
    names = types(events)
    assert collapse([n for n in names if not n.endswith("transcript.delta")]) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    # Transcript and audio deltas interleave, the transcript running ahead.
    first_audio = names.index("response.output_audio.delta")
    assert names[first_audio - 1] == "response.output_audio_transcript.delta"
    assert names.index("response.output_audio_transcript.delta") < first_audio
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert [len(base64.b64decode(d["delta"])) for d in deltas] == [200 * 48] * 5
    assert audio_of(events) == audio
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == "Loud and clear! How can I help?"

    created, done = events[0]["response"], events[-2]["response"]
    assert created["object"] == "realtime.response"
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)
    assert created["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
    item_id = events[1]["item"]["id"]
    assert events[2]["previous_item_id"] == user_id
    assert events[3]["part"] == {"type": "audio", "transcript": ""}
    assert all(
        (e["response_id"], e["item_id"], e["output_index"], e["content_index"])
        == (created["id"], item_id, 0, 0)
        for e in deltas
    )
    final_item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": transcript}],
    }
    assert done["status"] == "completed"
    assert done["output"] == [final_item]
    assert events[names.index("conversation.item.done")]["item"] == final_item
    usage = done["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert set(usage["input_token_details"]) >= {"text_tokens", "audio_tokens", "cached_tokens"}
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert [r["name"] for r in events[-1]["rate_limits"]] == ["requests", "tokens"]
    connection = await server.wait_for_session()
    assert [i["id"] for i in connection.items] == [user_id, item_id]
    server.assert_no_violations()


async def test_default_reply_and_generated_audio(client: RawClient) -> None:
    await say_hi(client)
    events = await response(client)
    done = events[-2]["response"]
    assert done["output"][0]["content"][0]["transcript"] == "Hello! How can I help you today?"
    assert len(audio_of(events)) > 24000  # about as long as the text takes to say


async def test_text_mode(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(ScriptedResponse(text="Sure, I can help with that."))
    await say_hi(client)
    events = await response(client, output_modalities=["text"])
    assert collapse(types(events)) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    assert events[3]["part"] == {"type": "text", "text": ""}
    assert events[-6]["text"] == "Sure, I can help with that."
    assert events[-5]["part"] == {"type": "text", "text": "Sure, I can help with that."}
    assert events[-2]["response"]["output"][0]["content"] == [
        {"type": "output_text", "text": "Sure, I can help with that."}
    ]
    assert events[-2]["response"]["output_modalities"] == ["text"]


async def test_output_audio_in_g711(server: FakeRealtimeServer, client: RawClient) -> None:
    await client.send(
        "session.update",
        session={"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcma"}}}},
    )
    await client.recv()
    server.script(ScriptedResponse(text="Hi", audio=tone(300.0, 600, 24000), chunk_ms=100))
    await say_hi(client)
    events = await response(client)
    deltas = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"]
    assert [len(d) for d in deltas] == [800] * 6  # 8 bytes a millisecond
    assert events[0]["response"]["audio"]["output"]["format"] == {"type": "audio/pcma"}


async def test_function_call_round_trip(server: FakeRealtimeServer, client: RawClient) -> None:
    args = json.dumps({"location": "San Francisco", "unit": "celsius"})
    server.script(
        ScriptedResponse(function_calls=[FunctionCall("get_weather", args, call_id="call_42")]),
        ScriptedResponse(text="It is sunny."),
    )
    await say_hi(client)
    events = await response(client)
    assert collapse(types(events)) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    added = events[1]["item"]
    assert (added["type"], added["status"], added["name"], added["call_id"], added["arguments"]) == (
        "function_call",
        "in_progress",
        "get_weather",
        "call_42",
        "",
    )
    streamed = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert streamed == args
    args_done = events[-5]
    assert (args_done["call_id"], args_done["name"], args_done["arguments"]) == (
        "call_42",
        "get_weather",
        args,
    )
    output_done = events[-3]["item"]
    assert (output_done["status"], output_done["arguments"]) == ("completed", args)
    assert events[-2]["response"]["output"] == [output_done]
    await client.send(
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": "call_42", "output": '{"t": 21}'},
    )
    await client.until("conversation.item.done")
    follow_up = await response(client)
    assert follow_up[-2]["response"]["output"][0]["content"][0]["transcript"] == "It is sunny."
    server.assert_no_violations()


async def test_multi_item_response(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(
        ScriptedResponse(
            outputs=[Say("Let me check."), FunctionCall("lookup", '{"q": 1}'), Say("Second message.")]
        )
    )
    await say_hi(client)
    events = await response(client)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [
        (0, "message"),
        (1, "function_call"),
        (2, "message"),
    ]
    conv_added = [e for e in events if e["type"] == "conversation.item.added"]
    assert conv_added[1]["previous_item_id"] == added[0]["item"]["id"]
    assert conv_added[2]["previous_item_id"] == added[1]["item"]["id"]
    output = events[-2]["response"]["output"]
    assert [o["type"] for o in output] == ["message", "function_call", "message"]
    assert output[2]["content"][0]["transcript"] == "Second message."


async def test_out_of_band_response_stays_out_of_the_conversation(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await say_hi(client)
    events = await response(
        client, conversation="none", output_modalities=["text"], metadata={"purpose": "summary"}
    )
    assert not any(e["type"].startswith("conversation.item") for e in events)
    assert events[0]["response"]["conversation_id"] is None
    assert events[-2]["response"]["metadata"] == {"purpose": "summary"}
    assert len((await server.wait_for_session()).items) == 1


async def test_failed_response(server: FakeRealtimeServer, client: RawClient) -> None:
    details = {"type": "failed", "error": {"type": "insufficient_quota", "code": "insufficient_quota"}}
    server.script(ScriptedResponse(status="failed", status_details=details))
    events = await response(client)
    assert types(events) == ["response.created", "response.done", "rate_limits.updated"]
    assert (events[1]["response"]["status"], events[1]["response"]["status_details"]) == ("failed", details)


async def test_cancel_an_active_response(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(ScriptedResponse(text="A long answer " * 10, chunk_ms=100, stall_after_ms=300))
    await say_hi(client)
    await client.send("response.create")
    first = await client.until("response.output_audio.delta")
    await server.wait_for_sent("response.output_audio.delta", count=3)
    await client.send("response.create")
    events = await client.until("error")
    assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
    await client.send("response.cancel")
    events = first + events + await client.until("response.done")
    tail = types(events)[types(events).index("response.output_audio.done") :]
    assert tail == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert len(audio_of(events)) == 300 * 48  # what was sent before the stall
    assert (await client.recv())["type"] == "rate_limits.updated"
    await client.send("response.cancel", event_id="late")
    error = (await client.recv())["error"]
    assert (error["code"], error["message"], error["event_id"]) == (
        "response_cancel_not_active",
        "Cancellation failed: no active response found",
        "late",
    )
    server.assert_no_violations(
        ignore={"conversation_already_has_active_response", "response_cancel_not_active"}
    )


async def test_release_lets_a_stalled_response_finish(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(ScriptedResponse(text="Wait for it", audio=tone(300.0, 1000, 24000), stall_after_ms=200))
    await client.send("response.create")
    await server.wait_for_sent("response.output_audio.delta")
    server.release()
    events = await client.until("response.done")
    assert events[-1]["response"]["status"] == "completed"
    assert len(audio_of(events)) == 1000 * 48


async def test_barge_in_cancels_with_turn_detected(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(
        ScriptedResponse(text="I will keep talking", stall_after_ms=400), ScriptedResponse(text="Yes?")
    )
    await client.send("response.create")
    await server.wait_for_sent("response.output_audio.delta")
    await client.append(tone(440.0, 500, 24000) + bytes(48 * 300))
    events = await client.until("rate_limits.updated")
    names = types(events)
    started = names.index("input_audio_buffer.speech_started")
    done = names.index("response.done")
    assert started < done
    cancelled = events[done]["response"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    # The turn then ends and gets its own response.
    next_events = await client.until("response.done")
    assert "input_audio_buffer.committed" in types(next_events)
    assert next_events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Yes?"
    server.assert_no_violations()


async def test_truncation(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(ScriptedResponse(text="Truncate me", audio=tone(300.0, 1000, 24000)))
    user_id = await say_hi(client)
    events = await response(client)
    item_id = events[1]["item"]["id"]
    await client.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=400)
    truncated = await client.recv()
    assert (
        truncated["type"],
        truncated["item_id"],
        truncated["content_index"],
        truncated["audio_end_ms"],
    ) == (
        "conversation.item.truncated",
        item_id,
        0,
        400,
    )
    connection = await server.wait_for_session()
    assert len(connection.item_audio(item_id)) == 400 * 48
    assert connection.items[-1]["content"][0]["transcript"] == ""

    await client.send(
        "conversation.item.truncate", event_id="t2", item_id=item_id, content_index=0, audio_end_ms=900
    )
    error = await client.recv()
    assert error["error"]["message"] == "Audio content of 400ms is already shorter than 900ms"
    assert error["error"]["event_id"] is None  # live leaves it out
    clamped = await client.recv()
    assert (clamped["type"], clamped["audio_end_ms"]) == ("conversation.item.truncated", 400)

    await client.send("conversation.item.truncate", item_id=user_id, content_index=0, audio_end_ms=0)
    error = await client.recv()
    assert error["error"]["message"] == "Only model output audio messages can be truncated"
    await client.send("conversation.item.truncate", item_id="item_nope", content_index=0, audio_end_ms=0)
    assert (await client.recv())["error"]["code"] == "item_not_found"
    outcomes = [(t.audio_end_ms, t.ok) for t in server.truncations]
    assert outcomes == [(400, True), (900, False), (0, False), (0, False)]
    assert server.truncations[1].audio_ms == 400
    assert len(server.violations) == 3


async def test_retrieve_an_assistant_item_includes_its_audio(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    audio = tone(300.0, 300, 24000)
    server.script(ScriptedResponse(text="Hear this", audio=audio))
    events = await response(client)
    item_id = events[1]["item"]["id"]
    await client.send("conversation.item.retrieve", item_id=item_id)
    part = (await client.recv())["item"]["content"][0]
    assert (part["type"], part["transcript"], part["format"]) == ("audio", "Hear this", "pcm16")
    assert base64.b64decode(part["audio"]) == audio


async def test_voice_is_fixed_once_audio_was_sent(client: RawClient) -> None:
    await response(client)
    await client.send("session.update", session={"type": "realtime", "audio": {"output": {"voice": "echo"}}})
    assert (await client.recv())["error"]["code"] == "cannot_update_voice"


async def test_paced_streaming_delivers_the_same_events() -> None:
    # Pacing only spaces the events out (here 50x real time, so the test stays fast); nothing else changes.
    async with FakeRealtimeServer(pace=50.0) as server:
        server.script(
            ScriptedResponse(text="Paced", audio=tone(300.0, 1000, 24000), chunk_ms=100, delay_ms=5)
        )
        client, _ = await open_client(server)
        events = await response(client)
        assert len(audio_of(events)) == 1000 * 48
        assert types(events).count("response.output_audio.delta") == 10
        assert events[-2]["response"]["status"] == "completed"
        await client.ws.close()
