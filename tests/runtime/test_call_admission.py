"""Who may start a call, and what an early end costs: a caller who hangs up while the scenario is
still setting up ends the session without a traceback; an INVITE from outside the allowlist is
refused before any scenario or model session starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.sip import SipEndpoint
from voxline.testing import FakeRealtimeServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"
CONNECT_DELAY_S = 0.3  # how long the "model" takes to accept a connection


@pytest.fixture
async def slow_openai() -> AsyncIterator[tuple[FakeRealtimeServer, str]]:
    """The fake server behind a TCP relay that holds each connection a while before passing it on,
    so the scenario is inside ``await create_realtime_api_client`` when the caller hangs up."""
    async with FakeRealtimeServer() as fake:

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(CONNECT_DELAY_S)
            up_reader, up_writer = await asyncio.open_connection(fake.host, fake.port)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield fake, f"http://127.0.0.1:{port}/"
        finally:
            server.close()


async def start(base_url: str) -> Runtime:
    config = RuntimeConfig.load(
        {"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", "http": "off", "idle_session_s": 0.2}, env={}
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    runtime.realtime_base_url = base_url
    await runtime.start()
    return runtime


async def _until(predicate: object, timeout: float = 10) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


async def test_hanging_up_during_the_model_connect_logs_no_traceback(
    slow_openai: tuple[FakeRealtimeServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base_url = slow_openai
    runtime = await start(base_url)
    caplog.set_level(logging.INFO)
    try:
        assert runtime.sip is not None
        target = f"sip:agent@127.0.0.1:{runtime.sip.port}"
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
            for _ in range(5):
                # Answered, then gone while the scenario awaits the model: send_media_between(call, ...)
                # meets an ended call.
                leg = await caller.call(target)
                await asyncio.wait_for(leg.wait_connected(), 5)
                leg.hangup()
                await asyncio.wait_for(leg.wait_ended(), 5)
            for _ in range(5):
                # Gone before the scenario even answered: call.answer() meets an ended call.
                leg = await caller.call(target)
                leg.hangup()
                await asyncio.wait_for(leg.wait_ended(), 5)
            await _until(lambda: not runtime.sessions and len(fake.sessions) >= 5)
            await _until(lambda: all(c.finished.done() for c in fake.sessions))
    finally:
        await runtime.shutdown(grace_s=0)
    assert problems(caplog) == []
    # Each answered call did reach the model; the session closed the client when it ended.
    assert len(fake.sessions) >= 5


async def test_an_invite_from_outside_the_allowlist_gets_403_and_opens_no_model_session(
    slow_openai: tuple[FakeRealtimeServer, str],
) -> None:
    from voxline.sip.endpoint import CallFailedError

    fake, base_url = slow_openai
    config = RuntimeConfig.load(
        {"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", "http": "off", "sip_allow": "192.0.2.0/24"}, env={}
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    runtime.realtime_base_url = base_url
    await runtime.start()
    try:
        assert runtime.sip is not None
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as stranger:
            leg = await stranger.call(f"sip:agent@127.0.0.1:{runtime.sip.port}")
            with pytest.raises(CallFailedError) as refused:
                await asyncio.wait_for(leg.wait_connected(), 5)
        assert refused.value.status == 403
        await asyncio.sleep(CONNECT_DELAY_S + 0.2)
        assert not runtime.sessions and fake.sessions == []
        assert runtime.sip.stats["rejected_source"] >= 1  # the INVITE (and its ACK, dropped)
    finally:
        await runtime.shutdown(grace_s=0)


async def test_while_draining_a_new_invite_gets_503_and_the_running_call_goes_on(
    slow_openai: tuple[FakeRealtimeServer, str],
) -> None:
    from voxline.sip.endpoint import CallFailedError

    fake, base_url = slow_openai
    runtime = await start(base_url)
    shutdown: asyncio.Task[None] | None = None
    try:
        assert runtime.sip is not None
        target = f"sip:agent@127.0.0.1:{runtime.sip.port}"
        async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as caller:
            running = await caller.call(target)
            await asyncio.wait_for(running.wait_connected(), 5)
            await _until(lambda: len(fake.sessions) == 1)
            shutdown = asyncio.create_task(runtime.shutdown(grace_s=10))
            await _until(lambda: runtime.readiness.draining)
            late = await caller.call(target)
            with pytest.raises(CallFailedError) as refused:
                await asyncio.wait_for(late.wait_connected(), 5)
            assert refused.value.status == 503
            assert (
                runtime.sip.stats["rejected_draining"] == 1 and runtime.sip.stats["rejected_over_limit"] == 0
            )
            assert running.state == "connected" and not shutdown.done()
            running.hangup()  # the last session ends: the shutdown need not wait for its grace
            await asyncio.wait_for(shutdown, 5)
    finally:
        await runtime.shutdown(grace_s=0)
        if shutdown is not None:
            await shutdown
