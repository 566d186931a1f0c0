"""The runtime end to end: sipp calls voxline, the example scenario answers and bridges the call to
the fake OpenAI Realtime server; audio arrives byte for byte; BYE ends the session and the client."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.sip.peers import run_peer, scenario, sipp_argv
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def start_runtime(scenario_path: Path, base_url: str, **settings: object) -> Runtime:
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario_path),
            "sip": "127.0.0.1:0",
            "http": "off",
            "idle_session_s": 0.2,
            **settings,
        },
        env={},
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    runtime.realtime_base_url = base_url
    await runtime.start()
    return runtime


def prompt(path: Path) -> bytes:
    data = ulaw_encode(b"".join(tone(f, 400, 8000, 0.4) for f in (440.0, 660.0, 880.0)))
    path.write_bytes(data)
    return data


async def test_sipp_call_reaches_the_model_byte_for_byte(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    sent = prompt(tmp_path / "prompt.ulaw")
    runtime = await start_runtime(EXAMPLE, fake_openai.base_url)
    try:
        assert runtime.sip is not None
        scen = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="2500")
        peer = asyncio.create_task(
            run_peer(sipp_argv(sipp, scen, f"127.0.0.1:{runtime.sip.port}", "-s", "agent"), tmp_path)
        )
        connection = await fake_openai.wait_for_session(timeout=10)
        code, out = await peer
        assert code == 0, out
        await connection.wait_closed(timeout=5)  # BYE -> session terminated -> client closed
        await asyncio.wait_for(_until(lambda: not runtime.sessions), 5)
    finally:
        await runtime.shutdown(grace_s=0)
    formats = connection.session["audio"]
    assert formats["input"]["format"] == {"type": "audio/pcmu"}
    assert formats["output"]["format"] == {"type": "audio/pcmu"}
    got = connection.input_audio
    start = got.find(sent[:160])
    assert start >= 0, "the caller's first packet never reached the model"
    assert got[start : start + len(sent)] == sent
    types = [e["type"] for e in connection.received]
    assert types[0] == "session.update" and "response.create" in types
    fake_openai.assert_no_violations()


async def test_a_failing_scenario_ends_its_call_and_another_call_goes_on(
    tmp_path: Path, fake_openai: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    sipp = require_tool("sipp")
    prompt(tmp_path / "prompt.ulaw")
    bad_scenario = tmp_path / "scenario.py"
    bad_scenario.write_text(
        textwrap.dedent(
            """
            from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

            async def on_call(event):
                call = event.call
                call.answer()
                if event.callerid == "15551230000" and event.headers.get("X-Voxline-Test") == "boom":
                    raise RuntimeError("scenario bug")
                key = VoxEngine.get_secret_value("OPENAI_API_KEY")
                client = await OpenAI.create_realtime_api_client(api_key=key)
                VoxEngine.send_media_between(call, client)
                call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())

            VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
            """
        )
    )
    runtime = await start_runtime(bad_scenario, fake_openai.base_url)
    try:
        assert runtime.sip is not None
        target = f"127.0.0.1:{runtime.sip.port}"
        good = scenario(tmp_path, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="2500")
        good_peer = asyncio.create_task(run_peer(sipp_argv(sipp, good, target, "-s", "agent"), tmp_path))
        connection = await fake_openai.wait_for_session(timeout=10)
        bad_dir = tmp_path / "bad"
        bad_dir.mkdir()
        bad = scenario(bad_dir, "uac_stream.xml", ULAW_FILE=str(tmp_path / "prompt.ulaw"), PAUSE_MS="2500")
        bad.write_text(bad.read_text().replace("X-Voxline-Test: stream", "X-Voxline-Test: boom"))
        with caplog.at_level(logging.ERROR, logger="voxline.session"):
            bad_code, bad_out = await run_peer(
                sipp_argv(sipp, bad, target, "-s", "agent", "-p", "5072"), bad_dir
            )
        assert "scenario bug" in caplog.text and "terminating the session" in caplog.text
        # The failing session hung up its own call: sipp got a BYE in the middle of its script.
        assert bad_code != 0, bad_out
        code, out = await good_peer
        assert code == 0, out  # the other call was not disturbed
        assert len(fake_openai.sessions) == 1  # only the good call reached the model
        assert len(connection.input_audio) > 8000
    finally:
        await runtime.shutdown(grace_s=0)


async def _until(predicate: object) -> None:
    assert callable(predicate)
    while not predicate():
        await asyncio.sleep(0.02)
