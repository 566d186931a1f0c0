"""The runtime's own figures in the catalogue: a call's outcome, its setup, a refusal at the door."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.observability.test_telemetry import value
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.telemetry import TELEMETRY
from voxline.testing.carrier_callers import TwilioTestCaller

REJECTING = """\
from voxline import AppEvents, VoxEngine

VoxEngine.add_event_listener(AppEvents.CallAlerting, lambda e: e.call.reject(486))
"""


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
        caller = TwilioTestCaller(f"ws://127.0.0.1:{runtime.http_port}/twilio?token=t", b"\xff" * 1600)
        await caller.run()
        assert calls("rejected") == rejected + 1
        assert value(TELEMETRY, "voxline_calls_active", transport="twilio") == 0.0
        wrong = TwilioTestCaller(f"ws://127.0.0.1:{runtime.http_port}/twilio?token=wrong", b"\xff" * 160)
        with pytest.raises(InvalidStatus):  # refused before the upgrade
            await wrong.run()
        after = value(TELEMETRY, "voxline_calls_rejected_total", transport="http", reason="auth")
        assert after == refused + 1
    finally:
        await runtime.shutdown(grace_s=0)
