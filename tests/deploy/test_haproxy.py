"""deploy/haproxy/haproxy.cfg with a real HAProxy (Debian's) in front of two ``voxline run`` nodes
on loopback, TLS ending at HAProxy as Twilio needs it. Twilio-protocol callers sign the public
``wss://`` URL and connect through the proxy: the calls split between the nodes (counted from each
node's ``/metrics``), barge-in sends them ``clear`` and their mark echoes come back; a node that
drains (SIGTERM, ``/readyz`` 503) gets no new streams while its running call finishes. The nodes
trust the proxy's ``X-Forwarded-Proto``; a stranger sending the same headers straight to a node
is refused."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import require_tool
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.carriers import compute_signature
from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.carrier_callers import TwilioTestCaller, VoxEngineStreamSpec, VoxEngineTestCaller

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
AUTH = "twilio-auth-token-for-tests"
TOKEN = "media-token-for-tests"
SILENCE = b"\xff"  # μ-law silence
# 1.5 s of line silence, then the caller talks over the 3 s greeting for 0.8 s, then listens.
VOICE = SILENCE * 12000 + ulaw_encode(tone(500, 800, 8000, 0.5)) + SILENCE * 8000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"never true within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.1)


async def http_get(url: str, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kwargs) as response:
        return response.status, await response.text()


@dataclass
class Node:
    proc: Any
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def calls(self, metric: str = "voxline_calls_total") -> float:
        """The sum of a metric's Twilio series on this node's own /metrics."""
        status, text = await http_get(self.base + "/metrics")
        assert status == 200, text
        pattern = re.compile(rf'^{metric}\{{[^}}]*transport="twilio"[^}}]*\}} (\S+)$', re.M)
        return sum(float(value) for value in pattern.findall(text))

    async def readyz(self) -> int:
        return (await http_get(self.base + "/readyz"))[0]


@dataclass
class Cluster:
    nodes: list[Node]
    lb_port: int
    haproxy: Any
    haproxy_log: Path
    tls: ssl.SSLContext  # trusts the proxy's certificate (aiohttp does not read SSL_CERT_FILE)

    def url(self, path: str) -> str:
        return f"wss://127.0.0.1:{self.lb_port}{path}"

    def twilio_caller(self, audio: bytes = VOICE, **kwargs: Any) -> TwilioTestCaller:
        """A Twilio-protocol caller through the proxy, signed as Twilio signs: the public URL."""
        url = self.url("/twilio")
        return TwilioTestCaller(
            url, audio, headers={"X-Twilio-Signature": compute_signature(AUTH, url)}, **kwargs
        )


def render_env(lb_port: int, cert: Path, nodes: list[int]) -> dict[str, str]:
    """The environment the config reads its addresses from."""
    return {
        "LB_BIND": f"127.0.0.1:{lb_port}",
        "LB_CERT": str(cert),
        "LB_NODE1": f"127.0.0.1:{nodes[0]}",
        "LB_NODE2": f"127.0.0.1:{nodes[1]}",
    }


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A certificate for 127.0.0.1: HAProxy serves it (key and chain in one PEM), the callers trust it."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    bundle = tmp_path / "lb.pem"
    bundle.write_bytes(cert.read_bytes() + key.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted by this process, as a CA's would be
    return bundle


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        # Every answer is a 3 s greeting: the one each call starts with is the one its caller cuts.
        server.script(
            *[ScriptedResponse(text="Hello, a long greeting.", audio=tone(300, 3000, 24000, 0.3))] * 40
        )
        yield server


async def stop(proc: Any, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def start_node(tmp: Path, name: str, fake: FakeRealtimeServer, *trusted: str) -> Node:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    env = {**base, "OPENAI_API_KEY": "sk-haproxy-test", "OPENAI_BASE_URL": fake.base_url}
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxline", "run", str(EXAMPLE), "--sip", "off",
            "--http", f"127.0.0.1:{port}", "--twilio-auth-token", AUTH, "--token", TOKEN, "--grace", "30",
            *(("--http-trusted-proxy", ",".join(trusted)) if trusted else ()),
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
    node = Node(proc, port, log)

    async def running() -> bool:
        if proc.returncode is not None:
            pytest.fail(f"voxline run {name} exited: {log.read_text()}")
        return b"running" in log.read_bytes()

    try:
        await until(running, f"voxline run {name} is running")
    except BaseException:
        await stop(proc, signal.SIGKILL)
        raise
    return node


@pytest.fixture
async def cluster(tmp_path: Path, tls: Path, fake_openai: FakeRealtimeServer) -> AsyncIterator[Cluster]:
    binary = require_tool("haproxy")
    started: list[tuple[Any, int]] = []  # what to stop, however far the start-up got
    try:
        nodes = []
        for i in (1, 2):
            nodes.append(await start_node(tmp_path, f"node{i}", fake_openai, "127.0.0.1"))
            started.append((nodes[-1].proc, signal.SIGTERM))
        lb_port = free_port()
        log = tmp_path / "haproxy.log"
        env = {**os.environ, **render_env(lb_port, tls, [n.port for n in nodes])}
        with log.open("wb") as out:
            proxy = await asyncio.create_subprocess_exec(
                binary, "-f", str(CONFIG), "-db", stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
            )
        started.insert(0, (proxy, signal.SIGUSR1))  # HAProxy's graceful stop; stopped first
        trusting = ssl.create_default_context(cafile=str(tls.with_name("cert.pem")))

        async def listening() -> bool:
            if proxy.returncode is not None:
                pytest.fail(f"haproxy exited: {log.read_text()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", lb_port)
            except OSError:
                return False
            writer.close()
            return True

        await until(listening, "haproxy listens")
        yield Cluster(nodes, lb_port, proxy, log, trusting)
    finally:
        for proc, sig in started:
            await stop(proc, sig)
    fake_openai.assert_no_violations()


def test_haproxy_accepts_the_config(tmp_path: Path, tls: Path) -> None:
    binary = require_tool("haproxy")
    env = {**os.environ, **render_env(free_port(), tls, [free_port(), free_port()])}
    done = subprocess.run([binary, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout
    # It can fail: without its settings the config is refused.
    unset = {k: v for k, v in env.items() if k != "LB_NODE2"}
    refused = subprocess.run([binary, "-c", "-f", str(CONFIG)], env=unset, capture_output=True, text=True)
    assert refused.returncode != 0


def assert_barged_in(caller: TwilioTestCaller) -> None:
    """The caller cut the greeting: it got a clear, the server's marks, and echoed them."""
    assert caller.errors == [] and caller.close_code == 1000, (caller.errors, caller.close_code)
    assert caller.clears >= 1, caller.events
    # Every mark is echoed once its audio has played (or was cleared), in order; the last ones
    # may still be waiting for their audio when the caller hangs up.
    echoed = caller.marks_echoed
    assert echoed and echoed == caller.marks_received[: len(echoed)], (echoed, caller.marks_received)
    assert len(caller.received) > 0


async def test_calls_split_between_nodes_with_barge_in_and_marks_through_the_proxy(cluster: Cluster) -> None:
    callers = [cluster.twilio_caller(linger_ms=1500, seed=i) for i in range(6)]
    await asyncio.gather(*(c.run() for c in callers))
    for caller in callers:
        assert_barged_in(caller)

    async def counted() -> bool:
        return sum([await node.calls() for node in cluster.nodes]) == len(callers)

    await until(counted, "every call counted on a node")
    per_node = [await node.calls() for node in cluster.nodes]
    # leastconn with calls arriving together: each node takes half.
    assert per_node == [3.0, 3.0], per_node
    barge_ins = [await node.calls("voxline_barge_ins_total") for node in cluster.nodes]
    assert sum(barge_ins) == len(callers), barge_ins

    # VoxEngine-format media through the same proxy (token auth: /media knows no Twilio signature).
    audio = SILENCE * 1600
    voxengine = VoxEngineTestCaller(
        cluster.url("/media"),
        [VoxEngineStreamSpec("t1", audio)],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    await voxengine.run()
    assert voxengine.errors == [] and len(voxengine.received("t1")) > 0

    # The nodes' own endpoints are not served to the world through the proxy.
    for path in ("/metrics", "/readyz", "/livez"):
        status, _ = await http_get(f"https://127.0.0.1:{cluster.lb_port}{path}", ssl=cluster.tls)
        assert status == 404, path


async def test_the_signed_webhook_validates_through_the_proxy(cluster: Cluster) -> None:
    url = f"https://127.0.0.1:{cluster.lb_port}/twilio/voice"
    form = {"CallSid": "CA1", "From": "+15550100", "To": "+15550199"}
    headers = {"X-Twilio-Signature": compute_signature(AUTH, url, form)}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=form, headers=headers, ssl=cluster.tls) as reply:
            assert reply.status == 200
            twiml = await reply.text()
        tampered_form = {**form, "From": "+15550666"}
        async with http.post(url, data=tampered_form, headers=headers, ssl=cluster.tls) as tampered:
            assert tampered.status == 403
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    # The stream URL is the public one, from the proxy's X-Forwarded-Proto and the Host.
    assert stream is not None and stream.get("url") == cluster.url("/twilio")


async def test_forwarded_headers_from_a_stranger_are_ignored(cluster: Cluster) -> None:
    """Straight to a node from 127.0.0.2 (not the proxy's 127.0.0.1), with the proxy's headers."""
    node = cluster.nodes[0]
    public = cluster.url("/twilio")
    forged = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": f"127.0.0.1:{cluster.lb_port}",
        "X-Twilio-Signature": compute_signature(AUTH, public),
    }
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://127.0.0.1:{node.port}/twilio", additional_headers=forged, local_addr=("127.0.0.2", 0)
        ):
            pass
    assert refused.value.response.status_code == 403
    webhook = f"https://127.0.0.1:{cluster.lb_port}/twilio/voice"
    form = {"CallSid": "CA1"}
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        headers = {**forged, "X-Twilio-Signature": compute_signature(AUTH, webhook, form)}
        async with http.post(f"{node.base}/twilio/voice", data=form, headers=headers) as reply:
            assert reply.status == 403
    # The same signature through the proxy is good: the headers are believed only from it.
    caller = cluster.twilio_caller(SILENCE * 800, linger_ms=500)
    await caller.run()
    assert caller.errors == [] and caller.close_code == 1000


async def test_a_draining_node_gets_no_new_streams_while_its_running_call_finishes(cluster: Cluster) -> None:
    # A call long enough to outlive the drain's start: 6 s of the caller, then it listens.
    first = cluster.twilio_caller(SILENCE * 8000 * 6 + VOICE, linger_ms=1500, seed=100)
    running = asyncio.ensure_future(first.run())

    async def placed() -> bool:
        return sum([await n.calls("voxline_calls_active") for n in cluster.nodes]) == 1

    await until(placed, "the first call is up on a node")
    active = [await n.calls("voxline_calls_active") for n in cluster.nodes]
    draining, other = (
        (cluster.nodes[0], cluster.nodes[1]) if active[0] == 1 else (cluster.nodes[1], cluster.nodes[0])
    )
    draining.proc.send_signal(signal.SIGTERM)

    async def not_ready() -> bool:
        return await draining.readyz() == 503

    await until(not_ready, "the draining node says 503 on /readyz")
    # New calls, at once and one after another, while the first still runs on the draining node.
    news = [cluster.twilio_caller(VOICE, linger_ms=1500, seed=i) for i in range(3)]
    await asyncio.gather(*(c.run() for c in news))
    for caller in news:
        assert_barged_in(caller)
    assert not running.done(), "the first call should still be running"
    assert await draining.calls("voxline_calls_active") == 1  # only the first call
    assert await draining.calls() == 0  # nothing has ended there, nothing new came

    async def others_counted() -> bool:
        return await other.calls() == len(news)

    await until(others_counted, "the new calls counted on the other node")
    await running
    assert_barged_in(first)
    assert len(first.playback.played) > 0
    # Its last call over, the draining node exits 0 without waiting out its grace.
    assert await asyncio.wait_for(draining.proc.wait(), 20) == 0, draining.log.read_text()
