"""The signaling endpoint's answers to bad and unauthorised requests, and the playground's files:
each refused with a clear status before any peer connection exists, no session started."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets

from ..conftest import require_module, require_tool
from .test_audio import OFFER

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    config = RuntimeConfig.load(
        {"scenario": str(EXAMPLE), "sip": "off", "http": "127.0.0.1:0", "token": "test-token"}, env={}
    )
    rt = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test-key"}))
    await rt.start()
    yield rt
    await rt.shutdown(grace_s=0)


async def request(
    runtime: Runtime, method: str, path: str, **kwargs: object
) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"http://127.0.0.1:{runtime.http_port}{path}", **kwargs) as response,  # type: ignore[arg-type]
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_offers_need_the_token(runtime: Runtime) -> None:
    sdp = {"Content-Type": "application/sdp"}
    status, _, headers = await request(runtime, "POST", "/webrtc", data=OFFER, headers=sdp)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    status, _, _ = await request(
        runtime, "POST", "/webrtc", data=OFFER, headers={**sdp, "Authorization": "Bearer no"}
    )
    assert status == 403
    status, _, _ = await request(runtime, "POST", "/webrtc?token=no", data=OFFER, headers=sdp)
    assert status == 403
    status, _, _ = await request(runtime, "GET", "/webrtc/anything/events")
    assert status == 401
    assert not runtime.sessions


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (OFFER, "text/plain", 415, "application/sdp"),
        ("hello", "application/sdp", 400, "v=0"),
        (OFFER.replace("opus/48000/2", "PCMU/8000"), "application/sdp", 400, "Opus"),
        (OFFER.replace("a=fingerprint", "a=x-fingerprint"), "application/sdp", 400, "fingerprint"),
        ("v=0\r\n" + "a=x\r\n" * 20000, "application/sdp", 413, "bytes"),
        (b"v=0\r\n\xff\xfe", "application/sdp", 400, "UTF-8"),
    ],
    ids=["not-sdp", "not-an-offer", "no-opus", "no-dtls", "too-large", "not-utf8"],
)
async def test_bad_offers_get_a_clear_answer(
    runtime: Runtime, body: str | bytes, content_type: str, status: int, reason: str
) -> None:
    got, text, _ = await request(
        runtime, "POST", "/webrtc", data=body, headers={**AUTH, "Content-Type": content_type}
    )
    assert (got, reason in text) == (status, True), text
    assert not runtime.sessions
    assert runtime.webrtc is not None and not runtime.webrtc.peers


async def test_unknown_calls_are_404(runtime: Runtime) -> None:
    assert (await request(runtime, "DELETE", "/webrtc/nope", headers=AUTH))[0] == 404
    assert (await request(runtime, "GET", "/webrtc/nope/events", headers=AUTH))[0] == 404


async def test_the_playground_is_served_from_the_package_with_nothing_from_elsewhere(
    runtime: Runtime,
) -> None:
    status, html, headers = await request(runtime, "GET", "/playground")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("playground.js", "playground.css"):
        assert f"/playground/{name}" in html
        status, text, _ = await request(runtime, "GET", f"/playground/{name}")
        assert status == 200 and text
        # No CDN: the page and its script load nothing from another origin.
        assert "http://" not in text and "https://" not in text.replace("https://github.com/voxline", "")
    assert 'src="http' not in html and 'href="http' not in html.replace(
        'href="https://github.com/voxline', ""
    )
    status, config, _ = await request(runtime, "GET", "/playground/config.json")
    assert status == 200 and '"webrtc_path": "/webrtc"' in config and "token" not in config
    assert (await request(runtime, "GET", "/playground/../pyproject.toml"))[0] == 404
    assert (await request(runtime, "GET", "/playground/other.js"))[0] == 404


def test_demo_browser_serves_the_playground_against_the_example_agent() -> None:
    require_tool("espeak-ng")
    require_module("pocketsphinx")
    command = [sys.executable, "-m", "voxline", "demo", "--browser", "--http", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        url = None
        lines = []
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"http://127\.0\.0\.1:\d+/playground", line)
            if match:
                url = match.group(0)
                break
        assert url is not None, "".join(lines)
        assert any("embedded offline backend" in line for line in lines), lines
        with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
            assert response.status == 200 and b"voxline playground" in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
