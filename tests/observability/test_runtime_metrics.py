"""The runtime's own figures in the catalogue: a call's outcome, its setup, a refusal at the door."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.observability.test_telemetry import value
from tests.runtime.test_call import MemoryLeg
from voxline.audio import PCMU_8K, Frame
from voxline.media import MediaUnit
from voxline.media.clock import VirtualMediaClock
from voxline.runtime.call import Call
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.telemetry import TELEMETRY
from voxline.testing.carrier_callers import TwilioTestCaller

REJECTING = """\
from voxline import AppEvents, VoxEngine

VoxEngine.add_event_listener(AppEvents.CallAlerting, lambda e: e.call.reject(486))
"""


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def calls(outcome: str) -> float:
    return value(TELEMETRY, "voxline_calls_total", transport="twilio", outcome=outcome) or 0.0


async def test_a_rejected_call_and_a_call_over_the_limit(tmp_path: Path) -> None:
    scenario = tmp_path / "reject.py"
    scenario.write_text(REJECTING)
    config = RuntimeConfig.load(
        {"scenario": str(scenario), "sip": "off", "http": "127.0.0.1:0", "token": "t", "idle_session_s": 0},
        env={},
    )
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test"}))
    await runtime.start()
    try:
        assert TELEMETRY.enabled
        rejected = calls("rejected")
        refused = value(TELEMETRY, "voxline_calls_rejected_total", transport="http", reason="auth") or 0.0

        def twilio_closes() -> float:
            return value(TELEMETRY, "voxline_websocket_closes_total", peer="twilio", code="1000") or 0.0

        closes = twilio_closes()
        caller = TwilioTestCaller(f"ws://127.0.0.1:{runtime.http_port}/twilio?token=t", b"\xff" * 1600)
        await caller.run()
        assert calls("rejected") == rejected + 1
        # The carrier socket's close, with the code it closed with (the rejection's 1000).
        await until(
            lambda: (
                value(TELEMETRY, "voxline_websocket_closes_total", peer="twilio", code="1000") == closes + 1
            )
        )
        assert value(TELEMETRY, "voxline_calls_active", transport="twilio") == 0.0
        wrong = TwilioTestCaller(f"ws://127.0.0.1:{runtime.http_port}/twilio?token=wrong", b"\xff" * 160)
        with pytest.raises(InvalidStatus):  # refused before the upgrade
            await wrong.run()
        after = value(TELEMETRY, "voxline_calls_rejected_total", transport="http", reason="auth")
        assert after == refused + 1
    finally:
        await runtime.shutdown(grace_s=0)


class LateClock(VirtualMediaClock):
    """A clock whose current tick is running ``lag_ms`` behind its time (a busy event loop)."""

    lag_ms = 0

    def media_time_ms(self) -> int:
        return self.now_ms() - self.lag_ms


def test_frames_to_a_carrier_on_a_late_tick_are_counted_late() -> None:
    TELEMETRY.enable()
    clock = LateClock()
    leg = MemoryLeg()
    leg.transport = "twilio"
    call = Call(leg, clock=clock)
    call.meters = TELEMETRY.call_started("twilio")
    call.answer()
    source = MediaUnit()
    before = value(TELEMETRY, "voxline_carrier_late_frames_total", transport="twilio") or 0.0
    frame = Frame(b"\xff" * 160, PCMU_8K, 0)
    call.receive_frame(frame, source)
    clock.lag_ms = 10  # half a tick: still in time
    call.receive_frame(frame, source)
    clock.lag_ms = 45
    call.receive_frame(frame, source)
    assert len(leg.sent) == 3  # late audio still goes out
    assert value(TELEMETRY, "voxline_carrier_late_frames_total", transport="twilio") == before + 1
    TELEMETRY.call_finished("twilio", "completed", 0.0)
