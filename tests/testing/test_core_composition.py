"""The session core composed of its parts (``voxline.realtime_server``): one state, read through the core."""

from __future__ import annotations

import base64
import json
from typing import Any

from voxline.audio.tone import tone
from voxline.realtime_server.core import RealtimeSessionCore
from voxline.realtime_server.engine import EnergySpeechDetector, ScriptedEngine, ScriptedTranscriber
from voxline.realtime_server.schema import default_validator


def make_core() -> RealtimeSessionCore:
    core = RealtimeSessionCore(
        kind="realtime",
        model="gpt-realtime",
        now=0.0,
        engine=ScriptedEngine(),
        detector=EnergySpeechDetector(),
        transcriber=ScriptedTranscriber(),
        validator=default_validator(),
    )
    core.start()
    return core


def send(core: RealtimeSessionCore, event_type: str, **fields: Any) -> None:
    core.receive_text(json.dumps({"type": event_type, **fields}))


class _NoDeltas(list[dict[str, Any]]):
    def append(self, event: dict[str, Any]) -> None:
        if event.get("type") != "response.output_audio.delta":
            super().append(event)


def test_records_replaced_through_the_core_are_the_ones_written() -> None:
    # bench/fake_server.py swaps a session's record lists for ones that keep no audio events.
    core = make_core()
    core.sent = _NoDeltas()
    send(core, "response.create")
    while core.next_due_ms() is not None:
        core.next_response_event()
    types = [e["type"] for e in core.sent]
    assert "response.done" in types and "response.output_audio.delta" not in types
    assert core.out.sent is core.sent


def test_the_parts_share_one_conversation_and_one_output() -> None:
    core = make_core()
    send(core, "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    audio = tone(440.0, 300, 24000)
    send(core, "input_audio_buffer.append", audio=base64.b64encode(audio).decode("ascii"))
    send(core, "input_audio_buffer.commit")
    (item,) = core.items
    assert core.conversation.items is core.items and core.item_audio[item["id"]][0] == audio
    assert core.input_audio == audio
    send(core, "response.create")
    assert core.response_active and core.active_response_id == core.responses.active_id
    core.pace = 2.0
    assert core.responses.pace == 2.0
    assert core.violations == [] and core.outbox is core.out.outbox
