"""The runtime against real SIP peers: 20 concurrent sipp calls, RFC 4733 digits reaching the
scenario as ToneReceived, baresip hearing the model's audio, and a SIGTERM drain of `voxline run`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.sip.peers import (
    baresip_argv,
    baresip_config,
    best_correlation,
    free_udp_port,
    recording,
    run_peer,
    scenario,
    sipp_argv,
)
from voxline import CallEvents
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav
from voxline.eventtarget import Event
from voxline.runtime.call import Call
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, ScriptedResponse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
MODEL_SIGNAL = b"".join(tone(f, 200, 8000, 0.4) for f in (600.0, 1200.0, 900.0))


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def start(fake: FakeRealtimeServer, **settings: object) -> Runtime:
    config = RuntimeConfig.load(
        {"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", "http": "off", "idle_session_s": 0.2, **settings},
        env={},
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test"}))
    runtime.realtime_base_url = fake.base_url
    await runtime.start()
    return runtime


async def test_twenty_concurrent_sipp_calls_all_reach_the_model(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    prompt = ulaw_encode(b"".join(tone(f, 250, 8000, 0.3) for f in (440.0, 550.0, 660.0, 770.0)))
    (tmp_path / "prompt.ulaw").write_bytes(prompt)
    runtime = await start(fake_openai)
    try:
        assert runtime.sip is not None
        scen = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="2000")
        argv = sipp_argv(
            sipp, scen, f"127.0.0.1:{runtime.sip.port}", "-s", "agent", "-l", "20", calls=20, timeout_s=20
        )
        code, out = await run_peer(argv, tmp_path, 30)
        assert code == 0, out
        for _ in range(100):
            if not runtime.sessions:
                break
            await asyncio.sleep(0.05)
    finally:
        await runtime.shutdown(grace_s=0)
    assert len(fake_openai.sessions) == 20
    # Each call's audio reached its own model session, byte for byte to the end of the prompt (what
    # the caller said before the scenario had bridged the call is not the model's).
    assert all(prompt[-2000:] in c.input_audio for c in fake_openai.sessions)
    assert not runtime.sessions
    fake_openai.assert_no_violations()


async def test_rfc4733_digits_reach_the_scenario_as_tone_received(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    runtime = await start(fake_openai)
    tones: list[Event] = []
    runtime.observers.append(
        lambda session, unit: (
            unit.add_event_listener(CallEvents.ToneReceived, tones.append) if isinstance(unit, Call) else None
        )
    )
    try:
        assert runtime.sip is not None
        scen = scenario(tmp_path, "uac_dtmf.xml", PAUSE_MS="300")
        code, out = await run_peer(sipp_argv(sipp, scen, f"127.0.0.1:{runtime.sip.port}"), tmp_path)
        assert code == 0, out
    finally:
        await runtime.shutdown(grace_s=0)
    assert "".join(e.tone for e in tones) == "410*9#"


async def test_baresip_hears_the_models_audio(tmp_path: Path, fake_openai: FakeRealtimeServer) -> None:
    baresip = require_tool("baresip")
    fake_openai.script(ScriptedResponse(text="Three tones for you.", audio=MODEL_SIGNAL, audio_rate=8000))
    cfg, rec, _ = baresip_config(tmp_path, wav_ms=4000)
    write_wav(tmp_path / "in.wav", bytes(2 * 8 * 4000), 8000)  # a silent caller: no barge-in
    runtime = await start(fake_openai)
    try:
        assert runtime.sip is not None
        _, out = await run_peer(baresip_argv(baresip, cfg, runtime.sip.port, 4), tmp_path, 15)
        assert "Call established" in out, out
    finally:
        await runtime.shutdown(grace_s=0)
    heard = recording(rec)
    assert best_correlation(MODEL_SIGNAL, heard) > 0.8


async def test_sigterm_drains_and_exits(tmp_path: Path) -> None:
    port = free_udp_port()
    env = {**os.environ, "OPENAI_API_KEY": "sk-unused"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", "run", str(EXAMPLE),
        "--sip", f"127.0.0.1:{port}", "--http", "off", "--grace", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    assert b"running" in line, line
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0, await proc.stdout.read()


async def test_calls_beyond_max_calls_get_503_and_the_running_call_goes_on(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    (tmp_path / "prompt.ulaw").write_bytes(ulaw_encode(tone(440, 500, 8000, 0.3)))
    runtime = await start(fake_openai, max_calls=1)
    try:
        assert runtime.sip is not None
        target = f"127.0.0.1:{runtime.sip.port}"
        first = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="2500")
        running = asyncio.create_task(run_peer(sipp_argv(sipp, first, target, "-s", "agent"), tmp_path))
        await fake_openai.wait_for_session(timeout=10)
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = scenario(
            second_dir, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="100"
        )
        code, out = await run_peer(sipp_argv(sipp, second, target, "-s", "agent", "-p", "5074"), second_dir)
        assert code != 0 and "SIP/2.0 503" in out, out
        first_code, first_out = await running
        assert first_code == 0, first_out
    finally:
        await runtime.shutdown(grace_s=0)
    assert len(fake_openai.sessions) == 1
