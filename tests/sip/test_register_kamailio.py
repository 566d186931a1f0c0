"""Registration with a real registrar: Kamailio (registrar, usrloc, auth with pv_auth_check) on
127.0.0.2 with tests/data/sip/kamailio/registrar.cfg, ``voxline run``'s runtime in-process on
127.0.0.1 registering ``sip:alice@127.0.0.2``, sipp calling alice through Kamailio.

Shown: digest with SHA-256 and MD5, 423 Interval Too Brief answered with the registrar's
Min-Expires, refreshes before expiry (short expiries), calls through the registrar (sipp, baresip)
reaching the scenario and the model, the registrar's address let in although ``--sip-allow`` does not list it,
unregister on shutdown (Kamailio's location table empty), a wrong password reported as a
``RegistrationFailed`` with 403, and retried.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.sip.peers import free_udp_port, run_peer, scenario, sipp_argv
from voxline.events import AppEvents
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.sip.register import (
    RegistrationEnded,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationSucceeded,
)
from voxline.testing import FakeRealtimeServer

CONFIG = Path(__file__).resolve().parents[1] / "data" / "sip" / "kamailio" / "registrar.cfg"
REGISTRAR = "127.0.0.2"

SCENARIO = """\
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


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
"""


class Registrar:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, rundir: Path, log: Path) -> None:
        self.proc, self.port, self.rundir, self.log = proc, port, rundir, log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def contacts(self) -> list[str]:
        """The Contacts Kamailio holds for any AOR (kamcmd ul.dump)."""
        kamcmd = require_tool("kamcmd")
        done = subprocess.run(
            [kamcmd, "-s", f"unix:{self.rundir}/kamailio_ctl", "ul.dump"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert done.returncode == 0, done.stderr
        return [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if "Address:" in line]


@pytest.fixture
def registrar_factory(tmp_path: Path) -> Any:
    procs: list[subprocess.Popen[bytes]] = []

    def start(algorithm: str = "MD5", min_expires: int = 2) -> Registrar:
        kamailio = require_tool("kamailio")
        port = free_udp_port()
        rundir = tmp_path / f"kamailio-{port}"
        rundir.mkdir()
        log = rundir / "kamailio.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    kamailio, "-f", str(CONFIG), "-Y", str(rundir), "-w", str(rundir), "-m", "32", "-M", "8",
                    "-A", f"LISTEN=udp:{REGISTRAR}:{port}", "-A", f'ALGORITHM="{algorithm}"',
                    "-A", f"MIN_EXPIRES={min_expires}", "-DD", "-E",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(proc)
        return Registrar(proc, port, rundir, log)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def until(check: Callable[[], Any], what: str, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"never true within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.05)


async def start_runtime(
    tmp: Path, base_url: str, events: list[RegistrationEvent], **settings: object
) -> Runtime:
    scenario_file = tmp / "agent.py"
    scenario_file.write_text(SCENARIO)
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
    runtime.registration_listeners.append(events.append)
    await runtime.start()
    return runtime


async def wait_started(registrar: Registrar) -> None:
    def up() -> bool:
        if registrar.proc.poll() is not None:
            pytest.fail(f"kamailio exited: {registrar.text()}")
        return (registrar.rundir / "kamailio_ctl").exists() and "INFO" in registrar.text()

    await until(up, "Kamailio started")
    await asyncio.sleep(0.3)  # its SIP workers are forked after the control socket


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_registers_refreshes_takes_a_call_and_unregisters(
    tmp_path: Path, registrar_factory: Any, fake_openai: FakeRealtimeServer, algorithm: str
) -> None:
    sipp = require_tool("sipp")
    registrar = registrar_factory(algorithm, min_expires=3)
    await wait_started(registrar)
    events: list[RegistrationEvent] = []
    runtime = await start_runtime(
        tmp_path,
        fake_openai.base_url,
        events,
        # expires=1 is below the registrar's min_expires (3): a 423, then 3 s granted, refreshed
        # every 1.5 s (half of it: the 1.5 s left is the slack a loaded machine has).
        register=[f"sip:alice@{REGISTRAR}:{registrar.port};expires=1"],
        register_password="secret",
        sip_allow="127.0.0.9/32",  # not the registrar: its address is added for its INVITEs
    )
    stopped = False
    try:
        assert runtime.sip is not None
        await until(
            lambda: len([e for e in events if isinstance(e, RegistrationSucceeded)]) >= 3, "2 refreshes"
        )
        ok = [e for e in events if isinstance(e, RegistrationSucceeded)]
        assert {e.expires for e in ok} == {3}, ok  # Min-Expires of the 423
        assert not [e for e in events if isinstance(e, RegistrationFailed)], events
        contact = f"sip:alice@127.0.0.1:{runtime.sip.port}"
        assert ok[0].contact == contact
        assert contact in registrar.contacts()
        assert runtime.registrations is not None
        # Asked for 3 s after the 423 (Kamailio's min_expires_mode=1 answers 423, never raises it).
        assert runtime.registrations.registrations[0].expires == 3
        assert registrar.text().count("REGISTER of alice") >= 3
        # A call to alice at the registrar reaches the scenario and the model.
        prompt = tmp_path / "prompt.ulaw"
        prompt.write_bytes(b"\xff" * 1600)
        scen = scenario(tmp_path, "uac_proxy.xml", ULAW_FILE=str(prompt), PAUSE_MS="800")
        argv = sipp_argv(
            sipp, scen, f"{REGISTRAR}:{registrar.port}", "-s", "alice", "-p", str(free_udp_port())
        )
        peer = asyncio.create_task(run_peer(argv, tmp_path, 20))
        connection = await fake_openai.wait_for_session(timeout=10)
        code, out = await peer
        assert code == 0, out + registrar.text()[-3000:]
        assert len(connection.input_audio) > 0
        assert f"to {contact}" in registrar.text()  # delivered to our Contact
        await runtime.shutdown(grace_s=0)
        stopped = True
        assert isinstance(events[-1], RegistrationEnded), events[-5:]
        assert events[-1].status == 200
        assert contact not in registrar.contacts()  # unregistered, not left to expire
    finally:
        if not stopped:
            await runtime.shutdown(grace_s=0)


async def test_wrong_password_is_a_registration_failure_retried(
    tmp_path: Path, registrar_factory: Any, fake_openai: FakeRealtimeServer
) -> None:
    registrar = registrar_factory("MD5")
    await wait_started(registrar)
    events: list[RegistrationEvent] = []
    runtime = await start_runtime(
        tmp_path,
        fake_openai.base_url,
        events,
        register=[{"aor": f"sip:alice@{REGISTRAR}:{registrar.port}", "password": "wrong", "expires": 60}],
        register_retry_s=0.3,
    )
    try:
        await until(lambda: len([e for e in events if isinstance(e, RegistrationFailed)]) >= 2, "2 failures")
        failed = [e for e in events if isinstance(e, RegistrationFailed)]
        assert [e.status for e in failed[:2]] == [403, 403]
        assert all(e.retry_in is not None and e.retry_in > 0 for e in failed)
        assert not [e for e in events if isinstance(e, RegistrationSucceeded)]
        assert runtime.registrations is not None
        assert set(runtime.registrations.states().values()) <= {"failed", "registering"}
        assert registrar.contacts() == []
        assert "refused: bad credentials" in registrar.text()
    finally:
        await runtime.shutdown(grace_s=0)
    assert not [e for e in events if isinstance(e, RegistrationEnded)]  # nothing to unregister


async def test_registration_events_reach_running_sessions(
    tmp_path: Path, registrar_factory: Any, fake_openai: FakeRealtimeServer
) -> None:
    """A session that is running hears the registration news as AppEvents."""
    registrar = registrar_factory("MD5")
    await wait_started(registrar)
    events: list[RegistrationEvent] = []
    runtime = await start_runtime(
        tmp_path,
        fake_openai.base_url,
        events,
        register=[f"sip:alice@{REGISTRAR}:{registrar.port};expires=2"],
        register_password="secret",
    )
    heard: list[tuple[str, dict[str, Any]]] = []
    try:
        session = runtime.start_session()
        for name in (AppEvents.RegistrationSucceeded, AppEvents.RegistrationFailed):
            session.add_event_listener(name, lambda e: heard.append((e.name, dict(e.extra))))
        await until(lambda: heard, "a RegistrationSucceeded for the session")
        name, extra = heard[0]
        assert name == AppEvents.RegistrationSucceeded
        assert extra["aor"] == f"sip:alice@{REGISTRAR}:{registrar.port}"
        assert extra["expires"] == 2
        json.dumps(extra)  # plain values
    finally:
        await runtime.shutdown(grace_s=0)


async def test_voxline_run_registers_and_unregisters_on_sigterm(
    tmp_path: Path, registrar_factory: Any
) -> None:
    """The command: ``voxline run --register`` with the password from VOXLINE_REGISTER_PASSWORD, the
    gauge on /metrics, and SIGTERM removing the binding before the process exits."""
    import os
    import re
    import signal
    import socket
    import sys

    import httpx

    registrar = registrar_factory("SHA-256")
    await wait_started(registrar)
    scenario_file = tmp_path / "agent.py"
    scenario_file.write_text(SCENARIO)
    sip_port = free_udp_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    log = tmp_path / "voxline.log"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "VOXLINE_REGISTER_PASSWORD": "secret"}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxline.cli", "run", str(scenario_file),
            "--sip", f"127.0.0.1:{sip_port}", "--http", "off", "--metrics", f"127.0.0.1:{metrics_port}",
            "--register", f"sip:alice@{REGISTRAR}:{registrar.port};expires=30", "--log-level", "info",
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        contact = f"sip:alice@127.0.0.1:{sip_port}"
        await until(lambda: "registered sip:alice" in log.read_text(errors="replace"), "registered", 20)
        assert contact in registrar.contacts()
        assert "secret" not in log.read_text(errors="replace")
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        gauge = re.search(r'^voxline_sip_registrations\{state="registered"\} (\S+)$', text, re.M)
        assert gauge is not None and float(gauge.group(1)) == 1.0, text
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert "unregistered sip:alice" in log.read_text(errors="replace")
        assert contact not in registrar.contacts()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_baresip_calls_the_registered_user_through_kamailio(
    tmp_path: Path, registrar_factory: Any, fake_openai: FakeRealtimeServer
) -> None:
    """baresip dials alice at the registrar; Kamailio delivers the INVITE to voxline's Contact, the
    model hears baresip's tone."""
    from tests.sip.peers import THEIR_TONE, baresip_config, best_correlation
    from voxline.audio.g711 import ulaw_decode

    baresip = require_tool("baresip")
    registrar = registrar_factory("MD5")
    await wait_started(registrar)
    events: list[RegistrationEvent] = []
    runtime = await start_runtime(
        tmp_path,
        fake_openai.base_url,
        events,
        register=[f"sip:alice@{REGISTRAR}:{registrar.port};expires=30"],
        register_password="secret",
    )
    try:
        await until(lambda: any(isinstance(e, RegistrationSucceeded) for e in events), "registered")
        cfg, _, _ = baresip_config(tmp_path, 3000)
        dial = f"/dial sip:alice@{REGISTRAR}:{registrar.port}"
        argv = [baresip, "-n", "127.0.0.1", "-f", str(cfg), "-e", dial, "-t", "8"]  # its file ends the call
        peer = asyncio.create_task(run_peer(argv, tmp_path, 20))
        connection = await fake_openai.wait_for_session(timeout=10)
        _, out = await peer
        assert "Call established" in out, out
        heard = ulaw_decode(connection.input_audio)
        assert best_correlation(THEIR_TONE, heard) > 0.9
    finally:
        await runtime.shutdown(grace_s=0)
