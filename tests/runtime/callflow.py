"""One Twilio call through the real runtime on loopback, shared by the accounting and the tracing
tests: the example agent (tools and barge-in), the fake Realtime server scripted to call
``check_order`` first, then to answer at length; the caller talks over the answer (a barge-in),
then hears the reply to what it said (a turn) and hangs up."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse
from voxline.testing.carrier_callers import TwilioTestCaller

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"
SILENCE = b"\xff"
ANSWER = "Your order 1234 has shipped and arrives tomorrow, anything else?"
REPLY = "Glad to help, goodbye."
ORDER_ARGUMENTS = '{"order_id": "1234"}'

# The example agent, plus a listener that keeps the quality record the call delivers to the scenario.
KEEPER = """

import pathlib as _pathlib


def _keep_record(event):
    def write(e):
        _pathlib.Path(VoxEngine.get_secret_value("RECORD_OUT")).write_text(json.dumps(e.record))

    event.call.add_event_listener(CallEvents.QualityRecord, write)


VoxEngine.add_event_listener(AppEvents.CallAlerting, _keep_record)
"""


@dataclass
class CallResult:
    event_record: dict[str, Any]
    records: list[Path]
    truncate: dict[str, Any]
    caller: TwilioTestCaller
    received: list[dict[str, Any]] = field(default_factory=list)


def scenario(tmp_path: Path, *, privacy: bool) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    if privacy:
        assert 'model="gpt-realtime",' in text
        text = text.replace('model="gpt-realtime",', 'model="gpt-realtime", privacy=True,')
    path = tmp_path / "agent.py"
    path.write_text(text + KEEPER, encoding="utf-8")
    return path


async def barge_in_call(
    tmp_path: Path, *, privacy: bool = False, tracer_provider: Any = None, otel: bool = False
) -> CallResult:
    """Run the call; the runtime is shut down (records written, spans flushed) when this returns."""
    out = tmp_path / "record.json"
    async with FakeRealtimeServer() as fake:
        fake.script(
            ScriptedResponse(function_calls=[FunctionCall("check_order", ORDER_ARGUMENTS, call_id="call_1")]),
            ScriptedResponse(text=ANSWER, audio=tone(300, 3000, 24000, 0.3)),
            ScriptedResponse(text=REPLY, audio=tone(400, 600, 24000, 0.3)),
        )
        config = RuntimeConfig.load(
            {
                "scenario": str(scenario(tmp_path, privacy=privacy)),
                "sip": "off",
                "http": "127.0.0.1:0",
                "token": "test-token",
                "idle_session_s": 0.2,
                "call_log": str(tmp_path / "calls"),
                "otel": otel,
            },
            env={},
        )
        runtime = Runtime(
            config,
            Secrets(env={"OPENAI_API_KEY": "sk-test-key", "RECORD_OUT": str(out)}),
            tracer_provider=tracer_provider,
        )
        runtime.realtime_base_url = fake.base_url
        await runtime.start()
        try:
            # 1.5 s of line silence, then the caller talks over the answer for 0.8 s.
            voice = SILENCE * 12000 + ulaw_encode(tone(500, 800, 8000, 0.5)) + SILENCE * 8000
            caller = TwilioTestCaller(
                f"ws://127.0.0.1:{runtime.http_port}/twilio?token=test-token",
                voice,
                custom_parameters={"From": "+15550001", "To": "+15550002"},
            )
            run = asyncio.create_task(caller.run())
            connection = await fake.wait_for_session(timeout=5)
            truncate = (await connection.wait_for("conversation.item.truncate", timeout=10))[0]
            await asyncio.wait_for(run, 20)
            for _ in range(500):
                if out.exists() and not runtime.sessions:
                    break
                await asyncio.sleep(0.01)
        finally:
            await runtime.shutdown(grace_s=0)
        fake.assert_no_violations()
        received = list(connection.received)
    assert caller.errors == []
    return CallResult(
        event_record=json.loads(out.read_text(encoding="utf-8")),
        records=sorted((tmp_path / "calls").glob("*.json")),
        truncate=truncate,
        caller=caller,
        received=received,
    )
