"""The session core composed of its parts (``voxline.realtime_server``): one state, read through the core."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from voxline.audio.tone import tone
from voxline.realtime_server.core import RealtimeSessionCore
from voxline.realtime_server.engine import EnergySpeechDetector, ScriptedEngine, ScriptedTranscriber
from voxline.realtime_server.schema import default_validator


def make_core(
    keep_record: Callable[[Mapping[str, Any]], bool] | None = None,
    on_sent: Callable[[dict[str, Any]], None] | None = None,
    on_received: Callable[[dict[str, Any]], None] | None = None,
) -> RealtimeSessionCore:
    core = RealtimeSessionCore(
        kind="realtime",
        model="gpt-realtime",
        now=0.0,
        engine=ScriptedEngine(),
        detector=EnergySpeechDetector(),
        transcriber=ScriptedTranscriber(),
        validator=default_validator(),
        keep_record=keep_record,
        on_sent=on_sent,
        on_received=on_received,
    )
    core.start()
    return core


def send(core: RealtimeSessionCore, event_type: str, **fields: Any) -> None:
    core.receive_text(json.dumps({"type": event_type, **fields}), 0.0)


def play_out(core: RealtimeSessionCore) -> None:
    while (deadline := core.next_deadline()) is not None:
        core.tick(deadline)


_AUDIO = ("input_audio_buffer.append", "response.output_audio.delta")


def test_keep_record_filters_the_sessions_own_records_not_the_callbacks() -> None:
    # bench/fake_server.py keeps no audio events in a session's record lists.
    mirrored_sent: list[dict[str, Any]] = []
    mirrored_received: list[dict[str, Any]] = []
    core = make_core(lambda e: e.get("type") not in _AUDIO, mirrored_sent.append, mirrored_received.append)
    send(core, "input_audio_buffer.append", audio=base64.b64encode(bytes(4800)).decode("ascii"))
    send(core, "response.create")
    play_out(core)
    types = [e["type"] for e in core.sent]
    assert "response.done" in types and "response.output_audio.delta" not in types
    assert "response.output_audio.delta" in [e["type"] for e in mirrored_sent]
    assert [e["type"] for e in core.received] == ["response.create"]
    assert len(mirrored_received) == 2
    # What goes out is every event, whatever the records keep.
    assert [e for e in core.data_to_send() if isinstance(e, dict)] == mirrored_sent


def test_the_cores_fields_are_read_only_from_outside() -> None:
    core = make_core()
    for name, value in (("pace", 2.0), ("sent", []), ("received", []), ("session", {}), ("closed", True)):
        with pytest.raises(AttributeError):
            setattr(core, name, value)
    core.set_pace(2.0)
    assert core.pace == 2.0
    with pytest.raises(ValueError, match="pace must be positive"):
        core.set_pace(0)


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
    core.set_pace(2.0)
    assert core.responses.pace == 2.0
    assert core.violations == []
