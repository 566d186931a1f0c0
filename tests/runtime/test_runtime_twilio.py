"""The runtime with a Twilio Media Streams caller: the example scenario greets, the caller's μ-law
reaches the model byte for byte, and barge-in sends Twilio `clear` and truncates the greeting to
what the caller's playback confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.carrier_callers import TwilioTestCaller

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"
SILENCE = b"\xff"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


@pytest.fixture(params=[20, 100], ids=["marks-20ms", "marks-100ms"])
async def runtime(request: pytest.FixtureRequest, fake_openai: FakeRealtimeServer) -> AsyncIterator[Runtime]:
    """Model audio goes out in 100 ms batches (the default) with marks every 20 ms or every 100 ms
    (the default)."""
    config = RuntimeConfig.load(
        {
            "scenario": str(EXAMPLE),
            "sip": "off",
            "http": "127.0.0.1:0",
            "token": "test-token",
            "mark_interval_ms": request.param,
            "idle_session_s": 0.2,
        },
        env={},
    )
    rt = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    rt.realtime_base_url = fake_openai.base_url
    await rt.start()
    yield rt
    await rt.shutdown(grace_s=0)


def url(runtime: Runtime, token: str = "test-token") -> str:
    return f"ws://127.0.0.1:{runtime.http_port}/twilio?token={token}"


async def test_barge_in_clears_twilio_and_truncates_to_the_acknowledged_playout(
    runtime: Runtime, fake_openai: FakeRealtimeServer
) -> None:
    greeting = tone(300, 3000, 24000, 0.3)
    fake_openai.script(ScriptedResponse(text="Hello, this is Voxy, a long greeting.", audio=greeting))
    # 1.5 s of line silence, then the caller talks over the greeting for 0.8 s.
    voice = SILENCE * 12000 + ulaw_encode(tone(500, 800, 8000, 0.5)) + SILENCE * 8000
    caller = TwilioTestCaller(url(runtime), voice, custom_parameters={"From": "+15550001"}, linger_ms=1500)
    played_at_clear: list[int] = []
    clear = caller.playback.clear

    def recording_clear(now_ms: float) -> list[str]:
        # What the caller's player had played when the clear arrived, to the ms (not to its chunks).
        played_at_clear.append(int(len(caller.playback.received) / 8 - caller.playback.buffered_ms(now_ms)))
        return clear(now_ms)  # plays what is due first, then drops the rest

    caller.playback.clear = recording_clear  # type: ignore[method-assign]
    run = asyncio.create_task(caller.run())
    connection = await fake_openai.wait_for_session(timeout=5)
    truncate = (await connection.wait_for("conversation.item.truncate", timeout=10))[0]
    await asyncio.wait_for(run, 15)
    assert caller.errors == []
    assert caller.clears >= 1
    heard_ms = played_at_clear[0]  # what the caller's playback had played when the clear arrived
    # The heard estimate trails playback by Twilio's echo delay (20 + up to 10 ms here), at worst by
    # the mark interval plus that; it is never ahead of what the caller heard (1 ms: rounding).
    interval = runtime.config.mark_interval_ms
    assert heard_ms - interval - 40 <= truncate["audio_end_ms"] <= heard_ms + 1
    assert 1000 <= truncate["audio_end_ms"] <= 2200
    # One media message per mark interval at most, each within one 100 ms batch.
    received_ms = len(caller.playback.received) // 8
    assert received_ms >= heard_ms
    assert received_ms / interval <= caller.media_received <= received_ms / interval + 5
    # Nothing of the cleared greeting was sent after the clear: the caller got at most what it played
    # plus what was in flight, and far less than the 3 s greeting.
    assert caller.playback.cleared_bytes > 0
    # The caller's audio reached the model untouched (G.711 pass-through negotiated).
    assert connection.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # Frames sent before the scenario had bridged the call are not the model's; from then on every
    # byte arrives in order: the input is the caller's audio from a frame boundary on.
    got = connection.input_audio

    def onset(audio: bytes) -> int:
        return next(i for i, b in enumerate(audio) if b != 0xFF)

    skipped = onset(voice) - onset(got)
    assert skipped % 160 == 0 and 0 <= skipped < 12000
    assert got == voice[skipped : skipped + len(got)]
    assert skipped + len(got) >= len(voice) - 800
    fake_openai.assert_no_violations()


async def test_wrong_token_is_refused_before_upgrade(runtime: Runtime) -> None:
    from websockets.exceptions import InvalidStatus

    caller = TwilioTestCaller(url(runtime, "wrong"), SILENCE * 160)
    with pytest.raises(InvalidStatus) as info:
        await caller.run()
    assert info.value.response.status_code in (401, 403)
    assert not runtime.sessions
