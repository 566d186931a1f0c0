"""The sans-I/O part of session recycle and reconnect: what is carried, when a switch is safe, the
rolling summary, the replay's echoes, the reconnect policy."""

from __future__ import annotations

from typing import Any

import pytest

from voxline.openai.chat_context import SUMMARY_HEADER, message_size
from voxline.openai.params import DEFAULT_SUMMARY_PROMPT
from voxline.openai.session_carry import INTERRUPTED_MARK, ReconnectPolicy, SessionCarry


def user(item_id: str, text: str | None = None, transcript: str | None = None) -> dict[str, Any]:
    part = (
        {"type": "input_text", "text": text}
        if text is not None
        else {"type": "input_audio", "transcript": transcript}
    )
    return {"id": item_id, "type": "message", "role": "user", "content": [part]}


def assistant(item_id: str, transcript: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_audio", "transcript": transcript}],
    }


def feed(carry: SessionCarry, *events: dict[str, Any], now: float = 0.0) -> None:
    for event in events:
        carry.note_received(event["type"], event, now)


def test_turns_become_text_items_in_order() -> None:
    carry = SessionCarry()
    feed(
        carry,
        {"type": "conversation.item.done", "item": user("u1", transcript=None)},
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1",
            "transcript": " Hi ",
        },
        {"type": "response.created", "response": {"id": "r1"}},
        {"type": "response.output_item.added", "item": assistant("a1", "")},
        {"type": "response.output_audio_transcript.delta", "item_id": "a1", "delta": "Hel"},
        {"type": "response.output_item.done", "item": assistant("a1", "Hello there")},
        {
            "type": "response.done",
            "response": {
                "status": "completed",
                "output": [
                    {"id": "f1", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
                ],
            },
        },
        {
            "type": "conversation.item.done",
            "item": {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "42"},
        },
        {"type": "conversation.item.done", "item": user("u2", text="typed")},
        {
            "type": "conversation.item.done",
            "item": {"id": "img", "type": "message", "role": "user", "content": [{"type": "input_image"}]},
        },
    )
    assert carry.carry_items() == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}], "id": "u1"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello there"}],
            "id": "a1",
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "f1"},
        {"type": "function_call_output", "call_id": "c1", "output": "42", "id": "o1"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "typed"}], "id": "u2"},
    ]


def test_deleted_truncated_and_cut_off_items() -> None:
    carry = SessionCarry()
    feed(
        carry,
        {"type": "conversation.item.done", "item": user("u1", text="gone")},
        {"type": "conversation.item.deleted", "item_id": "u1"},
        {"type": "conversation.item.done", "item": assistant("a1", "barged into")},
        {"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0, "audio_end_ms": 300},
        {"type": "response.output_item.added", "item": assistant("a2", "")},
        {"type": "response.output_audio_transcript.delta", "item_id": "a2", "delta": "half a"},
        {"type": "response.output_item.added", "item": assistant("a3", "")},  # no word yet: nothing to carry
    )
    carry.session_ended()  # the session dropped with a2 and a3 streaming
    texts = [i["content"][0]["text"] for i in carry.carry_items()]
    assert texts == ["barged into" + INTERRUPTED_MARK, "half a" + INTERRUPTED_MARK]


def test_unsafe_reasons() -> None:
    carry = SessionCarry()
    assert carry.unsafe_reason(0.0) is None
    feed(carry, {"type": "input_audio_buffer.speech_started"})
    assert carry.unsafe_reason(0.0) == "the caller is speaking"
    feed(carry, {"type": "input_audio_buffer.speech_stopped"}, now=10.0)
    assert carry.unsafe_reason(10.5) == "the caller's turn was just committed"
    assert carry.unsafe_reason(13.5) is None  # no response came (create_response off)
    feed(carry, {"type": "input_audio_buffer.committed"}, now=20.0)
    feed(carry, {"type": "response.created", "response": {"id": "r"}}, now=20.1)
    assert carry.unsafe_reason(20.2) == "a response is active"
    call = {"id": "f1", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    feed(carry, {"type": "response.done", "response": {"status": "completed", "output": [call]}})
    assert carry.unsafe_reason(30.0) == "a function call has no output yet"
    feed(
        carry,
        {
            "type": "conversation.item.added",
            "item": {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": ""},
        },
    )
    assert carry.unsafe_reason(30.0) is None


def test_session_updates_are_replayed_in_order_without_repeats() -> None:
    carry = SessionCarry()
    first = {"session": {"type": "realtime", "instructions": "A"}}
    carry.note_sent("session.update", first, by_scenario=True)
    carry.note_sent("session.update", first, by_scenario=True)
    carry.note_sent("response.create", {}, by_scenario=True)
    negotiated = {"session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}}
    carry.note_sent("session.update", negotiated, by_scenario=False)
    first["session"]["instructions"] = "changed later"  # the carry keeps a copy
    assert carry.updates == [
        ({"session": {"type": "realtime", "instructions": "A"}}, True),
        (negotiated, False),
    ]


def test_the_oldest_turns_fold_into_a_summary_over_the_budget() -> None:
    carry = SessionCarry(budget_chars=400)
    for k in range(10):
        feed(
            carry,
            {"type": "conversation.item.done", "item": user(f"u{k}", text=f"question number {k}")},
            {"type": "conversation.item.done", "item": assistant(f"a{k}", f"answer number {k}")},
        )
    request = carry.fold_request(DEFAULT_SUMMARY_PROMPT)
    assert request is not None
    messages, ids = request
    # The Chat Completions context's summary request: the prompt, then the folded turns as lines.
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith(DEFAULT_SUMMARY_PROMPT)
    assert "user: question number 0" in messages[1]["content"]
    assert ids[:2] == ["u0", "a0"] and ids[-1].startswith("a")
    assert carry.apply_summary(ids, "They asked many numbered questions.")
    items = carry.carry_items()
    assert items[0]["role"] == "system"
    assert items[0]["content"][0]["text"] == SUMMARY_HEADER + "They asked many numbered questions."
    assert items[1]["id"] == f"u{len(ids) // 2}"  # the newest turns stay as they were
    # What stays fits half the budget (the fold rule of the Chat Completions context).
    assert sum(message_size(r.message()) for r in carry.items.values()) <= 200
    assert not carry.apply_summary(["u0"], "stale")  # already folded: nothing applied


def test_without_the_summary_model_the_oldest_turns_are_abridged_lines() -> None:
    carry = SessionCarry(budget_chars=300)
    for k in range(10):
        feed(carry, {"type": "conversation.item.done", "item": user(f"u{k}", text=f"question number {k}")})
    folded = carry.fold_locally()
    assert folded > 0
    summary = carry.summary
    assert summary is not None and len(summary) <= 300 // 4 + 1
    assert summary.endswith(f"user: question number {folded - 1}")  # the newest of the folded kept
    assert carry.carry_items()[1]["id"] == f"u{folded}"
    assert carry.fold_locally() == 0  # within the budget now


def test_echoes_of_the_replay_are_recognised_once() -> None:
    carry = SessionCarry()
    items = [{"id": "u1", "type": "message"}, {"type": "message"}]
    carry.expect_echoes(2, items)
    assert carry.is_echo("session.created", {})
    assert not carry.is_echo("session.created", {})
    assert carry.is_echo("session.updated", {}) and carry.is_echo("session.updated", {})
    assert not carry.is_echo("session.updated", {})  # the scenario's own update after the replay
    added = {"item": {"id": "u1"}}
    assert carry.is_echo("conversation.item.added", added) and carry.is_echo("conversation.item.done", added)
    assert not carry.is_echo("conversation.item.done", added)
    assert not carry.is_echo("conversation.item.added", {"item": {"id": "new"}})


def test_transcription_sessions_carry_no_items() -> None:
    carry = SessionCarry(conversation=False)
    feed(carry, {"type": "conversation.item.done", "item": user("u1", text="hi")})
    assert carry.carry_items() == []


def test_reconnect_policy() -> None:
    policy = ReconnectPolicy(max_attempts=5, backoff_s=0.5, backoff_factor=2, max_backoff_s=3)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert ReconnectPolicy.coerce(None) is None and ReconnectPolicy.coerce(False) is None
    assert ReconnectPolicy.coerce(True) == ReconnectPolicy()
    assert ReconnectPolicy.coerce({"max_attempts": 2}) == ReconnectPolicy(max_attempts=2)
    assert ReconnectPolicy.coerce(policy) is policy
    with pytest.raises(TypeError, match="unknown key"):
        ReconnectPolicy.coerce({"attempts": 2})
    with pytest.raises(ValueError, match="backoff_factor"):
        ReconnectPolicy(backoff_factor=0.5)


def test_many_updates_are_merged_oldest_first_as_the_session_applies_them() -> None:
    carry = SessionCarry()
    vad = {"type": "server_vad", "silence_duration_ms": 500}
    carry.note_sent(
        "session.update",
        {
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": vad}},
            }
        },
        by_scenario=False,
    )
    carry.note_sent(
        "session.update",
        {
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}},
            }
        },
        by_scenario=True,
    )
    for k in range(20):
        carry.note_sent(
            "session.update", {"session": {"type": "realtime", "instructions": f"v{k}"}}, by_scenario=True
        )
    assert len(carry.updates) == 16
    merged, by_scenario = carry.updates[0]
    assert by_scenario
    assert merged["session"]["audio"]["input"] == {
        "format": {"type": "audio/pcmu"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "threshold": 0.7},
    }
    assert merged["session"]["instructions"] == "v4"
    assert [u["session"]["instructions"] for u, _ in carry.updates[1:]] == [f"v{k}" for k in range(5, 20)]
