"""``VoxEngine.call_sip``: the outbound example dials a sipp callee that demands digest auth, checks
the caller id and a custom header; the answered call is bridged to the model; a wrong password fails."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.conftest import require_tool
from tests.sip.peers import free_udp_port, run_peer, scenario, sipp_uas_argv
from voxline import CallEvents
from voxline.eventtarget import Event
from voxline.runtime.call import Call
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "outbound_agent.py"


async def place(
    tmp_path: Path, password: str, failures: list[Event] | None = None
) -> tuple[int, str, Runtime, FakeRealtimeServer]:
    sipp = require_tool("sipp")
    port = free_udp_port()
    peer = asyncio.create_task(
        run_peer(sipp_uas_argv(sipp, scenario(tmp_path, "uas_auth.xml"), port), tmp_path)
    )
    async with FakeRealtimeServer() as fake:
        secrets = Secrets(
            env={
                "OPENAI_API_KEY": "sk-test",
                "OUTBOUND_URI": f"sip:callee@127.0.0.1:{port}",
                "SIP_USER": "alice",
                "SIP_PASSWORD": password,
            }
        )
        config = RuntimeConfig.load({"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", "http": "off"}, env={})
        runtime = Runtime(config, secrets)
        runtime.realtime_base_url = fake.base_url
        if failures is not None:
            runtime.observers.append(
                lambda session, unit: (
                    unit.add_event_listener(CallEvents.Failed, failures.append)
                    if isinstance(unit, Call)
                    else None
                )
            )
        await runtime.start()
        try:
            await asyncio.sleep(0.3)  # sipp binds its port
            session = runtime.start_session()
            if password == "secret":
                connection = await fake.wait_for_session(timeout=5)
                await connection.wait_for("response.create", timeout=5)
                # The callee (sipp) hangs up after its pause; or we end the session.
                session.terminate()
                await connection.wait_closed(timeout=5)
                assert connection.session["audio"]["input"]["format"] == {"type": "audio/pcma"}
            await asyncio.wait_for(session.terminated.wait(), 10)
            code, out = await asyncio.wait_for(peer, 10)
        finally:
            peer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await peer
            await runtime.shutdown(grace_s=0)
        return code, out, runtime, fake


async def test_outbound_call_with_digest_auth_is_bridged_to_the_model(tmp_path: Path) -> None:
    code, out, runtime, fake = await place(tmp_path, "secret")
    assert code == 0, out  # sipp verified credentials, caller id and header, and saw our BYE
    assert not runtime.sessions
    fake.assert_no_violations()


async def test_outbound_call_with_a_wrong_password_fails_and_ends_the_session(tmp_path: Path) -> None:
    failures: list[Event] = []
    _, _, runtime, fake = await place(tmp_path, "wrong", failures)
    assert [e.code for e in failures] == [403]
    assert not fake.sessions  # never connected, never reached the model
    assert not runtime.sessions
