"""deploy/kamailio/kamailio.cfg with the real Kamailio (Debian's ``kamailio``) in front of two
``voxline run`` nodes on loopback, the fake Realtime server as their model.

The addresses keep the parts apart: callers (sipp) on 127.0.0.1, Kamailio on 127.0.0.2, and the
nodes allow only 127.0.0.1 (``--sip-allow``) while trusting 127.0.0.2 as their proxy
(``--sip-trusted-proxy``): a call gets in only if the node reads the caller's address from
Kamailio's Via headers. sipp's calls split evenly over the nodes, each call's audio (straight from
sipp to the node, not through Kamailio) reaches its model session byte for byte, BYE from either
side ends the call through the proxy; a node killed with SIGKILL or drained with SIGTERM gets no
new calls once Kamailio's probe has seen it, and no call fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_tool
from tests.sip.peers import free_udp_port, run_peer, scenario, sipp_argv
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.sip import SipResponse, parse_message
from voxline.testing import FakeRealtimeServer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
CALLERS = "127.0.0.1"  # sipp
PROXY = "127.0.0.2"  # Kamailio
NODES = "127.0.0.1"  # the voxline nodes
PROBE_INTERVAL_S = 1
# How long a node has to send 100 Trying before Kamailio tries the next: short enough for the
# test's dead node, long enough for a live node on a loaded 2-core machine (a node that answers
# late is taken out, and its call fails, which is right for a node that slow, not for this test).
FR_TIMER_MS = 3000
KEY = "sk-kamailio-test"

# The nodes' scenario: bridge the call to the model; X-Hangup-Ms asks it to hang up after that long
# (the BYE then goes from the node through Kamailio to the caller).
SCENARIO = """\
import asyncio

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine


async def on_call(event):
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    VoxEngine.send_media_between(call, client)
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())
    headers = {name.lower(): value for name, value in call.headers().items()}
    if "x-hangup-ms" in headers:
        await asyncio.sleep(int(headers["x-hangup-ms"]) / 1000)
        call.hangup()


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
"""

# 1 s of four tones: what every caller says (sent once, from the ACK on).
PROMPT = ulaw_encode(b"".join(tone(f, 250, 8000, 0.3) for f in (440.0, 550.0, 660.0, 770.0)))


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(check: Callable[[], Any], what: str, timeout: float = 20) -> None:
    """Poll ``check`` (sync or async) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"never true within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.1)


@dataclass
class Node:
    name: str
    proc: Any
    sip_port: int
    http_port: int
    log: Path

    @property
    def uri(self) -> str:
        return f"sip:{NODES}:{self.sip_port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def calls_started(self) -> int:
        return len(re.findall(r"call \S+ started: sip inbound", self.text()))

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a /metrics sample over the series that carry ``labels``."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://{NODES}:{self.http_port}/metrics")).text
        total = 0.0
        for line in text.splitlines():
            m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                total += float(m.group(2))
        return total


@dataclass
class Front:
    port: int
    proc: Any
    log: Path
    nodes: list[Node]

    @property
    def target(self) -> str:
        return f"{PROXY}:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def sent_to(self, node: Node, since: int = 0) -> int:
        """INVITEs Kamailio dispatched to ``node`` (logged from offset ``since`` of its log on)."""
        return self.text()[since:].count(f" to node {node.uri}\n")


async def start_node(tmp: Path, fake: FakeRealtimeServer, name: str) -> Node:
    scenario_file = tmp / "agent.py"
    if not scenario_file.exists():
        scenario_file.write_text(SCENARIO)
    sip_port, http_port = free_udp_port(), free_tcp_port()
    log = tmp / f"{name}.log"
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxline.cli", "run", str(scenario_file),
            "--sip", f"{NODES}:{sip_port}", "--http", f"{NODES}:{http_port}",
            "--sip-allow", f"{CALLERS}/32", "--sip-trusted-proxy", PROXY,
            "--grace", "30", "--log-level", "info",
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
    node = Node(name, proc, sip_port, http_port, log)

    def running() -> bool:
        if proc.returncode is not None:
            pytest.fail(f"voxline run ({name}) exited: {node.text()}")
        return "running" in node.text()

    await until(running, f"{name} is running")
    return node


async def start_kamailio(tmp: Path, nodes: list[Node]) -> Front:
    """Kamailio on deploy/kamailio/kamailio.cfg, its settings given as -A defines, in the foreground
    (-DD) logging to stderr (-E), as this test's own process."""
    kamailio = require_tool("kamailio")
    port = free_udp_port()
    nodes_file = tmp / "dispatcher.list"
    nodes_file.write_text("".join(f"1 {node.uri}\n" for node in nodes))
    rundir = tmp / "kamailio-run"
    rundir.mkdir()
    log = tmp / "kamailio.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            kamailio, *kamailio_args(port, nodes_file, rundir), "-DD", "-E",
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    front = Front(port, proc, log, nodes)

    async def answers() -> bool:
        if proc.returncode is not None:
            pytest.fail(f"kamailio exited: {front.text()}")
        try:
            return (await options(PROXY, port, timeout=0.5)).status == 200
        except TimeoutError:
            return False

    await until(answers, "Kamailio answers OPTIONS")
    return front


def kamailio_args(port: int, nodes_file: Path, rundir: Path) -> list[str]:
    return [
        "-f", str(CONFIG), "-Y", str(rundir), "-w", str(rundir), "-m", "64", "-M", "8",
        "-A", f"LISTEN=udp:{PROXY}:{port}",
        "-A", f'DISPATCHER_LIST="{nodes_file}"',
        "-A", f"PROBE_INTERVAL={PROBE_INTERVAL_S}",
        "-A", f"FR_TIMER={FR_TIMER_MS}",
    ]  # fmt: skip


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.got.put_nowait(data)


async def options(host: str, port: int, timeout: float = 5) -> SipResponse:
    """One OPTIONS datagram to ``host:port`` and its answer."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Collect, local_addr=(CALLERS, 0))
    try:
        here = transport.get_extra_info("sockname")[1]
        message = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CALLERS}:{here};branch=z9hG4bK-{uuid.uuid4().hex};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{CALLERS}:{here}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@{CALLERS}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        transport.sendto(message.encode(), (host, port))
        answer = parse_message(await asyncio.wait_for(proto.got.get(), timeout))
    finally:
        transport.close()
    assert isinstance(answer, SipResponse)
    return answer


async def stop(proc: Any) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def front(tmp_path: Path, fake_openai: FakeRealtimeServer) -> AsyncIterator[Front]:
    require_tool("kamailio")
    require_tool("sipp")
    nodes: list[Node] = []
    kamailio = None
    try:
        nodes = list(await asyncio.gather(*(start_node(tmp_path, fake_openai, f"node{i}") for i in (1, 2))))
        front = await start_kamailio(tmp_path, nodes)
        kamailio = front.proc
        yield front
    finally:
        if kamailio is not None:
            await stop(kamailio)
        for node in nodes:
            await stop(node.proc)


# Each sipp its own media ports (its RTP streams take ports up from -mp), under the ephemeral range
# the nodes' RTP sockets come from.
_sipp_ports = iter(range(16000, 30000, 500))


def calls(
    tmp: Path, front: Front, name: str, count: int, *, hangup_ms: int | None = None, pause_ms: int = 2000
) -> tuple[list[str], int]:
    """sipp's argv for ``count`` calls through Kamailio, and the SIP port it calls from. With
    ``hangup_ms`` the node hangs up (after that long); otherwise the caller does, after ``pause_ms``."""
    sipp = require_tool("sipp")
    directory = tmp / name
    directory.mkdir()
    prompt = directory / "prompt.ulaw"
    prompt.write_bytes(PROMPT)
    subs = {"ULAW_FILE": str(prompt), "PAUSE_MS": str(pause_ms)}
    if hangup_ms is None:
        scen = scenario(directory, "uac_proxy.xml", **subs)
    else:
        scen = scenario(directory, "uac_proxy_callee_bye.xml", HANGUP_MS=str(hangup_ms), **subs)
    port, rtp = free_udp_port(), next(_sipp_ports)
    argv = sipp_argv(
        sipp, scen, front.target, "-s", "agent", "-l", str(count), "-r", "10",
        "-p", str(port), "-mp", str(rtp),
        calls=count, timeout_s=30,
    )  # fmt: skip
    return argv, port


async def run_calls(tmp: Path, front: Front, name: str, count: int, **kwargs: Any) -> tuple[int, str, int]:
    argv, port = calls(tmp, front, name, count, **kwargs)
    code, out = await run_peer(argv, tmp / name, 60)
    return code, out, port


def in_model(fake: FakeRealtimeServer) -> int:
    """Model sessions whose input holds the whole prompt's end, byte for byte (what the caller said
    before the scenario had bridged the call is not the model's)."""
    return sum(PROMPT[-2000:] in session.input_audio for session in fake.sessions)


def test_kamailio_checks_the_config(tmp_path: Path) -> None:
    kamailio = require_tool("kamailio")
    nodes = tmp_path / "dispatcher.list"
    nodes.write_text("1 sip:127.0.0.1:5070\n1 sip:127.0.0.1:5072\n")
    done = subprocess.run(
        [kamailio, "-c", *kamailio_args(free_udp_port(), nodes, tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config file ok" in done.stdout + done.stderr
    # The shipped defaults parse too (the example node list on its Debian path is not read by -c).
    done = subprocess.run([kamailio, "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_calls_split_over_the_nodes_audio_is_exact_and_bye_from_either_side_ends_them(
    tmp_path: Path, front: Front, fake_openai: FakeRealtimeServer
) -> None:
    per_side = 10
    (caller_code, caller_out, caller_port), (node_code, node_out, node_port) = await asyncio.gather(
        run_calls(tmp_path, front, "caller-bye", per_side),
        run_calls(tmp_path, front, "node-bye", per_side, hangup_ms=2500),
    )
    # sipp succeeds only if each of its calls got its 200 through Kamailio, and the BYE of its own
    # Call-ID: its 200 (caller hangs up) or the node's BYE to answer (node hangs up).
    assert caller_code == 0, caller_out
    assert node_code == 0, node_out
    total = 2 * per_side
    n1, n2 = front.nodes

    async def all_counted() -> bool:
        return await n1.metric("voxline_calls_total") + await n2.metric("voxline_calls_total") == total

    await until(all_counted, f"{total} calls counted by the nodes")
    counts = [await n.metric("voxline_calls_total", transport="sip", outcome="completed") for n in (n1, n2)]
    assert sum(counts) == total
    assert all(abs(c - total / 2) <= 0.15 * total for c in counts), counts
    for node in (n1, n2):
        assert await node.metric("voxline_calls_active", transport="sip") == 0
    # Every call's audio reached its own model session byte for byte, on whichever node.
    assert len(fake_openai.sessions) == total
    assert in_model(fake_openai) == total
    # The nodes saw the callers' own addresses (from Kamailio's Via headers), not Kamailio's.
    logs = n1.text() + n2.text()
    for port in (caller_port, node_port):
        seen = re.findall(rf"from {CALLERS}:{port} via proxy {PROXY}:{front.port}\b", logs)
        assert len(seen) == per_side, (port, logs[-3000:])
    # The node-side hang-ups were the node's BYE: the node ended those calls, the callers the rest.
    assert len(re.findall(r"ended: sip .*completed \(hangup\)", logs)) == per_side, logs[-3000:]
    fake_openai.assert_no_violations()


async def test_a_caller_outside_sip_allow_is_refused_through_the_proxy(tmp_path: Path, front: Front) -> None:
    """Through Kamailio the node checks the caller's address (127.0.0.4 here), not Kamailio's."""
    sipp = require_tool("sipp")
    directory = tmp_path / "stranger"
    directory.mkdir()
    (directory / "prompt.ulaw").write_bytes(PROMPT)
    scen = scenario(directory, "uac_proxy.xml", ULAW_FILE=str(directory / "prompt.ulaw"), PAUSE_MS="500")
    argv = sipp_argv(
        sipp, scen, front.target, "-s", "agent", "-p", str(free_udp_port()), calls=1, timeout_s=10
    )
    argv[argv.index("-i") + 1] = argv[argv.index("-mi") + 1] = "127.0.0.4"
    code, out = await run_peer(argv, directory, 20)
    assert code != 0, out  # the call failed ...
    # ... with the node's 403, relayed by Kamailio (no failover for it: a refusal, not a failure).
    refused = [n for n in front.nodes if "403 to INVITE from 127.0.0.4" in n.text()]
    assert len(refused) == 1, [n.text()[-2000:] for n in front.nodes]
    assert f"via proxy {PROXY}:{front.port}" in refused[0].text()
    assert all(n.calls_started() == 0 for n in front.nodes)


async def test_a_killed_node_gets_no_new_calls_and_none_fails(
    tmp_path: Path, front: Front, fake_openai: FakeRealtimeServer
) -> None:
    n1, n2 = front.nodes
    n1.proc.kill()  # SIGKILL: no drain, no goodbye; its port just stops answering
    await n1.proc.wait()
    # Calls at once: Kamailio may not have noticed yet; an INVITE the dead node does not answer
    # goes to the survivor after FR_TIMER (failure_route), so these must not fail either.
    code, out, _ = await run_calls(tmp_path, front, "at-once", 4, pause_ms=1500)
    assert code == 0, out
    down = f"dispatcher: node {n1.uri} down"  # by the probe or by a failed INVITE, whichever first
    await until(lambda: down in front.text(), "Kamailio takes node1 out")
    since = len(front.text())
    code, out, _ = await run_calls(tmp_path, front, "after-probe", 10, pause_ms=1500)
    assert code == 0, out
    assert front.sent_to(n1, since) == 0 and front.sent_to(n2, since) == 10
    await until(lambda: n2.calls_started() == 14, "node2 took all 14 calls")
    assert in_model(fake_openai) == 14
    assert f"dispatcher: node {n2.uri} down" not in front.text()


async def test_a_draining_node_finishes_its_calls_gets_no_new_ones_and_exits_0(
    tmp_path: Path, front: Front, fake_openai: FakeRealtimeServer
) -> None:
    n1, n2 = front.nodes
    # Long calls on both nodes.
    long_calls = asyncio.ensure_future(run_calls(tmp_path, front, "long", 6, pause_ms=6000))
    await until(lambda: n1.calls_started() == 3 and n2.calls_started() == 3, "3 long calls on each node")
    n1.proc.send_signal(signal.SIGTERM)
    # node1 now answers OPTIONS 503: Kamailio's probe takes it out.
    down = f"dispatcher: node {n1.uri} down (probe)"
    await until(lambda: down in front.text(), "Kamailio's probe takes node1 out")
    assert n1.proc.returncode is None  # still draining: its calls run
    since = len(front.text())
    code, out, _ = await run_calls(tmp_path, front, "new", 6, pause_ms=1500)
    assert code == 0, out
    # Kamailio sent it nothing new (not even an INVITE to refuse), node2 took them all.
    assert front.sent_to(n1, since) == 0 and front.sent_to(n2, since) == 6
    assert n1.calls_started() == 3 and n2.calls_started() == 9
    code, out, _ = await long_calls
    assert code == 0, out  # node1's calls finished (the callers hung up, got their 200)
    assert await asyncio.wait_for(n1.proc.wait(), 30) == 0
    assert len(re.findall(r"ended: sip .*completed", n1.text())) == 3
    assert in_model(fake_openai) == 12
