"""`voxline run` TLS and SRTP settings: flags and TOML keys, the files checked at load, the public
listener rule, what does not go together, and `voxline run --sip-tls` itself."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from pathlib import Path

import pytest

from tests.sip.peers import free_udp_port
from tests.sip.tlscert import make_cert
from voxline.cli import build_parser
from voxline.runtime.server import RuntimeConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"


def test_flags_and_toml_keys(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    args = build_parser().parse_args(
        ["run", "s.py", "--sip-tls", "127.0.0.1:5061", "--sip-cert", str(cert), "--sip-key", str(key),
         "--sip-tls-ca", str(cert), "--srtp", "require"]
    )  # fmt: skip
    assert (args.sip_tls, args.sip_cert, args.sip_key, args.sip_tls_ca, args.srtp) == (
        "127.0.0.1:5061", str(cert), str(key), str(cert), "require"
    )  # fmt: skip
    file = tmp_path / "voxline.toml"
    file.write_text(
        f'[run]\nsip_tls = "127.0.0.1:5062"\nsip_cert = "{cert}"\nsip_key = "{key}"\nsrtp = "Offer"\n'
    )
    config = RuntimeConfig.load({"scenario": "s.py"}, env={}, config_file=str(file))
    tls = config.sip_tls_settings()
    assert tls is not None and (tls.host, tls.port, tls.cert, tls.verify) == (
        "127.0.0.1",
        5062,
        str(cert),
        True,
    )
    assert config.srtp == "offer"
    # No listener by default; outbound sips: calls are still verified against the system's store.
    assert RuntimeConfig.load({"scenario": "s.py"}, env={}).sip_tls_settings().port is None


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"sip_tls": "0.0.0.0:5061"}, "sip_tls: listening on 0.0.0.0 takes calls from the network"),
        ({"sip_tls": "127.0.0.1:5061", "sip_key": None}, "needs a certificate and its key"),
        ({"sip_tls": "127.0.0.1:5061", "sip": "off"}, "sip_tls needs the SIP listener"),
        ({"sip_tls": "127.0.0.1:5061", "workers": 2}, "does not work with workers > 1"),
        ({"sip_tls": None}, "give sip_tls HOST:PORT too"),
        ({"srtp": "sometimes"}, "srtp must be off, offer or require"),
    ],
)
def test_bad_tls_settings_are_named(tmp_path: Path, extra: dict[str, object], needle: str) -> None:
    cert, key = make_cert(tmp_path)
    settings: dict[str, object] = {"scenario": "s.py", "sip_cert": str(cert), "sip_key": str(key), **extra}
    with pytest.raises(ValueError, match=needle.replace(">", ".")):
        RuntimeConfig.load({k: v for k, v in settings.items() if v is not None}, env={})


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    _, key = make_cert(tmp_path)
    settings = {"scenario": "s.py", "sip_tls": "127.0.0.1:5061", "sip_cert": str(tmp_path / "nope.crt")}
    with pytest.raises(ValueError, match=r"cert: '.*nope\.crt' is not a readable file"):
        RuntimeConfig.load({**settings, "sip_key": str(key)}, env={})


async def test_voxline_run_listens_for_tls_and_says_where(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    sip_port, tls_port = free_udp_port(), free_udp_port()
    env = {**os.environ, "OPENAI_API_KEY": "sk-unused"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", "run", str(EXAMPLE), "--sip", f"127.0.0.1:{sip_port}",
        "--sip-tls", f"127.0.0.1:{tls_port}", "--sip-cert", str(cert), "--sip-key", str(key),
        "--http", "off", "--grace", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert f"SIP TLS 127.0.0.1:{tls_port}".encode() in line, line
        # A TLS handshake with the listener, the certificate verified against the test's own.
        context = ssl.create_default_context(cafile=str(cert))
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", tls_port, ssl=context), 10)
        assert writer.get_extra_info("peercert") is not None
        writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0, await proc.stdout.read()
