"""The per-call tracker on a real call: the runtime on loopback, a Twilio-protocol caller that barges
in, the fake Realtime server calling a tool; the quality record reaches the scenario and the
``--call-log`` directory, and the call's start and end lines are logged with their fields."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.callflow import ANSWER, EXAMPLE, ORDER_ARGUMENTS, REPLY, barge_in_call
from voxline import telemetry
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.logs import JsonFormatter
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.sip.endpoint import SipEndpoint
from voxline.testing import FakeRealtimeServer, ScriptedResponse


class Recorder(telemetry.Telemetry):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def turn_finished(self, transport: str, response_ms: float | None) -> None:
        self.calls.append(("turn", (transport, response_ms)))

    def barge_in(self, transport: str, to_silence_ms: float | None) -> None:
        self.calls.append(("barge_in", (transport, to_silence_ms)))


async def test_the_quality_record_of_a_call_with_a_tool_call_and_a_barge_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Recorder()
    monkeypatch.setattr(telemetry, "TELEMETRY", seen)
    caplog.set_level(logging.INFO, logger="voxline.calls")
    result = await barge_in_call(tmp_path)
    record = result.event_record

    # The scenario's event and the --call-log file are the same record, one file per call.
    assert len(result.records) == 1
    assert result.records[0].name.endswith(f"-{record['call_id']}.json")
    assert json.loads(result.records[0].read_text(encoding="utf-8")) == record

    assert record["transport"] == "twilio" and record["direction"] == "inbound"
    assert record["caller"] == "+15550001" and record["destination"] == "+15550002"
    assert record["outcome"] == "completed" and record["privacy"] is False
    assert record["duration_s"] > 3  # the caller's 3.5 s of audio, then its linger

    # The tool call: arguments.done -> the function_call_output item the scenario sent.
    [tool] = record["tool_calls"]
    assert tool["name"] == "check_order" and tool["call_id"] == "call_1"
    assert tool["arguments"] == ORDER_ARGUMENTS
    assert tool["duration_ms"] is not None and tool["duration_ms"] >= 0
    outputs = [e for e in result.received if e["type"] == "conversation.item.create"]
    assert outputs and outputs[0]["item"]["call_id"] == "call_1"

    # The barge-in: cleared while the answer played; heard no more than the leg had been given,
    # and the truncation voxline sent is what the server confirmed.
    [barge] = record["barge_ins"]
    assert barge["to_silence_ms"] is not None and barge["to_silence_ms"] >= 0
    assert 0 < barge["heard_ms"] <= barge["received_ms"]
    assert barge["unplayed_ms"] == barge["received_ms"] - barge["heard_ms"]
    assert barge["audio_end_ms"] == result.truncate["audio_end_ms"]
    assert barge["truncated_item"] == result.truncate["item_id"]
    assert record["truncations"] == 1 and record["truncation_errors"] == 0
    assert record["clears"] >= 1

    # The turn: the caller's speech stopped -> the reply's first audio at the caller.
    [turn] = record["turns"]
    assert turn["outcome"] == "answered"
    assert turn["response_ms"] is not None and turn["response_ms"] >= 0
    assert record["latency"]["count"] == 1 and record["latency"]["p50_ms"] == turn["response_ms"]
    assert REPLY in turn["agent_said"]
    assert ANSWER in record["greeting"]  # before the caller's first turn

    # Tokens from every response.done's usage; no RTP on a carrier leg.
    assert record["responses"]["created"] == 3
    assert record["tokens"]["total_tokens"] > 0
    assert record["tokens"]["total_tokens"] == sum(
        record["tokens"][k] for k in ("input_tokens", "output_tokens")
    )
    assert turn["tokens"]["output_tokens"] > 0
    assert record["rtp"] is None

    # The metrics seam got each finished barge-in and turn once (the runtime counts the call).
    assert seen.calls == [
        ("barge_in", ("twilio", barge["to_silence_ms"])),
        ("turn", ("twilio", turn["response_ms"])),
    ]

    # One INFO line at the start, one at the end, readable and with their fields.
    lines = [r for r in caplog.records if r.name == "voxline.calls"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    start, end = lines
    assert start.getMessage().startswith(f"call {record['call_id']} started: twilio inbound from +15550001")
    assert start.fields["transport"] == "twilio" and start.fields["caller"] == "+15550001"  # type: ignore[attr-defined]
    message = end.getMessage()
    assert f"call {record['call_id']} ended: twilio from +15550001" in message
    assert "completed" in message and "1 turn," in message and "1 barge-in," in message
    fields = end.fields  # type: ignore[attr-defined]
    assert fields["event"] == "call_ended" and fields["outcome"] == "completed"
    assert fields["turns"] == 1 and fields["barge_ins"] == 1
    assert fields["p50_response_ms"] == turn["response_ms"]
    for line in lines:  # the record's own ids, which the log formats render
        assert line.session_id == record["session_id"] and line.call_id == record["call_id"]  # type: ignore[attr-defined]
    json_line = json.loads(JsonFormatter().format(end))
    assert json_line["call_id"] == record["call_id"] and json_line["turns"] == 1
    assert json_line["msg"] == message


async def test_with_privacy_the_record_has_no_transcript_text(tmp_path: Path) -> None:
    result = await barge_in_call(tmp_path, privacy=True)
    record = result.event_record
    assert record["privacy"] is True
    text = json.dumps(record)
    for words in (ANSWER, REPLY, "1234"):
        assert words not in text
    [turn] = record["turns"]
    assert "agent_said" not in turn and "caller_said" not in turn
    assert "arguments" not in record["tool_calls"][0] and "greeting" not in record
    # The figures are all there.
    assert turn["response_ms"] is not None and len(record["barge_ins"]) == 1


def test_call_log_and_otel_settings(tmp_path: Path) -> None:
    config = RuntimeConfig.load(
        {"scenario": "s.py"}, env={"VOXLINE_CALL_LOG": str(tmp_path), "VOXLINE_OTEL": "yes"}
    )
    assert config.call_log == str(tmp_path) and config.otel is True
    toml = tmp_path / "voxline.toml"
    toml.write_text('[run]\ncall_log = "off"\notel = false\n', encoding="utf-8")
    config = RuntimeConfig.load({"scenario": "s.py"}, env={}, config_file=str(toml))
    assert config.call_log is None and config.otel is False
    with pytest.raises(ValueError, match="otel must be true or false"):
        RuntimeConfig.load({"scenario": "s.py", "otel": "maybe"}, env={})


def test_a_call_log_that_cannot_be_created_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    scenario = tmp_path / "s.py"
    scenario.write_text("", encoding="utf-8")
    config = RuntimeConfig.load({"scenario": str(scenario), "call_log": str(blocker / "calls")}, env={})
    with pytest.raises(ValueError, match="call_log: cannot create the directory"):
        Runtime(config)


def test_without_otel_the_runtime_never_imports_opentelemetry(tmp_path: Path) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("", encoding="utf-8")
    code = (
        "import sys\n"
        "from voxline.runtime.server import Runtime, RuntimeConfig\n"
        f"Runtime(RuntimeConfig.load({{'scenario': {str(scenario)!r}}}, env={{}}))\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_a_sip_call_record_has_the_rtp_figures_and_the_sip_call_id(tmp_path: Path) -> None:
    async with FakeRealtimeServer() as fake:
        fake.script(ScriptedResponse(text="Hello.", audio=tone(300, 400, 24000, 0.3)))
        config = RuntimeConfig.load(
            {
                "scenario": str(EXAMPLE),
                "sip": "127.0.0.1:0",
                "http": "off",
                "idle_session_s": 0.2,
                "call_log": str(tmp_path),
            },
            env={},
        )
        runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
        runtime.realtime_base_url = fake.base_url
        await runtime.start()
        caller = SipEndpoint("127.0.0.1", 0, transports=("udp",))
        await caller.start()
        try:
            assert runtime.sip is not None
            leg = await caller.call(f"sip:agent@127.0.0.1:{runtime.sip.port}", caller_id="sip-caller")
            await asyncio.wait_for(leg.wait_connected(), 10)
            connection = await fake.wait_for_session(timeout=5)
            leg.send_audio(ulaw_encode(tone(500, 600, 8000, 0.2)))
            for _ in range(500):  # until the model has had the caller's 600 ms
                if len(connection.input_audio) >= 4800:
                    break
                await asyncio.sleep(0.01)
            leg.hangup()
            await asyncio.wait_for(leg.wait_ended(), 5)
            for _ in range(500):
                if list(tmp_path.glob("*.json")):
                    break
                await asyncio.sleep(0.01)
        finally:
            await caller.close()
            await runtime.shutdown(grace_s=0)
    [path] = list(tmp_path.glob("*.json"))
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["transport"] == "sip" and record["caller"] == "sip-caller"
    assert record["carrier_call_id"] == leg.call_id
    assert record["outcome"] == "completed" and record["initiator"] == "remote"
    rtp = record["rtp"]
    assert rtp["received"] >= 30  # the caller's 600 ms in 20 ms packets, and more silence
    assert rtp["sent"] > 0 and rtp["lost"] == 0 and rtp["invalid"] == 0
