"""``voxline run --workers 2`` as real processes on loopback: Twilio-protocol callers (SO_REUSEPORT)
and sipp calls (the SIP front, by Call-ID) land on both workers, counted from each worker's
/metrics, and their audio reaches the fake model; a worker killed with SIGKILL is started again and
only its own call is lost; SIGTERM drains all and the supervisor exits 0; a worker that cannot start
makes the supervisor give up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import require_tool
from tests.sip.peers import DATA, free_udp_port, run_peer, sipp_argv
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.testing import FakeRealtimeServer
from voxline.testing.carrier_callers import TwilioTestCaller
from voxline.workers.sipfront import FrontConfig, SipFront

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
PROMPT = ulaw_encode(b"".join(tone(f, 250, 8000, 0.3) for f in (440.0, 550.0, 660.0, 770.0)))


@dataclass
class Supervised:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    sip_port: int = 0
    http_port: int = 0
    reader: asyncio.Future[None] | None = None

    def workers(self) -> dict[int, tuple[int, int]]:
        """worker index -> (pid, metrics port), the latest announcement of each."""
        found: dict[int, tuple[int, int]] = {}
        for line in self.lines:
            m = re.match(r"voxline: worker (\d+) \(pid (\d+)\) running: .*metrics http://[\d.]+:(\d+)/", line)
            if m:
                found[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return found

    async def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for line in self.lines:
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        pytest.fail(f"no line matching {pattern!r}: {self.lines}")


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def supervise(tmp: Path, fake: FakeRealtimeServer, *args: str) -> Supervised:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    env = {**base, "OPENAI_API_KEY": "sk-workers-test", "OPENAI_BASE_URL": fake.base_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", "run", str(EXAMPLE), "--workers", "2",
        "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grace", "5", *args,
        stdout=asyncio.subprocess.PIPE, stderr=(tmp / "stderr.log").open("wb"), env=env,
    )  # fmt: skip
    sup = Supervised(proc)

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            sup.lines.append(line.decode().rstrip())

    sup.reader = asyncio.ensure_future(read())
    m = await sup.wait_for(r"SIP front 127\.0\.0\.1:(\d+), HTTP 127\.0\.0\.1:(\d+)")
    sup.sip_port, sup.http_port = int(m.group(1)), int(m.group(2))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(sup.workers()) < 2:
        if loop.time() > deadline or proc.returncode is not None:
            pytest.fail(f"workers did not start: {sup.lines} {(tmp / 'stderr.log').read_text()}")
        await asyncio.sleep(0.05)
    await until_ready(sup)
    return sup


async def until_ready(sup: Supervised) -> None:
    """Both workers ready: the front's OPTIONS says 200 once a probe got one (any worker); wait for
    each worker's own /readyz to be sure both are."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            codes = []
            for _pid, port in sup.workers().values():
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        codes.append(resp.status)
                except aiohttp.ClientError:
                    codes.append(0)
            if codes == [200, 200]:
                return
            await asyncio.sleep(0.05)
    pytest.fail("workers' metrics never answered")


async def stop(sup: Supervised) -> int:
    if sup.proc.returncode is None:
        sup.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(sup.proc.wait(), 30)


async def calls_per_worker(sup: Supervised) -> dict[int, dict[str, float]]:
    """From each worker's own /metrics: voxline_calls_total summed by transport."""
    out: dict[int, dict[str, float]] = {}
    async with aiohttp.ClientSession() as http:
        for index, (_pid, port) in sorted(sup.workers().items()):
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            counts: dict[str, float] = {}
            for m in re.finditer(r'^voxline_calls_total\{[^}]*transport="(\w+)"[^}]*\} (\S+)$', text, re.M):
                counts[m.group(1)] = counts.get(m.group(1), 0.0) + float(m.group(2))
            out[index] = counts
    return out


def sipp_scenario(
    tmp: Path, name: str, *, pause_ms: int, call_id: str | None = None, routes: bool = False
) -> Path:
    """uac_stream.xml with our prompt; a fixed Call-ID (to pick the worker); Route headers from the
    Record-Route (``routes``: a caller that honours it)."""
    text = (DATA / "sipp" / "uac_stream.xml").read_text()
    text = text.replace("__ULAW_FILE__", str(tmp / "prompt.ulaw")).replace("__PAUSE_MS__", str(pause_ms))
    if routes:
        text = text.replace(
            "      Max-Forwards: 70\n      Content-Length: 0",
            "      [routes]\n      Max-Forwards: 70\n      Content-Length: 0",
        )
    (tmp / "prompt.ulaw").write_bytes(PROMPT)
    path = tmp / name
    path.write_text(text)
    return path


def call_id_for(worker: int, tag: str) -> str:
    """A Call-ID the front hands to ``worker`` while both are up (the front's own hash)."""
    front = SipFront(
        FrontConfig(public=("127.0.0.1", 1), inner=("127.0.0.1", 2), workers=2, secret=b"s" * 16)
    )
    front.set_worker(0, ("127.0.0.1", 3))
    front.set_worker(1, ("127.0.0.1", 4))
    n = 0
    while front.owner(f"{tag}-{n}@workers.test") != worker:
        n += 1
    return f"{tag}-{n}@workers.test"


def sipp(
    target: int, scen: Path, *extra: str, calls: int = 1, timeout_s: int = 20, call_id: str | None = None
) -> list[str]:
    """sipp placing calls at the front; ``call_id``: the one Call-ID of its call (picks the worker)."""
    if call_id is not None:
        extra = (*extra, "-cid_str", call_id)
    argv = sipp_argv(
        require_tool("sipp"),
        scen,
        f"127.0.0.1:{target}",
        "-s",
        "agent",
        *extra,
        calls=calls,
        timeout_s=timeout_s,
    )
    return [*argv, "-p", str(free_udp_port()), "-mp", str(free_udp_port())]


async def test_twilio_streams_and_sipp_calls_land_on_both_workers_and_reach_the_model(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    require_tool("sipp")
    sup = await supervise(tmp_path, fake_openai)
    try:
        callers = [
            TwilioTestCaller(f"ws://127.0.0.1:{sup.http_port}/twilio", PROMPT, seed=i, linger_ms=1500)
            for i in range(12)
        ]
        scen = sipp_scenario(tmp_path, "uac.xml", pause_ms=3000)  # the prompt (1 s) and a margin
        sip_calls = asyncio.ensure_future(
            run_peer(sipp(sup.sip_port, scen, "-l", "12", calls=12), tmp_path, 40)
        )
        await asyncio.wait_for(asyncio.gather(*(c.run() for c in callers)), 40)
        code, out = await sip_calls
        assert code == 0, out
        assert all(c.errors == [] for c in callers), [c.errors for c in callers]
        counts = await calls_per_worker(sup)
    finally:
        assert await stop(sup) == 0
    # Each worker carried calls of both kinds; together, every one.
    assert all(counts[i].get("sip", 0) > 0 and counts[i].get("twilio", 0) > 0 for i in (0, 1)), counts
    assert sum(c.get("sip", 0) for c in counts.values()) == 12
    assert sum(c.get("twilio", 0) for c in counts.values()) == 12
    assert len(fake_openai.sessions) == 24
    # Every caller's audio reached its own model session, to the end of the prompt.
    missing = [len(s.input_audio) for s in fake_openai.sessions if PROMPT[-2000:] not in s.input_audio]
    assert missing == [], f"sessions without the prompt's end (their input bytes): {missing}"
    fake_openai.assert_no_violations()


async def test_a_killed_worker_is_started_again_and_only_its_own_call_is_lost(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    require_tool("sipp")
    sup = await supervise(tmp_path, fake_openai)
    try:
        victim_pid = sup.workers()[0][0]
        doomed = sipp_scenario(tmp_path, "doomed.xml", pause_ms=6000, routes=True)
        kept = sipp_scenario(tmp_path, "kept.xml", pause_ms=6000, routes=True)
        doomed_dir, kept_dir = tmp_path / "doomed", tmp_path / "kept"
        doomed_dir.mkdir()
        kept_dir.mkdir()
        lost = asyncio.ensure_future(
            run_peer(
                sipp(sup.sip_port, doomed, timeout_s=12, call_id=call_id_for(0, "doomed")), doomed_dir, 30
            )
        )
        going_on = asyncio.ensure_future(
            run_peer(sipp(sup.sip_port, kept, timeout_s=12, call_id=call_id_for(1, "kept")), kept_dir, 30)
        )
        while len(fake_openai.sessions) < 2:  # both calls are up and talking to the model
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        os.kill(victim_pid, signal.SIGKILL)
        restarted = await sup.wait_for(rf"voxline: worker 0 \(pid (?!{victim_pid}\))(\d+)\) running", 30)
        kept_code, kept_out = await going_on
        lost_code, _ = await lost
        assert kept_code == 0, kept_out  # the other worker's call went on to its BYE and 200
        assert lost_code != 0  # the killed worker's own call is gone
        assert any(
            "worker 0" in line and "exited with code -9" in line
            for line in (tmp_path / "stderr.log").read_text().splitlines()
        )
        # The new worker 0 takes calls again.
        again = sipp_scenario(tmp_path, "again.xml", pause_ms=300)
        await until_ready(sup)
        code, out = await run_peer(sipp(sup.sip_port, again, call_id=call_id_for(0, "again")), tmp_path, 30)
        assert code == 0, out
        assert int(restarted.group(1)) != victim_pid
        counts = await calls_per_worker(sup)
        assert counts[0].get("sip", 0) == 1  # the new process counts the new call only
    finally:
        assert await stop(sup) == 0


async def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    require_tool("sipp")
    sup = await supervise(tmp_path, fake_openai)
    scen = [sipp_scenario(tmp_path, f"w{i}.xml", pause_ms=2500, routes=True) for i in (0, 1)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    calls = [
        asyncio.ensure_future(run_peer(sipp(sup.sip_port, s), d, 30)) for s, d in zip(scen, dirs, strict=True)
    ]
    while len(fake_openai.sessions) < 2:
        await asyncio.sleep(0.05)
    sup.proc.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*calls)
    assert [code for code, _ in results] == [0, 0], results  # running calls finished within the grace
    assert await asyncio.wait_for(sup.proc.wait(), 30) == 0


async def test_a_worker_that_cannot_start_makes_the_supervisor_give_up(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    # Worker 1's metrics port (PORT + 1) is taken: it exits at start-up, again and again.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
        env = {**base, "OPENAI_API_KEY": "sk-workers-test", "OPENAI_BASE_URL": fake_openai.base_url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxline", "run", str(EXAMPLE), "--workers", "2",
            "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics", f"127.0.0.1:{port - 1}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "worker 1 exited with code 1 before it was listening, 5 times in a row: giving up" in err.decode()
