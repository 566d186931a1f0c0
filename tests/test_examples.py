"""The README's first command works as written: the quickstart runs against the fake server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
