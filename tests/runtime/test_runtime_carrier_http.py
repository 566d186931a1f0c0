"""What a carrier (or an attacker) meets at the runtime's HTTP listener (issue 13).

When the runtime takes no more calls, at ``max_calls`` and while draining, a new Twilio stream
gets HTTP 503 with ``Retry-After`` before the upgrade, so the carrier can fail over, instead of
an upgrade and a 1013. Connections whose request headers never end are closed (408).
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from voxline.carriers.http_guard import HttpGuard
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing.carrier_callers import TwilioTestCaller

SILENCE = b"\xff"

# Answers and ends its session when the caller hangs up: no model, only admission matters here.
SCENARIO = """
from voxline import AppEvents, CallEvents, VoxEngine

def on_call(event):
    event.call.answer()
    event.call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
"""


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    scenario = tmp_path / "answer.py"
    scenario.write_text(textwrap.dedent(SCENARIO), encoding="utf-8")
    config = RuntimeConfig.load(
        {
            "scenario": str(scenario),
            "sip": "off",
            "http": "127.0.0.1:0",
            "max_calls": 1,
            "idle_session_s": 0.2,
        },
        env={},
    )
    rt = Runtime(config, Secrets(env={}))
    await rt.start()
    yield rt
    await rt.shutdown(grace_s=0)


def caller(runtime: Runtime, seconds: float) -> TwilioTestCaller:
    url = f"ws://127.0.0.1:{runtime.http_port}/twilio"
    return TwilioTestCaller(url, SILENCE * int(8000 * seconds), linger_ms=0, quiet_ms=0)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def refused(runtime: Runtime) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await caller(runtime, 0.1).run()
    return info.value


async def test_at_max_calls_a_new_stream_gets_503_and_after_the_call_ends_one_is_admitted(
    runtime: Runtime,
) -> None:
    first = asyncio.create_task(caller(runtime, 1.0).run())
    await until(lambda: len(runtime.sessions) == 1)
    busy = await refused(runtime)
    assert busy.response.status_code == 503 and busy.response.headers["Retry-After"] == "1"
    assert b"busy" in busy.response.body
    await first
    await until(lambda: not runtime.sessions)
    second = caller(runtime, 0.2)
    await second.run()
    assert second.close_code == 1000 and second.errors == []
    assert runtime.carriers is not None
    stats = runtime.carriers.stats
    assert (stats["refused_busy"], stats["streams"], stats["refused_after_upgrade"]) == (1, 2, 0)


async def test_a_place_taken_by_another_kind_of_session_refuses_streams_before_the_upgrade(
    runtime: Runtime,
) -> None:
    """A SIP call (here: a session without a carrier socket) holds the only place; the carrier
    endpoint's own socket count sees room, the runtime does not."""
    held = runtime.start_session()
    busy = await refused(runtime)
    assert busy.response.status_code == 503 and b"busy" in busy.response.body
    held.terminate()
    await until(lambda: not runtime.sessions)
    admitted = caller(runtime, 0.2)
    await admitted.run()
    assert admitted.close_code == 1000
    assert runtime.carriers is not None and runtime.carriers.stats["refused_after_upgrade"] == 0


async def test_while_draining_new_streams_get_503(runtime: Runtime) -> None:
    running = asyncio.create_task(caller(runtime, 1.0).run())
    await until(lambda: len(runtime.sessions) == 1)
    runtime.config.max_calls = 5  # room to spare: only the drain refuses
    shutdown = asyncio.create_task(runtime.shutdown(grace_s=5))
    await until(lambda: runtime.readiness.draining)
    draining = await refused(runtime)
    assert draining.response.status_code == 503 and draining.response.headers["Retry-After"] == "1"
    assert b"draining" in draining.response.body
    await running  # the call in progress finishes within the grace period
    await shutdown
    assert runtime.carriers is not None and runtime.carriers.stats["refused_draining"] == 1


async def test_the_listener_closes_connections_whose_headers_never_end(runtime: Runtime) -> None:
    guard: HttpGuard | None = getattr(runtime, "http_guard", None)  # (so the repro runs without it)
    if guard is not None:
        guard.header_timeout_s = 0.3  # the default is 10 s; new connections take the current value
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.http_port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert guard is not None and guard.stats["header_timeouts"] == 1
