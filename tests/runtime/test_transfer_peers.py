"""Transfers with real peers: baresip calls the agent, which transfers it (REFER) to a sipp callee;
baresip follows the REFER and its NOTIFYs reach the scenario as events (success, and a busy target).
A sipp caller REFERs the agent: 603 without a handler, 403 for a target the scenario does not
allow, 202 + NOTIFYs when it accepts. A warm transfer: the caller hears hold music, then the
person's tone once bridged, and the model's sockets close; either side's hang-up ends both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
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
    sipp_uas_argv,
)
from voxline import CallEvents
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav
from voxline.eventtarget import Event
from voxline.runtime.call import Call
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, FunctionCall, ScriptedResponse

ROOT = Path(__file__).resolve().parents[2]
BLIND = ROOT / "examples" / "blind_transfer.py"
WARM = ROOT / "examples" / "warm_transfer.py"
INBOUND = ROOT / "examples" / "inbound_agent.py"
HUMAN_HZ = 1000.0  # the person's side plays this tone
HOLD_HZ = 440.0  # the hold music
WATCHED = (
    CallEvents.TransferAccepted,
    CallEvents.TransferProgress,
    CallEvents.TransferComplete,
    CallEvents.TransferFailed,
    CallEvents.Disconnected,
)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def start(fake: FakeRealtimeServer, scenario_file: Path, events: list[Event], **env: str) -> Runtime:
    config = RuntimeConfig.load({"scenario": str(scenario_file), "sip": "127.0.0.1:0", "http": "off"}, env={})
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test", **env}))
    runtime.realtime_base_url = fake.base_url

    def watch(session: object, unit: object) -> None:
        if isinstance(unit, Call) and not events_of.get(id(session)):
            events_of[id(session)] = True  # the session's first call: the one that is transferred
            for name in WATCHED:
                unit.add_event_listener(name, events.append)

    events_of: dict[int, bool] = {}
    runtime.observers.append(watch)
    await runtime.start()
    return runtime


def human_tone(tmp_path: Path) -> Path:
    path = tmp_path / "human.ulaw"
    path.write_bytes(ulaw_encode(tone(HUMAN_HZ, 1000, 8000, 0.4)))
    return path


def silent_caller(tmp_path: Path, wav_ms: int) -> tuple[Path, Path]:
    cfg, rec, _ = baresip_config(tmp_path, wav_ms)
    write_wav(tmp_path / "in.wav", bytes(2 * 8 * wav_ms), 8000)  # silent: no barge-in, no VAD turn
    return cfg, rec


def callee(sipp: str, tmp_path: Path, name: str, port: int, **subs: str) -> asyncio.Task[tuple[int, str]]:
    folder = tmp_path / f"callee-{name.removesuffix('.xml')}"
    folder.mkdir(exist_ok=True)
    argv = sipp_uas_argv(sipp, scenario(folder, name, **subs), port, timeout_s=15)
    return asyncio.create_task(run_peer(argv, folder, 20))


async def finish(task: asyncio.Task[tuple[int, str]], timeout: float = 10) -> tuple[int, str]:
    try:
        return await asyncio.wait_for(task, timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


# -------------------------------------------------------------------------------------- blind


async def test_baresip_follows_the_refer_to_the_person_and_we_hang_up(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    baresip, sipp = require_tool("baresip"), require_tool("sipp")
    port = free_udp_port()
    target = callee(sipp, tmp_path, "uas_tone.xml", port, ULAW_FILE=str(human_tone(tmp_path)))
    fake_openai.script(ScriptedResponse(function_calls=[FunctionCall("transfer_to_human")]))
    events: list[Event] = []
    cfg, rec = silent_caller(tmp_path, 9000)
    runtime = await start(fake_openai, BLIND, events, TRANSFER_URI=f"sip:human@127.0.0.1:{port}")
    try:
        assert runtime.sip is not None
        await asyncio.sleep(0.3)  # sipp binds its port
        # 8 s: on a loaded machine the answer, the tool call and the REFER can take a few seconds
        # before baresip's call to the person is up; what it records after that is checked.
        _, out = await run_peer(baresip_argv(baresip, cfg, runtime.sip.port, 8), tmp_path, 18)
        code, target_out = await finish(target)
    finally:
        await runtime.shutdown(grace_s=0)
    assert "transferring call" in out, out
    assert f"Call established: sip:human@127.0.0.1:{port}" in out, out
    assert code == 0, target_out  # the person got the call, and baresip's BYE when it quit
    assert names(events)[0] == CallEvents.TransferAccepted
    assert names(events)[-2:] == [CallEvents.TransferComplete, CallEvents.Disconnected]
    assert events[-2].code == 200
    assert (events[-1].reason, events[-1].initiator) == ("transferred", "local")  # we hung up
    assert all(e.code < 200 for e in events if e.name == CallEvents.TransferProgress)
    # After the transfer the caller hears the person.
    assert best_correlation(tone(HUMAN_HZ, 300, 8000, 0.4), recording(rec)) > 0.8
    connection = fake_openai.sessions[0]
    await connection.wait_closed(timeout=5)  # the session ended with the call: the model left too


async def test_a_busy_person_is_reported_and_the_caller_stays_with_the_model(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    baresip, sipp = require_tool("baresip"), require_tool("sipp")
    port = free_udp_port()
    target = callee(sipp, tmp_path, "uas_busy.xml", port)
    fake_openai.script(ScriptedResponse(function_calls=[FunctionCall("transfer_to_human")]))
    events: list[Event] = []
    cfg, _ = silent_caller(tmp_path, 6000)
    runtime = await start(fake_openai, BLIND, events, TRANSFER_URI=f"sip:human@127.0.0.1:{port}")
    try:
        assert runtime.sip is not None
        await asyncio.sleep(0.3)
        _, out = await run_peer(baresip_argv(baresip, cfg, runtime.sip.port, 4), tmp_path, 15)
        code, target_out = await finish(target)
        connection = fake_openai.sessions[0]
        outputs = [
            e for e in connection.received
            if e.get("type") == "conversation.item.create" and e["item"].get("type") == "function_call_output"
        ]  # fmt: skip
    finally:
        await runtime.shutdown(grace_s=0)
    assert code == 0, target_out
    assert "transferring call" in out, out
    failed = [e for e in events if e.name == CallEvents.TransferFailed]
    assert [(e.code, e.reason) for e in failed] == [(486, "Busy Here")]
    assert CallEvents.TransferComplete not in names(events)
    ended = events[-1]
    assert ended.name == CallEvents.Disconnected and ended.initiator == "remote"  # baresip quit later
    assert len(outputs) == 1 and "486" in outputs[0]["item"]["output"]  # the model was told


# -------------------------------------------------------------------------------------- the peer refers us


@pytest.mark.parametrize(
    ("example", "status"),
    [(INBOUND, "603"), (BLIND, "403")],  # no TransferRequested handler; a target the scenario refuses
)
async def test_a_refer_is_refused_without_a_handler_or_by_the_scenario(
    tmp_path: Path, fake_openai: FakeRealtimeServer, example: Path, status: str
) -> None:
    sipp = require_tool("sipp")
    runtime = await start(fake_openai, example, [], REFER_ALLOW="192.0.2.1")  # not the target's host
    try:
        assert runtime.sip is not None
        scen = scenario(tmp_path, "uac_refer_refused.xml", PAUSE_MS="300", TARGET_PORT="5999", STATUS=status)
        code, out = await run_peer(
            sipp_argv(sipp, scen, f"127.0.0.1:{runtime.sip.port}", "-s", "agent"), tmp_path
        )
    finally:
        await runtime.shutdown(grace_s=0)
    assert code == 0, out  # sipp got the refusal it expects, then hung up normally
    assert len(fake_openai.sessions) == 1  # the call went on with its model session


async def test_a_refer_accepted_by_the_scenario_is_answered_202_and_notified(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    port = free_udp_port()
    target = callee(sipp, tmp_path, "uas_tone.xml", port, ULAW_FILE=str(human_tone(tmp_path)))
    runtime = await start(fake_openai, BLIND, [])
    try:
        assert runtime.sip is not None
        await asyncio.sleep(0.3)
        scen = scenario(tmp_path, "uac_refer_accepted.xml", PAUSE_MS="300", TARGET_PORT=str(port))
        code, out = await run_peer(
            sipp_argv(sipp, scen, f"127.0.0.1:{runtime.sip.port}", "-s", "agent"), tmp_path
        )
        assert code == 0, out  # 202, NOTIFY 100 Trying, NOTIFY 200 OK (terminated), then its BYE
        assert len(runtime.sessions) == 1  # the session goes on with the call to the target
    finally:
        await runtime.shutdown(grace_s=0)
    target_code, target_out = await finish(target)
    assert target_code == 0, target_out  # called by the scenario, hung up at the shutdown


# -------------------------------------------------------------------------------------- warm


def dominant_hz(pcm: bytes, window_ms: int = 100) -> list[float]:
    """The strongest frequency of each window of a PCM16 8 kHz recording (0 for near-silence)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    size = 8 * window_ms
    out: list[float] = []
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start : start + size]
        if np.sqrt(np.mean(window**2)) < 300:
            out.append(0.0)
            continue
        spectrum = np.abs(np.fft.rfft(window * np.hanning(size)))
        out.append(float(np.argmax(spectrum)) * 8000 / size)
    return out


@pytest.mark.parametrize("who_hangs_up", ["caller", "person"])
async def test_warm_transfer_hold_music_then_the_person_and_the_model_leaves(
    tmp_path: Path, fake_openai: FakeRealtimeServer, who_hangs_up: str
) -> None:
    baresip, sipp = require_tool("baresip"), require_tool("sipp")
    port = free_udp_port()
    if who_hangs_up == "caller":
        human = callee(sipp, tmp_path, "uas_tone.xml", port, ULAW_FILE=str(human_tone(tmp_path)))
    else:  # the person hangs up 5 s after answering: well after the bridge, before the caller quits
        human = callee(
            sipp, tmp_path, "uas_tone_hangup.xml", port, ULAW_FILE=str(human_tone(tmp_path)), PAUSE_MS="5000"
        )
    hold = tmp_path / "hold.wav"
    write_wav(hold, tone(HOLD_HZ, 600, 8000, 0.3) + bytes(2 * 8 * 200), 8000)
    briefing = tone(700.0, 600, 24000, 0.3)
    fake_openai.script(
        ScriptedResponse(function_calls=[FunctionCall("transfer_to_human", '{"summary": "a refund"}')]),
        ScriptedResponse(text="The caller wants a refund.", audio=briefing, pace=1.0),
    )
    quit_after_s = 8 if who_hangs_up == "caller" else 12
    cfg, rec = silent_caller(tmp_path, 1000 * (quit_after_s + 1))
    runtime = await start(fake_openai, WARM, [], HUMAN_URI=f"sip:human@127.0.0.1:{port}", HOLD_WAV=str(hold))
    try:
        assert runtime.sip is not None
        await asyncio.sleep(0.3)
        argv = baresip_argv(baresip, cfg, runtime.sip.port, quit_after_s)
        caller = asyncio.create_task(run_peer(argv, tmp_path, quit_after_s + 10))
        agent = await fake_openai.wait_for_session(timeout=10)
        briefer = await fake_openai.wait_for_session(count=2, timeout=10)
        await briefer.wait_for("response.create", timeout=10)
        # The model leaves at the bridge: both of its sockets are closed while the call goes on.
        await agent.wait_closed(timeout=10)
        await briefer.wait_closed(timeout=10)
        assert not caller.done() and len(runtime.sessions) == 1
        if who_hangs_up == "person":
            human_code, human_out = await finish(human)  # its BYE ends the session...
            for _ in range(100):
                if not runtime.sessions:
                    break
                await asyncio.sleep(0.05)
            assert not runtime.sessions
        _, out = await caller
        if who_hangs_up == "caller":
            human_code, human_out = await finish(human)  # ...or the caller's ends the person's call
    finally:
        await runtime.shutdown(grace_s=0)
    assert "Call established" in out, out
    assert human_code == 0, human_out
    if who_hangs_up == "person":
        # baresip was hung up (our BYE) before it would have quit.
        assert out.index("terminated") < out.index("stop all"), out
    assert "a refund" in briefer.session["instructions"]
    heard = dominant_hz(recording(rec))
    near = lambda hz, f: abs(hz - f) < 30  # noqa: E731
    hold_at = [i for i, hz in enumerate(heard) if near(hz, HOLD_HZ)]
    human_at = [i for i, hz in enumerate(heard) if near(hz, HUMAN_HZ)]
    assert hold_at and human_at, heard
    assert max(hold_at) < min(human_at), heard  # hold music first, then only the person
    assert len(human_at) >= 10, heard  # a second of the person at least
    assert not any(near(hz, 700.0) for hz in heard), heard  # the briefing was for the person only
