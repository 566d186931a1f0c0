"""The README's first command works as written: the quickstart runs against the fake server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxline.runtime.session import Scenario, Secrets

ROOT = Path(__file__).resolve().parents[1]


def test_realtime_quickstart_runs_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "realtime_quickstart.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "using voxline's fake Realtime server" in result.stdout
    assert "-> tool check_order" in result.stdout
    assert "done: 2 responses" in result.stdout


@pytest.mark.parametrize("name", ["blind_transfer.py", "warm_transfer.py"])
def test_the_transfer_examples_load_as_scenarios(name: str) -> None:
    # They run end to end against real peers in tests/runtime/test_transfer_peers.py; here their
    # top level loads as `voxline run` checks it at start-up (imports, names, listeners).
    Scenario(ROOT / "examples" / name).check(Secrets(env={}))


def test_half_cascade_simulation_cuts_the_item_to_what_the_caller_heard() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "half_cascade.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    heard = lines["heard"].strip("'")
    assert heard and lines["the model's context now holds"].strip("'") == heard
    assert "Thanks for calling the clinic.".startswith(heard) or heard.startswith("Thanks for calling")
    assert lines["not heard"].strip("'")  # the rest of the answer was cut
