"""``voxline`` as a user runs it: a subprocess, its exit code and what it prints."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_module
from voxline import __version__
from voxline.testing import FakeRealtimeServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
KEY = "sk-proj-cli-secret-9f8e7d6c5b4a"


async def voxline(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str]:
    """Run ``python -m voxline ARGS`` to its end; (exit code, stdout + stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**base, **(env or {})},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_keys={KEY}) as server:
        yield server


def outbound_scenario(tmp_path: Path) -> Path:
    """A session that opens a Realtime client on start and ends when the server closes it."""
    path = tmp_path / "connect.py"
    path.write_text(
        textwrap.dedent(
            """\
            from voxline import AppEvents, OpenAI, VoxEngine

            async def on_started(event):
                client = await OpenAI.create_realtime_api_client(
                    api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
                    on_web_socket_close=lambda e: print("closed", e["code"], flush=True),
                )
                client.add_event_listener(OpenAI.RealtimeAPIEvents.SessionCreated,
                                          lambda e: print("session created", flush=True))

            VoxEngine.add_event_listener(AppEvents.Started, on_started)
            """
        )
    )
    return path


async def run_until(args: list[str], env: dict[str, str], needle: str, timeout: float = 20) -> str:
    """Start ``voxline ARGS``, read its output until ``needle`` appears, then SIGTERM it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**base, **env},
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while needle not in "".join(seen):
                line = await proc.stdout.readline()
                if not line:
                    break
                seen.append(line.decode())
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            rest, _ = await asyncio.wait_for(proc.communicate(), 15)
        except TimeoutError:
            proc.kill()
            raise
        seen.append(rest.decode())
    return "".join(seen)


async def test_python_dash_m_voxline_is_the_command() -> None:
    code, out = await voxline("--version")
    assert (code, out.strip()) == (0, f"voxline {__version__}")


async def test_backend_openai_without_a_key_is_refused(tmp_path: Path) -> None:
    code, out = await voxline("run", str(EXAMPLE), "--sip", "127.0.0.1:0", "--http", "off")
    assert code == 2, out
    assert "backend openai needs OPENAI_API_KEY" in out and "--backend local" in out
    assert "Traceback" not in out


async def test_a_scenario_that_cannot_import_fails_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from voxline import VoxEngine\nfrom voxline import NoSuchThing\n")
    code, out = await voxline(
        "run", str(bad), "--sip", "127.0.0.1:0", "--http", "off", env={"OPENAI_API_KEY": KEY}
    )
    assert code == 2, out
    assert f"{bad}:2: ImportError: cannot import name 'NoSuchThing'" in out
    assert "running" not in out and "Traceback" not in out


async def test_a_busy_sip_port_names_the_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        code, out = await voxline(
            "run", str(EXAMPLE), "--sip", f"127.0.0.1:{port}", "--http", "off", env={"OPENAI_API_KEY": KEY}
        )
    assert code == 1, out
    assert f"cannot listen for SIP (udp+tcp) on 127.0.0.1:{port}: [Errno 98] Address already in use" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--http", "0.0.0.0:0", "--sip", "off"], "http: listening on 0.0.0.0 lets anyone on the network"),
        (["--sip", "0.0.0.0:0", "--http", "off"], "sip: listening on 0.0.0.0 takes calls from the network"),
        (["--grace", "-1"], "grace_s must be >= 0"),
        (["--max-calls", "lots"], "max_calls must be an integer, not 'lots'"),
        (["--sip", "off", "--http", "off"], "nothing to listen on"),
        (["--http", "999.1.1.1:8080"], "http: '999.1.1.1' is not a valid IPv4 address"),
        (["--rules", "x.yaml"], "--rules is for the embedded backend: add --backend local"),
    ],
)
async def test_unsafe_or_nonsense_settings_are_refused_with_their_name(args: list[str], needle: str) -> None:
    code, out = await voxline("run", str(EXAMPLE), *args, env={"OPENAI_API_KEY": KEY})
    assert code == 2, out
    assert needle in out, out


async def test_debug_logging_never_shows_the_key(tmp_path: Path, fake_openai: FakeRealtimeServer) -> None:
    # Options after the subcommand; the key from a dotenv secrets file.
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"# the model's key\nexport OPENAI_API_KEY='{KEY}'\n")
    args = ["run", "-vv", str(outbound_scenario(tmp_path)), "--sip", "127.0.0.1:0", "--http", "off"]
    args += ["--secrets", str(secrets), "--start-session", "--grace", "0"]
    out = await run_until(args, {"OPENAI_BASE_URL": fake_openai.base_url}, "session created")
    assert "session created" in out, out
    assert "> Authorization: ***" in out  # websockets' handshake debug line, masked
    assert KEY[8:] not in out


async def test_a_wrong_key_shows_the_servers_message_and_close_code(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    args = [
        "run",
        str(outbound_scenario(tmp_path)),
        "--sip",
        "127.0.0.1:0",
        "--http",
        "off",
        "--start-session",
        "--grace",
        "0",
    ]
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-wrong-0123456789"}
    out = await run_until(args, env, "closed 3000")
    assert "invalid_api_key: Incorrect API key provided" in out, out
    assert "the connection closed: code 3000 (invalid_request_error.invalid_api_key)" in out
    assert "sk-wrong-0123456789" not in out


async def test_the_measure_tool_prints_help_instead_of_running() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.local.measure", "--help",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert out.decode().startswith("usage: python -m voxline.local.measure")
    assert "asr " not in out.decode() and "CPUs, Python" not in out.decode()  # nothing was measured


async def test_the_uvloop_event_loop_runs_a_session(tmp_path: Path, fake_openai: FakeRealtimeServer) -> None:
    require_module("uvloop")  # the voxline[uvloop] extra; .ci/run installs it
    args = ["run", str(outbound_scenario(tmp_path)), "--sip", "127.0.0.1:0", "--http", "off"]
    args += ["--event-loop", "uvloop", "--start-session", "--grace", "0"]
    out = await run_until(
        args, {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake_openai.base_url}, "session created"
    )
    assert "session created" in out and "Traceback" not in out


async def test_debug_json_logs_of_a_call_hold_no_secret(fake_openai: FakeRealtimeServer) -> None:
    """``voxline run -vv --log-format json`` (options after the command) with the key, the media
    token and the Twilio auth token set, and a Twilio-protocol call through it: every stderr line is
    one JSON object, the call's lines carry its ids, and no secret shows at any level."""
    from voxline.audio.tone import tone
    from voxline.testing import ScriptedResponse
    from voxline.testing.carrier_callers import TwilioTestCaller

    token, twilio_auth = "cli-media-token-8a7b6c", "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
    fake_openai.script(ScriptedResponse(text="Hello there.", audio=tone(300, 400, 24000, 0.3)))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOXLINE_"))}
    env = {**base, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake_openai.base_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline", "run", "-vv", "--log-format", "json", str(EXAMPLE),
        "--sip", "off", "--http", "127.0.0.1:0", "--token", token, "--twilio-auth-token", twilio_auth,
        "--grace", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.ensure_future(proc.stderr.read())  # drained meanwhile: -vv says a lot
    try:
        running = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert "running" in running, running + (await stderr).decode()
        port = int(running.rsplit(":", 1)[1])
        caller = TwilioTestCaller(
            f"ws://127.0.0.1:{port}/twilio?token={token}", b"\xff" * 4000, custom_parameters={"From": "+1555"}
        )
        await asyncio.wait_for(caller.run(), 20)
        assert caller.errors == [] and caller.received
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    out = (await stderr).decode()
    for secret in (KEY, KEY[8:], token, twilio_auth):
        assert secret not in out
    records = [json.loads(line) for line in out.splitlines()]  # every line is one object
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    handshake = [r for r in records if r["logger"] == "websockets.client" and r["msg"].startswith("> ")]
    assert {"> Authorization: ***", "> GET /v1/realtime?model=gpt-realtime HTTP/1.1"} <= {
        r["msg"] for r in handshake
    }
    ((session_id, call_id),) = {(r.get("session_id"), r.get("call_id")) for r in handshake}
    assert str(session_id).startswith("session-") and call_id == "call-1"
    assert any(r["level"] == "DEBUG" and r["logger"] == "voxline.openai.realtime" for r in records)


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["run", str(EXAMPLE), "--log-format", "xml"], {}, "argument --log-format: invalid choice: 'xml'"),
        (["--log-level", "loud", "run", str(EXAMPLE)], {}, "argument --log-level: invalid choice: 'loud'"),
        (["run", str(EXAMPLE)], {"VOXLINE_LOG_FORMAT": "yaml"}, "log_format must be 'text' or 'json'"),
        (["run", str(EXAMPLE)], {"VOXLINE_LOG_LEVEL": "chatty"}, "log_level must be one of debug, info"),
    ],
)
async def test_bad_log_settings_are_refused_with_their_name(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    code, out = await voxline(*args, env={"OPENAI_API_KEY": KEY, **env})
    assert code == 2, out
    assert needle in out, out


async def test_log_options_work_before_the_command_and_the_environment_sets_the_format(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    args = ["--log-level", "debug", "run", str(outbound_scenario(tmp_path)), "--sip", "127.0.0.1:0"]
    args += ["--http", "off", "--start-session", "--grace", "0"]
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake_openai.base_url, "VOXLINE_LOG_FORMAT": "json"}
    out = await run_until(args, env, "session created")
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "> Authorization: ***" and "session_id" in r for r in logged), out
    assert KEY[8:] not in out
