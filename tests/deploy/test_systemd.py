"""deploy/systemd/voxline.service: ``systemd-analyze verify`` finds nothing to say about it, and
its stop timeout leaves the drain its ``--grace`` (systemd's SIGKILL must not cut calls short)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from voxline.cli import build_parser
from voxline.runtime.server import RuntimeConfig

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "voxline.service"
INSTALLED = "/opt/voxline/bin/voxline"  # where the unit's comments install voxline


def directives(text: str) -> dict[str, str]:
    """``Key=value`` lines of the unit (the last one of a key wins, as in systemd)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def seconds(value: str) -> float:
    """A systemd time span (``45``, ``45s``, ``1min 30s``) in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and all(unit in units for _, unit in parts), value
    return sum(float(number) * units[unit] for number, unit in parts)


def systemd_analyze() -> str:
    binary = require_tool("systemd-analyze")
    # It runs offline on a unit file, but only if it can start at all here (some containers lack
    # what it needs): say so instead of a confusing failure.
    probe = subprocess.run([binary, "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        message = f"systemd-analyze cannot run here: {probe.stderr.strip() or probe.returncode}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def verify(binary: str, text: str, tmp_path: Path) -> str:
    """systemd-analyze verify's complaints about ``text`` as a unit; ExecStart's program must exist,
    so the unit runs this checkout's voxline."""
    voxline = Path(sys.executable).parent / "voxline"
    assert voxline.exists(), voxline
    unit = tmp_path / "voxline.service"
    unit.write_text(text.replace(INSTALLED, str(voxline)))
    done = subprocess.run([binary, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    return f"{done.returncode}: {done.stdout}{done.stderr}".strip()


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    binary = systemd_analyze()
    text = UNIT.read_text()
    assert INSTALLED in text
    assert verify(binary, text, tmp_path) == "0:"


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    # The check above can fail: a misspelt directive and a bad value are reported.
    binary = systemd_analyze()
    broken = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    assert "Unknown key 'NoNewPrivilege'" in verify(binary, broken, tmp_path)
    broken = UNIT.read_text().replace("KillSignal=SIGTERM", "KillSignal=SIGTERMINATE")
    assert "SIGTERMINATE" in verify(binary, broken, tmp_path)


def test_timeout_stop_leaves_the_drain_its_grace() -> None:
    unit = directives(UNIT.read_text())
    argv = shlex.split(unit["ExecStart"])
    assert argv[0] == INSTALLED and argv[1] == "run"
    args = build_parser().parse_args(argv[1:])  # the unit's command line is one voxline accepts
    # --grace on the command line wins over the config file, so this is the grace the service has.
    grace = float(args.grace) if args.grace is not None else RuntimeConfig.grace_s
    assert args.grace is not None, "the unit should say its --grace next to TimeoutStopSec"
    stop = seconds(unit["TimeoutStopSec"])
    assert grace < stop <= grace + 60, (grace, stop)
    assert unit["KillSignal"] == "SIGTERM"  # voxline drains on SIGTERM
    assert unit["Restart"] == "on-failure" and unit["Type"] in ("exec", "simple")
    assert unit["User"] and unit["User"] != "root"
