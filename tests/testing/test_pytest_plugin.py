"""voxline's pytest plugin as a user gets it: the sample project examples/testing/ runs its own pytest
(its pytest.ini, no conftest, only the plugin's fixtures) in a subprocess and passes; the plugin is
registered through the installed package's pytest11 entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from tests.conftest import require_tool

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "testing"


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    [plugin] = [e for e in entry_points(group="pytest11") if e.name == "voxline"]
    assert plugin.value == "voxline.testing.pytest_plugin"


def test_the_sample_user_project_passes_with_the_plugin_fixtures() -> None:
    require_tool("espeak-ng")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=PROJECT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED")]
    assert len(passed) == 4, result.stdout
    for name in ("twilio_caller", "sip_caller_barges_in", "voxengine_websocket", "transcribed"):
        assert any(name in line for line in passed), result.stdout


def test_without_the_plugin_the_sample_project_has_no_fixtures() -> None:
    # The fixtures come from the plugin, not from anything in the project: switched off, they are gone.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:voxline", "-x"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "fixture 'voxline_realtime' not found" in result.stdout
