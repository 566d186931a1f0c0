"""The example of each transport guide (docs/guides/) answers a real call of its transport: SIP/RTP,
Twilio Media Streams, VoxEngine WebSocket media; the model (the fake Realtime server) gets the
scenario's session and the caller's audio, the caller hears the greeting."""

from __future__ import annotations

import json
from pathlib import Path

from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse
from voxline.testing.harness import Conversation, running, sip_call, twilio_call, voxengine_call

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GREETING = tone(440, 600, 24000)
VOICE = b"\xff" * 8000 + ulaw_encode(tone(500, 800, 8000, 0.5)) + b"\xff" * 4000


async def test_sip_trunk_example_answers_and_runs_its_tool() -> None:
    async with FakeRealtimeServer() as fake:
        fake.script(
            ScriptedResponse(text="Corner Shop, hello.", audio=GREETING),
            ScriptedResponse(function_calls=[FunctionCall("check_order", '{"order_id": "7"}', call_id="t1")]),
            ScriptedResponse(text="Shipped.", audio=GREETING),
        )
        async with running(EXAMPLES / "sip_trunk_agent.py", fake, http=False) as rt:
            heard = await sip_call(rt, audio=VOICE, caller_id="4155550100", linger_ms=1500)
            model = await Conversation.of(fake)
            await model.wait_for("response.create", count=2)
        assert "4155550100" in model.session["instructions"]
        model.assert_tool_output("t1", json.dumps({"order_id": "7", "status": "shipped"}))
        assert model.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert heard.voiced_ms >= 500
        fake.assert_no_violations()


async def test_twilio_example_greets_with_the_custom_parameter() -> None:
    async with FakeRealtimeServer() as fake:
        fake.script(ScriptedResponse(text="Hello.", audio=GREETING))
        async with running(EXAMPLES / "twilio_agent.py", fake, sip=False) as rt:
            heard = await twilio_call(
                rt, audio=VOICE, custom_parameters={"From": "+15550001"}, linger_ms=1500
            )
            model = await Conversation.of(fake)
        assert "+15550001" in model.session["instructions"]
        assert heard.errors == [] and heard.voiced_ms >= 500
        fake.assert_no_violations()


async def test_voxengine_example_reads_its_custom_parameters() -> None:
    async with FakeRealtimeServer() as fake:
        fake.script(ScriptedResponse(text="Hola.", audio=GREETING))
        async with running(EXAMPLES / "voxengine_agent.py", fake, sip=False) as rt:
            heard = await voxengine_call(
                rt, audio=VOICE, custom_parameters={"language": "Spanish"}, linger_ms=1500
            )
            model = await Conversation.of(fake)
        assert "Speak Spanish." in model.session["instructions"]
        assert heard.errors == [] and heard.voiced_ms >= 500
        fake.assert_no_violations()
