"""Tests of agent.py with voxline's pytest plugin only (its fixtures; no conftest): a Twilio call with
a tool call, a SIP call with a barge-in, a VoxEngine WebSocket call, and what a caller heard,
transcribed. Real sockets on 127.0.0.1; the model is voxline's fake Realtime server, scripted per
test. The callers speak with espeak-ng."""

import json
from pathlib import Path

import pytest

from voxline.audio.tone import tone
from voxline.testing import FunctionCall, ScriptedResponse

AGENT = Path(__file__).parent / "agent.py"
GREETING = tone(440, 600, 24000)  # what the model "says": 600 ms of 24 kHz PCM
LONG_GREETING = tone(440, 4000, 24000)


async def test_twilio_caller_asks_for_an_order_and_the_tool_answers(
    voxline_realtime, voxline_runtime, voxline_caller, voxline_conversation
):
    voxline_realtime.script(
        ScriptedResponse(text="Hello, Corner Shop.", audio=GREETING),
        ScriptedResponse(function_calls=[FunctionCall("check_order", '{"order_id": "42"}', call_id="c1")]),
        ScriptedResponse(text="Order 42 has shipped.", audio=GREETING),
    )
    rt = await voxline_runtime(AGENT, sip=False)
    heard = await voxline_caller.twilio(rt, say="Where is my order forty two?", pause_before_ms=1500)
    model = await voxline_conversation()
    await model.wait_for("response.create", count=2)
    model.assert_tool_output("c1", json.dumps({"order_id": "42", "status": "shipped"}))
    assert model.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert len(model.caller_audio) > 8000  # the caller's speech reached the model
    assert heard.errors == []
    assert heard.voiced_ms >= 500  # the caller heard the greeting


async def test_sip_caller_barges_in_and_the_answer_is_cut(
    voxline_realtime, voxline_runtime, voxline_caller, voxline_conversation
):
    voxline_realtime.script(ScriptedResponse(text="A very long greeting.", audio=LONG_GREETING, pace=1.0))
    rt = await voxline_runtime(AGENT, http=False)
    heard = await voxline_caller.sip(rt, say="Stop, I have a question.", pause_before_ms=1000, linger_ms=500)
    model = await voxline_conversation()
    cut = model.assert_truncated()
    # The greeting was cut where the caller interrupted it, well before its 4 s end.
    assert 500 <= cut["audio_end_ms"] < 3500
    assert heard.voiced_ms < 3500


async def test_voxengine_websocket_caller_hears_the_greeting(
    voxline_realtime, voxline_runtime, voxline_caller, voxline_conversation
):
    voxline_realtime.script(ScriptedResponse(text="Hello.", audio=GREETING))
    rt = await voxline_runtime(AGENT, sip=False)
    heard = await voxline_caller.voxengine(rt, audio=b"\xff" * 8000, linger_ms=2000)
    model = await voxline_conversation()
    model.assert_received("session.update")
    model.assert_not_truncated()
    assert heard.voiced_ms >= 500


async def test_the_caller_hears_the_answer_and_it_is_transcribed(
    voxline_realtime, voxline_runtime, voxline_caller, voxline_conversation
):
    # With the offline parts installed (voxline[local]: pocketsphinx), what the caller heard is
    # transcribed: the model's scripted speech went through the phone line and back to words.
    asr = pytest.importorskip("voxline.local.asr")
    from voxline.testing.harness import speech_pcm

    voxline_realtime.script(
        ScriptedResponse(text="Your order has shipped.", audio=speech_pcm("your order has shipped"))
    )
    rt = await voxline_runtime(AGENT, http=False)
    heard = await voxline_caller.sip(rt, audio=b"\xff" * 8000, linger_ms=2500)
    recognizer = asr.Recognizer.from_phrases(["your order has shipped", "hello", "goodbye"], input_rate=8000)
    assert recognizer.recognize(heard.pcm()).phrase == "your order has shipped"
    (await voxline_conversation()).assert_not_truncated()
