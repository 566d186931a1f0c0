"""Use an installed voxline the way a new user would (run by .ci/installed, outside the checkout).

    python .ci/check_installed.py base|local|testing

base: the command runs scenarios with a key (and serves /metrics), refuses without one, and asks for
the right extra for the offline backend and the demo (one message, no traceback). local: the demo
runs end to end. testing: the fake Realtime server of ``voxline.testing`` answers a scenario run
by ``voxline run``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

KEY = "sk-installed-check-0123456789"
BIN = Path(sys.executable).parent
CONNECT = """\
from voxline import AppEvents, OpenAI, VoxEngine

async def on_started(event):
    client = await OpenAI.create_realtime_api_client(api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"))
    client.add_event_listener(OpenAI.RealtimeAPIEvents.SessionCreated,
                              lambda e: print("session created", flush=True))

VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


def fail(message: str, output: str = "") -> None:
    sys.exit(f"installed check failed: {message}\n{output}")


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_", "PYTHON"))}
    return {**clean, **extra}


def cli(*args: str, timeout: float = 120, **extra: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(BIN / "voxline"), *args], capture_output=True, text=True, timeout=timeout, env=env(**extra)
    )
    return proc.returncode, proc.stdout + proc.stderr


def run_until(args: list[str], needle: str, timeout: float = 60, **extra: str) -> tuple[int, str]:
    """Start ``voxline ARGS``, wait for ``needle`` in its output, SIGTERM it; (exit code, output)."""
    proc = subprocess.Popen(
        [str(BIN / "voxline"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(**extra),
    )
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if needle in line:
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=timeout)
        seen.append(rest)
    output = "".join(seen)
    if needle not in output:
        fail(f"voxline {' '.join(args)} never printed {needle!r}", output)
    return proc.returncode, output


def packaged_scenario(folder: Path) -> Path:
    target = folder / "inbound_agent.py"
    source = resources.files("voxline.local").joinpath("data", "inbound_agent.py")
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def check_base(folder: Path) -> None:
    import voxline

    if not voxline.__file__ or "site-packages" not in voxline.__file__:
        fail(f"voxline was imported from {voxline.__file__}, not the installed wheel")
    for module in ("jsonschema", "pocketsphinx", "yaml"):
        if importlib.util.find_spec(module) is not None:
            fail(f"{module} is installed in the base environment; the check needs it absent")
    import voxline.testing.carrier_callers  # needs no extra

    code, out = cli("--version")
    if code != 0 or not out.startswith("voxline "):
        fail("voxline --version", out)
    proc = subprocess.run([sys.executable, "-m", "voxline", "--version"], capture_output=True, text=True)
    if proc.returncode != 0:
        fail("python -m voxline --version", proc.stdout + proc.stderr)

    scenario = packaged_scenario(folder)
    listen = ["--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    code, out = run_until(["run", str(scenario), *listen], "running", OPENAI_API_KEY=KEY)
    if code != 0 or "Traceback" in out:
        fail("voxline run with a key should run and stop cleanly on SIGTERM", out)

    check_metrics(scenario)
    check_playground(scenario)

    code, out = cli("run", str(scenario), *listen)
    if code != 2 or "needs OPENAI_API_KEY" not in out or "Traceback" in out:
        fail("voxline run without a key should exit 2 saying so", out)

    code, out = cli("run", str(scenario), *listen, "--backend", "local")
    if code != 2 or "voxline[local]" not in out or "Traceback" in out or "voxline[testing]" in out:
        fail("voxline run --backend local on the base install should name the [local] extra", out)

    code, out = cli("demo", "--out", str(folder / "demo"))
    asks = [line for line in out.splitlines() if "voxline[local]" in line]
    if code != 1 or len(asks) != 1 or "voxline[testing]" in out or "Traceback" in out:
        fail("voxline demo on the base install should ask for voxline[local], once", out)


def check_metrics(scenario: Path) -> None:
    """The base install serves Prometheus metrics (prometheus-client is a base dependency)."""
    import re
    import urllib.request

    args = ["run", str(scenario), "--sip", "127.0.0.1:0", "--http", "off", "--metrics", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [str(BIN / "voxline"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(OPENAI_API_KEY=KEY),
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        port = re.search(r"metrics 127\.0\.0\.1:(\d+)", line)
        if port is None:
            fail("voxline run --metrics HOST:PORT should say where metrics are", line)
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as response:
            body = response.read().decode()
        if "voxline_calls_active" not in body:
            fail("GET /metrics of the installed voxline run", body[:2000])
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def check_playground(scenario: Path) -> None:
    """The wheel ships the playground page; without the webrtc extra an offer gets 501 naming it."""
    import re
    import urllib.error
    import urllib.request

    args = ["run", str(scenario), "--sip", "off", "--http", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [str(BIN / "voxline"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(OPENAI_API_KEY=KEY),
    )
    assert proc.stdout is not None
    try:
        seen = ""
        port = None
        while port is None and len(seen) < 20_000:
            line = proc.stdout.readline()  # a warning (open media endpoints) may come first
            if not line:
                break
            seen += line
            port = re.search(r"running .*HTTP 127\.0\.0\.1:(\d+)", line)
        if port is None:
            fail("voxline run --http should say where it listens", seen)
        base = f"http://127.0.0.1:{port.group(1)}"
        for path in ("/playground", "/playground/playground.js", "/playground/playground.css"):
            with urllib.request.urlopen(base + path, timeout=10) as response:
                if response.status != 200 or not response.read():
                    fail(f"GET {path} of the installed voxline run")
        offer = b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
        offer += b"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=fingerprint:sha-256 AA\r\n"
        request = urllib.request.Request(
            base + "/webrtc", data=offer, headers={"Content-Type": "application/sdp"}, method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            fail("an offer to a voxline run without aiortc should be refused")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode()
            if exc.code != 501 or "voxline[webrtc]" not in body:
                fail("an offer without the webrtc extra should get 501 naming voxline[webrtc]", body)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def check_local(folder: Path) -> None:
    if shutil.which("espeak-ng") is None:
        fail("espeak-ng is not installed (.ci/run installs it)")
    code, out = cli("demo", "--out", str(folder / "demo"), timeout=180)
    if code != 0 or "3/3 understood" not in out:
        fail("voxline demo with [local] should run the whole call", out)
    code, out = run_until(
        [
            "run",
            str(packaged_scenario(folder)),
            "--backend",
            "local",
            "--sip",
            "127.0.0.1:0",
            "--http",
            "off",
        ],
        "running",
    )
    if code != 0 or "Traceback" in out:
        fail("voxline run --backend local should start and stop", out)


def check_testing(folder: Path) -> None:
    from voxline.testing import FakeRealtimeServer

    scenario = folder / "connect.py"
    scenario.write_text(CONNECT, encoding="utf-8")

    async def main() -> None:
        async with FakeRealtimeServer(api_keys={KEY}) as fake:
            args = ["run", str(scenario), "--sip", "127.0.0.1:0", "--http", "off", "--start-session"]
            args += ["--grace", "0"]
            code, out = await asyncio.to_thread(
                run_until, args, "session created", OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.base_url
            )
            if code != 0 or len(fake.sessions) != 1:
                fail("voxline run against voxline.testing's fake server", out)
            fake.assert_no_violations()

    asyncio.run(main())
    # The pytest plugin comes with the extra: its fixtures are there for a user's own pytest.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "voxline_runtime" not in result.stdout or "voxline_caller" not in result.stdout:
        fail("the pytest plugin's fixtures (pytest --fixtures)", result.stdout + result.stderr)


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    checks = {"base": check_base, "local": check_local, "testing": check_testing}
    if kind not in checks:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(checks)}")
    with tempfile.TemporaryDirectory() as folder:
        checks[kind](Path(folder))
    print(f"installed check: {kind} ok")


if __name__ == "__main__":
    main()
