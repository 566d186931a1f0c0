"""Injected faults, and the pluggable detector / response engine / transcriber."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from voxline.audio.tone import tone
from voxline.testing import (
    FakeRealtimeServer,
    ResponseRequest,
    ScriptedResponse,
    TranscriptionRequest,
)

from .conftest import RawClient, open_client, types


async def test_drop_aborts_without_close_frame(server: FakeRealtimeServer, client: RawClient) -> None:
    connection = await server.wait_for_session()
    connection.drop()
    with pytest.raises(ConnectionClosedError):
        await client.recv()
    assert client.ws.close_code == 1006
    await connection.wait_closed()
    assert connection.close_code == 1006


async def test_close_with_code_and_reason(server: FakeRealtimeServer, client: RawClient) -> None:
    connection = await server.wait_for_session()
    connection.close(4001, "going away for a test")
    with pytest.raises(ConnectionClosedError):
        await client.recv()
    assert (client.ws.close_code, client.ws.close_reason) == (4001, "going away for a test")


async def test_normal_close(server: FakeRealtimeServer, client: RawClient) -> None:
    (await server.wait_for_session()).close()
    with pytest.raises(ConnectionClosedOK):
        await client.recv()


async def test_raw_frames(server: FakeRealtimeServer, client: RawClient) -> None:
    connection = await server.wait_for_session()
    connection.send_binary(b"\x01\x02")
    connection.send_text("this is not json")
    connection.send_event({"type": "response.brand_new_event", "x": 1})
    assert await client.ws.recv() == b"\x01\x02"
    assert await client.ws.recv() == "this is not json"
    assert json.loads(await client.ws.recv()) == {"type": "response.brand_new_event", "x": 1}
    assert server.sent[-1] == {"type": "response.brand_new_event", "x": 1}


async def test_drop_in_the_middle_of_a_response(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script(
        ScriptedResponse(text="Cut off", audio=tone(300.0, 1000, 24000), chunk_ms=100, drop_after_ms=300)
    )
    await client.send("response.create")
    seen = []
    with pytest.raises(ConnectionClosedError):
        while True:
            seen.append(await client.recv())
    assert types(seen).count("response.output_audio.delta") == 3
    assert "response.done" not in types(seen)
    assert client.ws.close_code == 1006


async def test_sessions_are_independent(server: FakeRealtimeServer) -> None:
    first, _ = await open_client(server)
    second, _ = await open_client(server)
    await first.ws.send(b"binary")
    assert (await first.recv())["type"] == "error"
    await second.send("input_audio_buffer.clear")
    assert (await second.recv())["type"] == "input_audio_buffer.cleared"
    one, two = server.sessions
    assert (len(one.violations), len(two.violations)) == (1, 0)
    assert one.id != two.id
    await first.ws.close()
    await second.ws.close()


class SlowEngine:
    """An engine that answers asynchronously with 16 kHz audio, and remembers what it was asked."""

    def __init__(self) -> None:
        self.requests: list[ResponseRequest] = []
        self.gate = asyncio.Event()

    async def respond(self, request: ResponseRequest) -> ScriptedResponse:
        self.requests.append(request)
        await self.gate.wait()
        return ScriptedResponse(
            text=f"You said {len(request.conversation)} thing(s)",
            audio=tone(300.0, 500, 16000),
            audio_rate=16000,
        )


async def test_pluggable_async_engine_with_resampled_audio() -> None:
    engine = SlowEngine()
    async with FakeRealtimeServer(engine=engine) as server:
        client, _ = await open_client(server)
        await client.send(
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        )
        await client.send("response.create", response={"instructions": "be terse"})
        events = await client.until("response.created")
        # The socket keeps working while the engine thinks.
        await client.send("input_audio_buffer.clear")
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"
        engine.gate.set()
        events += await client.until("response.done")
        request = engine.requests[0]
        assert request.params == {"instructions": "be terse"}
        assert request.output_modalities == ["audio"]
        assert request.conversation[0]["content"][0]["text"] == "hi"
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
        )
        assert abs(len(audio) - 500 * 48) <= 48 * 5  # 16 kHz in, 24 kHz out
        assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "You said 1 thing(s)"
        await client.ws.close()


async def test_cancel_while_the_engine_is_still_thinking() -> None:
    engine = SlowEngine()
    async with FakeRealtimeServer(engine=engine) as server:
        client, _ = await open_client(server)
        await client.send("response.create")
        await client.until("response.created")
        await client.send("response.cancel")
        done = (await client.until("response.done"))[-1]["response"]
        assert (done["status"], done["output"]) == ("cancelled", [])
        engine.gate.set()
        await client.until("rate_limits.updated")
        await client.send("input_audio_buffer.clear")
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"  # nothing late from the engine
        await client.ws.close()


class BrokenEngine:
    async def respond(self, request: ResponseRequest) -> ScriptedResponse:
        raise RuntimeError("model crashed")


async def test_engine_failure_ends_the_response_as_failed() -> None:
    async with FakeRealtimeServer(engine=BrokenEngine()) as server:
        client, _ = await open_client(server)
        await client.send("response.create")
        done = (await client.until("response.done"))[-1]["response"]
        assert done["status"] == "failed"
        assert "model crashed" in done["status_details"]["error"]["message"]
        await client.ws.close()


class AlwaysSpeech:
    frame_ms = 20

    def speech_probability(self, frame: bytes, rate: int) -> float:
        return 1.0


async def test_pluggable_detector() -> None:
    async with FakeRealtimeServer(detector=AlwaysSpeech()) as server:
        client, _ = await open_client(server)
        await client.append(bytes(48 * 100))  # digital silence counts as speech for this detector
        started = await client.recv()
        assert (started["type"], started["audio_start_ms"]) == ("input_audio_buffer.speech_started", 0)
        await client.ws.close()


class EchoTranscriber:
    def __init__(self) -> None:
        self.requests: list[TranscriptionRequest] = []

    async def transcribe(self, request: TranscriptionRequest) -> str:
        self.requests.append(request)
        return f"{len(request.pcm) // 2} samples"


async def test_pluggable_async_transcriber() -> None:
    transcriber = EchoTranscriber()
    async with FakeRealtimeServer(transcriber=transcriber) as server:
        client, _ = await open_client(server)
        session = {
            "type": "realtime",
            "audio": {
                "input": {"turn_detection": None, "transcription": {"model": "whisper-1", "language": "en"}}
            },
        }
        await client.send("session.update", session=session)
        await client.recv()
        await client.append(tone(440.0, 200, 24000))
        await client.send("input_audio_buffer.commit")
        completed = (await client.until("conversation.item.input_audio_transcription.completed"))[-1]
        assert completed["transcript"] == "4800 samples"
        assert transcriber.requests[0].transcription == {"model": "whisper-1", "language": "en"}
        assert transcriber.requests[0].rate == 24000
        await client.ws.close()


def test_scripted_response_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="chunk_ms"):
        ScriptedResponse(chunk_ms=0)
    with pytest.raises(ValueError, match="pace"):
        ScriptedResponse(pace=0)
    with pytest.raises(ValueError, match="outputs"):
        ScriptedResponse(text="x", outputs=[])
    with pytest.raises(ValueError, match="pace"):
        FakeRealtimeServer(pace=-1)


async def test_script_rejects_other_objects(server: FakeRealtimeServer) -> None:
    with pytest.raises(TypeError, match="ScriptedResponse"):
        server.script("hello")  # type: ignore[arg-type]


class ExplodingTranscriber:
    def transcribe(self, request: TranscriptionRequest) -> str:
        raise ZeroDivisionError("bug in a plug-in")


async def test_a_failing_transcriber_gives_transcription_failed() -> None:
    async with FakeRealtimeServer(transcriber=ExplodingTranscriber()) as server:
        client, _ = await open_client(server)
        session = {"type": "realtime", "audio": {"input": {"turn_detection": None, "transcription": {}}}}
        await client.send("session.update", session=session)
        await client.recv()
        await client.append(tone(440.0, 200, 24000))
        await client.send("input_audio_buffer.commit")
        failed = (await client.until("conversation.item.input_audio_transcription.failed"))[-1]
        assert failed["error"]["type"] == "transcription_error"
        assert "ZeroDivisionError" in server.internal_errors[0]
        with pytest.raises(AssertionError, match="fake Realtime server failed"):
            server.assert_no_violations()
        await client.ws.close()


class ExplodingDetector:
    frame_ms = 10

    def speech_probability(self, frame: bytes, rate: int) -> float:
        raise ZeroDivisionError("bug in a plug-in")


async def test_a_fault_inside_the_fake_is_answered_and_the_session_survives() -> None:
    async with FakeRealtimeServer(detector=ExplodingDetector()) as server:
        client, _ = await open_client(server)
        await client.send(
            "input_audio_buffer.append",
            event_id="boom",
            audio="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" * 20,
        )
        error = (await client.until("error"))[-1]["error"]
        assert (error["type"], error["event_id"]) == ("server_error", "boom")
        assert "ZeroDivisionError" in server.internal_errors[0]
        await client.send("input_audio_buffer.clear")
        assert (await client.until("input_audio_buffer.cleared"))[-1]["type"] == "input_audio_buffer.cleared"
        await client.ws.close()


class SyncBrokenEngine:
    def respond(self, request: ResponseRequest) -> ScriptedResponse:
        raise RuntimeError("sync crash")


async def test_a_sync_engine_failure_also_ends_the_response() -> None:
    async with FakeRealtimeServer(engine=SyncBrokenEngine()) as server:
        client, _ = await open_client(server)
        await client.send("response.create")
        done = (await client.until("response.done"))[-1]["response"]
        assert done["status"] == "failed"
        await client.until("rate_limits.updated")
        await client.send("response.create")  # not stuck: a new response can start
        assert (await client.until("response.done"))[-1]["response"]["status"] == "failed"
        await client.ws.close()


async def test_keep_record_keeps_audio_events_out_of_the_sessions_records() -> None:
    def no_audio(event: Mapping[str, Any]) -> bool:
        return event.get("type") not in ("input_audio_buffer.append", "response.output_audio.delta")

    async with FakeRealtimeServer(keep_record=no_audio) as server:
        client, _ = await open_client(server)
        await client.append(bytes(4800))
        await client.send("response.create")
        seen = await client.until("response.done")
        connection = server.sessions[0]
        assert "response.output_audio.delta" in types(seen)
        assert "response.output_audio.delta" not in types(connection.sent)
        assert "response.done" in types(connection.sent)
        assert types(connection.received) == ["response.create"]
        # The server-wide records keep every event.
        assert types(server.sent).count("response.output_audio.delta") == types(seen).count(
            "response.output_audio.delta"
        )
        assert types(server.received).count("input_audio_buffer.append") == 5
        await client.ws.close()


async def test_set_pace_changes_the_active_responses_pace() -> None:
    async with FakeRealtimeServer(pace=1.0) as server:
        # Ten seconds of audio at real time: the test only ends in time if set_pace takes effect.
        server.script(ScriptedResponse(text="long", audio=tone(300.0, 10_000, 24000), chunk_ms=200))
        client, _ = await open_client(server)
        await client.send("response.create")
        await client.until("response.output_audio.delta")
        server.sessions[0].set_pace(None)
        seen = await asyncio.wait_for(client.until("response.done"), 3.0)
        assert types(seen).count("response.output_audio.delta") == 49
        await client.ws.close()
