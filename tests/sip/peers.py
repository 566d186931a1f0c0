"""Helpers to run the real SIP peers (sipp, baresip) as subprocesses on loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scenario(tmp: Path, name: str, **subs: str) -> Path:
    """A copy of a sipp scenario from tests/data/sip/sipp with ``__KEY__`` placeholders filled in."""
    text = (DATA / "sipp" / name).read_text()
    for key, value in subs.items():
        text = text.replace(f"__{key}__", value)
    path = tmp / name
    path.write_text(text)
    return path


async def run_peer(argv: list[str], cwd: Path, timeout: float = 15.0) -> tuple[int, str]:
    """Run a peer to completion (killed after ``timeout``); returns (exit code, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        out = b"(killed after timeout)"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def sipp_argv(
    sipp: str, scenario_file: Path, target: str, *extra: str, calls: int = 1, timeout_s: int = 12
) -> list[str]:
    return [
        sipp,
        "-sf",
        str(scenario_file),
        target,
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-m",
        str(calls),
        "-nostdin",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-trace_err",
        *extra,
    ]


def sipp_uas_argv(sipp: str, scenario_file: Path, port: int, timeout_s: int = 8) -> list[str]:
    """sipp as a callee on 127.0.0.1:``port`` for one call."""
    return [sipp, "-sf", str(scenario_file), "-p", str(port), "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-mp", str(free_udp_port()), "-m", "1", "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err"]  # fmt: skip
