"""Health a balancer can use, over real sockets: ``/readyz`` and SIP ``OPTIONS`` (a real OPTIONS
datagram) flip to 503 at the call limit, while draining on SIGTERM, and when the Realtime endpoint
keeps refusing connects, and back to 200; ``/livez`` stays 200 while the process serves."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.sip.peers import free_udp_port
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.sip import SipEndpoint, SipResponse, parse_message
from voxline.testing import FakeRealtimeServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
KEY = "sk-health-test-key"


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_keys={KEY}) as server:
        yield server


async def start(base_url: str, key: str = KEY, scenario: Path = EXAMPLE, **settings: object) -> Runtime:
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario),
            "sip": "127.0.0.1:0",
            "http": "127.0.0.1:0",
            "sip_transports": "udp",
            "idle_session_s": 0.2,
            **settings,
        },
        env={},
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": key}))
    runtime.realtime_base_url = base_url
    await runtime.start()
    return runtime


async def until(predicate: Any, timeout: float = 10) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def ready_gauge(port: int) -> str:
    """The value of ``voxline_ready`` on /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    [line] = [line for line in text.splitlines() if line.startswith("voxline_ready ")]
    return line.split()[1]


async def get(port: int, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status, await resp.json(), dict(resp.headers)


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.got.put_nowait(data)


async def options(port: int) -> SipResponse:
    """Send one real OPTIONS datagram, as a proxy's keep-alive probe does, and read the answer."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Collect, local_addr=("127.0.0.1", 0))
    try:
        here = transport.get_extra_info("sockname")[1]
        branch = "z9hG4bK-" + uuid.uuid4().hex
        message = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1:{here}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        transport.sendto(message.encode(), ("127.0.0.1", port))
        answer = parse_message(await asyncio.wait_for(proto.got.get(), 5))
    finally:
        transport.close()
    assert isinstance(answer, SipResponse)
    return answer


async def test_readyz_and_options_are_503_at_the_call_limit_and_200_when_the_call_ends(
    fake_openai: FakeRealtimeServer,
) -> None:
    runtime = await start(fake_openai.base_url, max_calls=1)
    try:
        assert runtime.sip is not None and runtime.http_port is not None
        http, sip = runtime.http_port, runtime.sip.port
        status, body, _ = await get(http, "/readyz")
        assert (status, body["status"], body["calls"], body["max_calls"]) == (200, "ready", 0, 1)
        assert (await options(sip)).status == 200
        assert await ready_gauge(http) == "1.0"
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
            leg = await caller.call(f"sip:agent@127.0.0.1:{sip}")
            await asyncio.wait_for(leg.wait_connected(), 5)
            await fake_openai.wait_for_session(timeout=10)
            for path in ("/readyz", "/health"):
                status, body, headers = await get(http, path)
                assert (status, body["reason"], body["calls"]) == (503, "at max_calls (1)", 1), path
                assert headers["Retry-After"] == "5"
            full = await options(sip)
            assert (full.status, full.headers.get("Retry-After")) == (503, "5")
            assert full.headers.get("Warning") == '399 voxline "at max_calls (1)"'
            assert (await get(http, "/livez"))[:2] == (200, {"status": "alive"})
            assert await ready_gauge(http) == "0.0"
            leg.hangup()
            await asyncio.wait_for(leg.wait_ended(), 5)
            # The slot is free as soon as the call ends (the session winding down holds none).
            await until(lambda: runtime.readiness.ready)
            status, body, headers = await get(http, "/readyz")
            assert (status, body["calls"], "Retry-After" in headers) == (200, 0, False)
            assert (await options(sip)).status == 200
            assert await ready_gauge(http) == "1.0"
    finally:
        await runtime.shutdown(grace_s=0)


def connecting_scenario(tmp_path: Path) -> Path:
    """A session that opens a Realtime client when it starts (no call needed)."""
    path = tmp_path / "connect.py"
    path.write_text(
        textwrap.dedent(
            """\
            from voxline import AppEvents, OpenAI, VoxEngine

            async def on_started(event):
                await OpenAI.create_realtime_api_client(api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"))

            VoxEngine.add_event_listener(AppEvents.Started, on_started)
            """
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: a connect there is refused


async def test_failed_model_connects_in_a_row_flip_readiness_and_one_success_flips_it_back(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    wrong_key = FakeRealtimeServer(api_keys={"sk-another-key"})
    await wrong_key.start()
    runtime = await start(f"http://127.0.0.1:{closed_port()}/", scenario=connecting_scenario(tmp_path))
    try:
        assert runtime.sip is not None and runtime.http_port is not None

        async def connect_once() -> None:
            session = runtime.start_session()
            await asyncio.wait_for(session.terminated.wait(), 10)  # the scenario's connect raised

        await connect_once()
        await connect_once()
        assert runtime.readiness.consecutive_failures == 2
        assert (await get(runtime.http_port, "/readyz"))[0] == 200  # two are not three
        # A server that takes the WebSocket, then refuses the key with an error event (as OpenAI does).
        runtime.realtime_base_url = wrong_key.base_url
        runtime.start_session()
        await until(lambda: runtime.readiness.consecutive_failures == 3)
        status, body, headers = await get(runtime.http_port, "/readyz")
        assert status == 503 and body["model_connect_failures"] == 3
        assert body["reason"].startswith("model connects failing (3 in a row: invalid_api_key: ")
        assert KEY not in body["reason"] and int(headers["Retry-After"]) > 5
        probe = await options(runtime.sip.port)
        assert probe.status == 503 and "model connects failing" in (probe.headers.get("Warning") or "")
        assert (await get(runtime.http_port, "/livez"))[0] == 200
        # Readiness is advice: a call (a session) that comes anyway is tried, and its success is the news.
        runtime.realtime_base_url = fake_openai.base_url
        runtime.start_session()
        await fake_openai.wait_for_session(timeout=10)
        await until(lambda: runtime.readiness.ready)
        status, body, _ = await get(runtime.http_port, "/readyz")
        assert (status, body["model_connect_failures"]) == (200, 0)
        assert (await options(runtime.sip.port)).status == 200
    finally:
        await runtime.shutdown(grace_s=0)
        await wrong_key.close()


async def test_sigterm_flips_readyz_and_options_to_503_while_the_running_call_drains(
    fake_openai: FakeRealtimeServer,
) -> None:
    sip, http = free_udp_port(), closed_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    env = {
        **base,
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "VOXLINE_IDLE_SESSION_S": "0.2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", "run", str(EXAMPLE), "--sip", f"127.0.0.1:{sip}",
        "--http", f"127.0.0.1:{http}", "--grace", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        seen = b""
        while b"running" not in seen:  # after a warning that the media endpoints are open
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            assert line, seen
            seen += line
        assert (await get(http, "/readyz"))[0] == 200
        assert (await options(sip)).status == 200
        assert await ready_gauge(http) == "1.0"
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
            leg = await caller.call(f"sip:agent@127.0.0.1:{sip}")
            await asyncio.wait_for(leg.wait_connected(), 10)
            await fake_openai.wait_for_session(timeout=10)
            proc.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return (await get(http, "/readyz"))[0] == 503

            for _ in range(250):
                if await draining():
                    break
                await asyncio.sleep(0.02)
            status, body, headers = await get(http, "/readyz")
            assert (status, body["reason"], body["draining"], headers["Retry-After"]) == (
                503,
                "draining",
                True,
                "5",
            )
            probe = await options(sip)
            assert (probe.status, probe.headers.get("Retry-After")) == (503, "5")
            assert (await get(http, "/livez"))[0] == 200  # alive while it drains
            assert leg.state == "connected" and proc.returncode is None
            leg.hangup()  # the last call ends: the process exits without waiting out its grace
            code = await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = (await proc.stdout.read()).decode()
    assert code == 0, out
