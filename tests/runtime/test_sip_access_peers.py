"""Inbound access control with real callers (sipp) against the runtime in-process, the fake Realtime
server as the model: digest authentication of INVITEs (``sip_auth``) and the per-source rate limit
(``sip_rate_limit``), with the refusals in /metrics."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.sip.peers import free_udp_port, run_peer, scenario, sipp_argv
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.telemetry import TELEMETRY
from voxline.testing import FakeRealtimeServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def telemetry_off_after() -> Iterator[None]:
    yield
    TELEMETRY.disable()


async def start(scenario_file: Path, base_url: str, **settings: object) -> Runtime:
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario_file),
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


def metric(name: str, **labels: str) -> float:
    from voxline.observability.prometheus import exposition

    TELEMETRY.before_scrape()
    total = 0.0
    for line in exposition().decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def sipp_from(argv: list[str], ip: str) -> list[str]:
    argv[argv.index("-i") + 1] = argv[argv.index("-mi") + 1] = ip
    return argv


async def test_digest_auth_with_sipp(tmp_path: Path, fake_openai: FakeRealtimeServer) -> None:
    sipp = require_tool("sipp")
    (tmp_path / "prompt.ulaw").write_bytes(b"\xff" * 1600)
    # sipp 3.6 answers MD5 only and reads only the first challenge: MD5 offered first here. The
    # default order (SHA-256 first) is answered by voxline's own UAC below.
    runtime = await start(
        EXAMPLE, fake_openai.base_url, sip_auth="alice:s3cret", sip_auth_algorithms="MD5,SHA-256",
        metrics="on", http="127.0.0.1:0",
    )  # fmt: skip
    try:
        assert runtime.sip is not None
        target = f"127.0.0.1:{runtime.sip.port}"
        # No credentials: 401 with a digest challenge (MD5 among the offers, for sipp), no session.
        header = 'WWW-Authenticate: Digest realm="voxline", nonce="[^"]+", algorithm=MD5, qop="auth"'
        refused = scenario(tmp_path, "uac_refused.xml", STATUS="401", HEADER=header)
        code, out = await run_peer(sipp_argv(sipp, refused, target, "-s", "agent"), tmp_path)
        assert code == 0, out
        # A wrong password: the challenge answered, then 403.
        wrong = scenario(tmp_path, "uac_auth_refused.xml", USER="alice", PASSWORD="guess", STATUS="403")
        code, out = await run_peer(sipp_argv(sipp, wrong, target, "-s", "agent"), tmp_path)
        assert code == 0, out
        await asyncio.sleep(0.3)
        assert fake_openai.sessions == [] and not runtime.sessions  # no model session for either
        assert runtime.sip.stats["auth_challenges"] == 2 and runtime.sip.stats["rejected_auth"] == 1
        # The right password (sipp's [authentication], MD5, qop=auth): the call reaches the model.
        prompt = str(tmp_path / "prompt.ulaw")
        right = scenario(
            tmp_path, "uac_auth.xml", USER="alice", PASSWORD="s3cret", ULAW_FILE=prompt, PAUSE_MS="800"
        )
        peer = asyncio.create_task(run_peer(sipp_argv(sipp, right, target, "-s", "agent"), tmp_path, 20))
        connection = await fake_openai.wait_for_session(timeout=10)
        code, out = await peer
        assert code == 0, out
        assert len(fake_openai.sessions) == 1
        assert connection.input_audio
        assert metric("voxline_calls_rejected_total", transport="sip", reason="auth") == 1
        assert metric("voxline_calls_rejected_total", transport="sip", reason="challenge") == 3
    finally:
        await runtime.shutdown(grace_s=0)


REJECTING = textwrap.dedent(
    """\
    from voxline import AppEvents, VoxEngine

    def on_call(event):
        event.call.reject(486)
        VoxEngine.terminate()

    VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
    """
)


async def test_rate_limit_503_for_a_burst_other_source_unaffected(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    scenario_file = tmp_path / "busy.py"
    scenario_file.write_text(REJECTING)
    runtime = await start(
        scenario_file, fake_openai.base_url, sip_rate_limit="6/min", sip_rate_burst=2, metrics="on",
        http="127.0.0.1:0",
    )  # fmt: skip
    try:
        assert runtime.sip is not None
        target = f"127.0.0.1:{runtime.sip.port}"
        # 10 INVITEs from 127.0.0.1 within ~0.2 s (a token comes back every 10 s: a slow machine
        # changes nothing): 2 get through (486 from the scenario), the rest get 503.
        limited = scenario(tmp_path, "uac_refused.xml", STATUS="503", HEADER="Retry-After: *10\\b")
        argv = sipp_argv(
            sipp, limited, target, "-s", "agent", "-r", "50", "-l", "10", "-p", str(free_udp_port()), calls=10
        )
        code, out = await run_peer(argv, tmp_path, 30)
        assert code != 0, out  # the calls that got through were answered 486, not 503
        # sipp's count of calls that got the 503 with the Retry-After it checks for (its last screen).
        successful = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
        assert successful and int(successful[-1]) == 8, out
        assert runtime.sip.stats["rejected_rate"] == 8, runtime.sip.stats
        # Meanwhile another source is not limited: its call reaches the scenario (486).
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        busy = scenario(other_dir, "uac_refused.xml", STATUS="486", HEADER="Busy")
        argv = sipp_from(
            sipp_argv(sipp, busy, target, "-s", "agent", "-p", str(free_udp_port())), "127.0.0.3"
        )
        code, out = await run_peer(argv, other_dir, 15)
        assert code == 0, out
        assert runtime.sip.stats["rejected_rate"] == 8
        assert metric("voxline_calls_rejected_total", transport="sip", reason="rate") == 8
    finally:
        await runtime.shutdown(grace_s=0)


async def test_digest_auth_sha256_with_a_voxline_caller(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    """The default offer (SHA-256 first, RFC 8760), answered by voxline's own UAC over loopback."""
    from voxline.sip import SipEndpoint
    from voxline.sip.endpoint import CallFailedError

    runtime = await start(EXAMPLE, fake_openai.base_url, sip_auth="alice:s3cret")
    try:
        assert runtime.sip is not None
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
            uri = f"sip:agent@127.0.0.1:{runtime.sip.port}"
            wrong = await caller.call(uri, auth=("alice", "nope"))
            with pytest.raises(CallFailedError) as refused:
                await asyncio.wait_for(wrong.wait_connected(), 5)
            assert refused.value.status == 403
            assert fake_openai.sessions == []
            leg = await caller.call(uri, auth=("alice", "s3cret"))
            await asyncio.wait_for(leg.wait_connected(), 5)
            await fake_openai.wait_for_session(timeout=10)
            leg.hangup()
            await asyncio.wait_for(leg.wait_ended(), 5)
        assert runtime.sip.stats["auth_challenges"] == 2
    finally:
        await runtime.shutdown(grace_s=0)
