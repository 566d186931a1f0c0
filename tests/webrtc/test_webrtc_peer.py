"""WebRTC calls through the runtime with aiortc peers (no browser): the example scenario greets over
Opus, the caller's audio reaches the model, barge-in truncates the greeting to what the outgoing
track handed to aiortc's sender (within a frame of what the caller received), hang-up works from
either side, and 20 calls run at once."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from voxline.audio.tone import tone
from voxline.runtime.call import Call
from voxline.runtime.events import CallEvents
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, ScriptedResponse

from .client import WebRtcCaller, voiced_ms, voiced_span_ms

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"


def pcm48(pcm24: bytes) -> np.ndarray:
    """24 kHz PCM16 bytes as 48 kHz samples (each sample twice: good enough for a test tone)."""
    return np.repeat(np.frombuffer(pcm24, dtype="<i2"), 2)


def silence(ms: int) -> np.ndarray:
    return np.zeros(48 * ms, dtype=np.int16)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


@pytest.fixture
async def runtime(fake_openai: FakeRealtimeServer) -> AsyncIterator[Runtime]:
    config = RuntimeConfig.load(
        {
            "scenario": str(EXAMPLE),
            "sip": "off",
            "http": "127.0.0.1:0",
            "token": "test-token",
            "idle_session_s": 0.2,
        },
        env={},
    )
    rt = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    rt.realtime_base_url = fake_openai.base_url
    await rt.start()
    yield rt
    await rt.shutdown(grace_s=0)


def url(runtime: Runtime) -> str:
    return f"http://127.0.0.1:{runtime.http_port}/webrtc"


async def until(predicate: object, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_greeting_barge_in_truncates_to_what_the_track_handed_over(
    runtime: Runtime, fake_openai: FakeRealtimeServer
) -> None:
    greeting = tone(300, 3000, 24000, 0.3)
    # The greeting, then a silent answer to the caller: all the caller hears is the greeting.
    fake_openai.script(
        ScriptedResponse(text="Hello, this is Voxy, a long greeting.", audio=greeting),
        ScriptedResponse(text="Yes?"),
    )
    # 1.2 s of silence, then the caller talks over the greeting for 0.8 s.
    voice = np.concatenate([silence(1200), pcm48(tone(500, 800, 24000, 0.5)), silence(500)])
    caller = WebRtcCaller(voice)
    response = await caller.call(url(runtime))
    assert response.status == 201
    assert caller.location is not None and caller.location.startswith("/webrtc/")
    await caller.wait_connected()
    connection = await fake_openai.wait_for_session(timeout=5)
    truncate = (await connection.wait_for("conversation.item.truncate", timeout=10))[0]
    await asyncio.sleep(0.5)  # what was in flight arrives; after the clear only silence follows
    heard_by_caller = voiced_ms(caller.received)
    assert heard_by_caller > 0, "the caller heard nothing of the greeting"
    # The truncation point is what the outgoing track handed to aiortc; the caller got exactly that
    # over loopback: within one 20 ms frame (Opus and the two resamplers smear the edges by a few ms).
    assert abs(truncate["audio_end_ms"] - heard_by_caller) <= 20, (truncate, heard_by_caller)
    assert 800 <= truncate["audio_end_ms"] <= 2600
    # The caller's 500 Hz reached the model as 24 kHz PCM16 (resampled once from Opus's 48 kHz).
    assert connection.session["audio"]["input"]["format"]["type"] == "audio/pcm"

    def loud_input() -> np.ndarray:
        got = np.frombuffer(connection.input_audio, dtype="<i2").astype(np.float64)
        return np.flatnonzero(np.abs(got) > 3000)

    # The whole 0.8 s (a sine is above a sixth of its peak 89 % of the time).
    await until(lambda: loud_input().size > 0.8 * 24 * 800, 5, "the caller's voice to reach the model")
    got = np.frombuffer(connection.input_audio, dtype="<i2").astype(np.float64)
    loud = loud_input()
    window = got[loud[0] : loud[0] + 24000 // 2]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(window.size)))
    peak_hz = np.argmax(spectrum) * 24000 / window.size
    assert abs(peak_hz - 500) < 10
    # Resampled with its state kept: no clicks at frame edges (no sample-to-sample jump beyond a
    # 500 Hz sine's own, 2π·500/24000 of its amplitude).
    steady = got[loud[0] + 480 : loud[0] + 24 * 700]
    assert np.max(np.abs(np.diff(steady))) < 0.2 * np.max(np.abs(steady))
    await caller.close()
    await until(lambda: not runtime.sessions, 10, "the session to end after the caller left")
    fake_openai.assert_no_violations()


async def test_a_recorded_call_hung_up_by_delete(
    runtime: Runtime, fake_openai: FakeRealtimeServer, tmp_path: Path
) -> None:
    fake_openai.script(ScriptedResponse(text="Hi.", audio=tone(300, 500, 24000, 0.3)))
    calls: list[Call] = []
    runtime.observers.append(
        lambda session, resource: calls.append(resource) if isinstance(resource, Call) else None
    )
    caller = WebRtcCaller(np.concatenate([silence(600), pcm48(tone(500, 600, 24000, 0.5))]))
    assert (await caller.call(url(runtime))).status == 201
    await caller.wait_connected()
    await until(lambda: len(runtime.sessions) == 1 and calls, 5, "the session")
    [call] = calls
    assert call.transport == "webrtc" and call.custom_data()["peer_id"] in caller.location  # type: ignore[operator]
    disconnected: list[dict[str, object]] = []
    call.add_event_listener(CallEvents.Disconnected, lambda e: disconnected.append(dict(e.extra)))
    # DTMF both ways over the "voxline" data channel.
    tones: list[str] = []
    call.add_event_listener(CallEvents.ToneReceived, lambda e: tones.append(e.extra["tone"]))
    await until(lambda: caller.channel.readyState == "open", 5, "the data channel")
    caller.channel.send(json.dumps({"type": "dtmf", "digit": "5"}))
    caller.channel.send("not json")  # ignored (logged), the call goes on
    await until(lambda: tones == ["5"], 5, "the digit")
    call.send_digits("1#")
    await until(lambda: len(caller.messages) >= 2, 5, "the digits at the caller")
    assert caller.messages[:2] == [{"type": "dtmf", "digit": "1"}, {"type": "dtmf", "digit": "#"}]
    recording = tmp_path / "call.wav"
    call.record(stereo=True, path=recording, rate=24000)
    await until(lambda: voiced_span_ms(caller.received) is not None, 5, "the greeting")
    await asyncio.sleep(1.5)  # the caller's tone is recorded
    assert await caller.delete() == 200
    await until(lambda: not runtime.sessions, 10, "the session to end")
    await asyncio.wait_for(caller.ended.wait(), 10)  # the server closed the peer connection
    assert await caller.delete() == 404
    assert disconnected and disconnected[0]["initiator"] == "remote"
    # The recording: the caller (left) said its 500 Hz, the agent (right) its 300 Hz greeting.
    await until(recording.exists, 5, "the recording")
    with wave.open(str(recording)) as wav:
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    assert np.max(np.abs(stereo[:, 0])) > 3000 and np.max(np.abs(stereo[:, 1])) > 3000
    await caller.close()


async def test_hangup_by_the_server_closes_the_peer(
    runtime: Runtime, fake_openai: FakeRealtimeServer
) -> None:
    fake_openai.script(ScriptedResponse(text="Hi.", audio=tone(300, 500, 24000, 0.3)))
    caller = WebRtcCaller()
    assert (await caller.call(url(runtime))).status == 201
    await caller.wait_connected()
    connection = await fake_openai.wait_for_session(timeout=5)
    # The model's socket closes: the example scenario terminates, its call hangs up.
    connection.close()
    await asyncio.wait_for(caller.ended.wait(), 10)
    await until(lambda: not runtime.sessions, 10, "the session to end")
    await caller.close()


async def test_twenty_calls_at_once(runtime: Runtime, fake_openai: FakeRealtimeServer) -> None:
    count = 20
    fake_openai.script(
        *(ScriptedResponse(text="Hi.", audio=tone(300, 600, 24000, 0.3)) for _ in range(count))
    )
    voice = np.concatenate([silence(300), pcm48(tone(500, 400, 24000, 0.5)), silence(300)])
    callers = [WebRtcCaller(voice) for _ in range(count)]
    responses = await asyncio.gather(*(c.call(url(runtime)) for c in callers))
    assert [r.status for r in responses] == [201] * count
    await asyncio.gather(*(c.wait_connected(20) for c in callers))
    await fake_openai.wait_for_session(count, timeout=20)

    def all_heard() -> bool:
        return all(voiced_span_ms(c.received) is not None for c in callers)

    await until(all_heard, 20, "every caller to hear its greeting")

    def all_spoke() -> bool:
        inputs = [np.frombuffer(s.input_audio, "<i2") for s in fake_openai.sessions]
        return all(np.max(np.abs(a), initial=0) > 3000 for a in inputs)

    await until(all_spoke, 20, "every caller's voice to reach its model session")
    assert len({c.location for c in callers}) == count
    statuses = await asyncio.gather(*(c.delete() for c in callers))
    assert statuses == [200] * count
    await until(lambda: not runtime.sessions, 15, "every session to end")
    await asyncio.gather(*(c.close() for c in callers))
