"""A real Prometheus server (Debian's ``prometheus``) scrapes ``voxline run`` on loopback while sipp and
Twilio-protocol callers barge in on the greeting; PromQL through its HTTP API sees the calls, the
barge-ins, the truncations and non-empty latency histograms."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_tool
from tests.sip.peers import free_udp_port, run_peer, scenario, sipp_argv
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.carrier_callers import TwilioTestCaller

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inbound_agent.py"
SILENCE = b"\xff"  # μ-law silence
# 1.5 s of line silence, then the caller talks over the 3 s greeting for 0.8 s, then listens.
VOICE = SILENCE * 12000 + ulaw_encode(tone(500, 800, 8000, 0.5)) + SILENCE * 8000
TOKEN = "metrics-test-token"
CALLS_PER_TRANSPORT = 2


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    """Poll ``check`` until it holds (Prometheus sees a scrape a second or so after it happens)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"never true within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.25)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def start_voxline(tmp: Path, fake: FakeRealtimeServer, sip_port: int, http_port: int) -> Any:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-metrics-test",
        "OPENAI_BASE_URL": fake.base_url,
    }
    log = (tmp / "voxline.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", "run", str(EXAMPLE),
        "--sip", f"127.0.0.1:{sip_port}", "--http", f"127.0.0.1:{http_port}", "--token", TOKEN,
        "--grace", "0",
        stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    log.close()

    async def running() -> bool:
        if proc.returncode is not None:
            pytest.fail(f"voxline run exited: {(tmp / 'voxline.log').read_text()}")
        return b"running" in (tmp / "voxline.log").read_bytes()

    await until(running, "voxline run is running", 20)
    return proc


async def start_prometheus(tmp: Path, target_port: int) -> tuple[Any, str]:
    binary = require_tool("prometheus")
    port = free_tcp_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: voxline\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    log = (tmp / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        stdout=log, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    return proc, f"http://127.0.0.1:{port}"


async def stop(proc: Any) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class PromQL:
    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    async def vector(self, query: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's result: {sorted labels: value}."""
        response = await self.client.get(f"{self.base}/api/v1/query", params={"query": query})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return {
            tuple(sorted(sample["metric"].items())): float(sample["value"][1])
            for sample in body["data"]["result"]
        }

    async def scalar(self, query: str) -> float | None:
        result = await self.vector(query)
        assert len(result) <= 1, result
        return next(iter(result.values()), None)

    async def by(self, label: str, query: str) -> dict[str, float]:
        return {dict(labels).get(label, ""): value for labels, value in (await self.vector(query)).items()}


async def test_prometheus_scrapes_calls_barge_ins_truncations_and_latency(
    tmp_path: Path, fake_openai: FakeRealtimeServer
) -> None:
    sipp = require_tool("sipp")
    require_tool("prometheus")
    greeting = tone(300, 3000, 24000, 0.3)
    # Every answer is the long greeting: the one each call starts with is the one the caller cuts.
    fake_openai.script(*[ScriptedResponse(text="Hello, a long greeting.", audio=greeting)] * 20)
    sip_port, http_port = free_udp_port(), free_tcp_port()
    voxline = await start_voxline(tmp_path, fake_openai, sip_port, http_port)
    prometheus, base = await start_prometheus(tmp_path, http_port)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            promql = PromQL(client, base)

            async def ready() -> bool:
                try:
                    return (await client.get(f"{base}/-/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, "Prometheus is ready")
            await until(
                lambda: _equals(promql.scalar('up{job="voxline"}'), 1.0), "Prometheus scrapes voxline"
            )

            (tmp_path / "voice.ulaw").write_bytes(VOICE)
            sip_dir = tmp_path / "sipp"
            sip_dir.mkdir()
            uac = scenario(sip_dir, "uac_stream.xml", ULAW_FILE=str(tmp_path / "voice.ulaw"), PAUSE_MS="4000")
            sip_calls = run_peer(
                sipp_argv(
                    sipp, uac, f"127.0.0.1:{sip_port}", "-s", "agent", "-l", "2",
                    calls=CALLS_PER_TRANSPORT, timeout_s=20,
                ),
                sip_dir,
                30,
            )  # fmt: skip
            callers = [
                TwilioTestCaller(
                    f"ws://127.0.0.1:{http_port}/twilio?token={TOKEN}", VOICE, linger_ms=1500, seed=i
                )
                for i in range(CALLS_PER_TRANSPORT)
            ]
            (code, out), *_ = await asyncio.gather(sip_calls, *(c.run() for c in callers))
            assert code == 0, out
            assert all(c.clears >= 1 and not c.errors for c in callers), [
                (c.clears, c.errors) for c in callers
            ]

            expected = {"sip": float(CALLS_PER_TRANSPORT), "twilio": float(CALLS_PER_TRANSPORT)}

            async def all_calls_ended() -> bool:
                return await promql.by("transport", "sum by (transport) (voxline_calls_total)") == expected

            await until(all_calls_ended, f"voxline_calls_total by transport == {expected}")
            assert await promql.by("transport", "voxline_calls_active") == {
                "sip": 0.0,
                "twilio": 0.0,
                "voxengine": 0.0,
            }
            assert await promql.by("outcome", "sum by (outcome) (voxline_calls_total)") == {"completed": 4.0}
            barge_ins = await promql.by("transport", "sum by (transport) (voxline_barge_ins_total)")
            assert barge_ins == {**expected, "voxengine": 0.0}
            assert await promql.scalar("voxline_truncations_total") == 2.0 * CALLS_PER_TRANSPORT
            assert await promql.scalar("voxline_truncation_errors_total") == 0.0
            # The latency histograms have observations on both paths, and their quantiles are finite.
            for name in ("caller_to_model", "model_to_caller"):
                metric = f"voxline_{name}_latency_seconds"
                counts = await promql.by("transport", f"sum by (transport) ({metric}_count)")
                assert counts.keys() == {"sip", "twilio"} and min(counts.values()) > 0, (metric, counts)
                p50 = await promql.by(
                    "transport", f"histogram_quantile(0.5, sum by (transport, le) ({metric}_bucket))"
                )
                assert all(0 <= v < 1 for v in p50.values()) and p50.keys() == {"sip", "twilio"}, p50
            barge_count = await promql.by(
                "transport", "sum by (transport) (voxline_barge_in_to_silence_seconds_count)"
            )
            assert barge_count == expected
            setup = await promql.by("stage", "sum by (stage) (voxline_call_setup_seconds_count)")
            assert setup == {"answered": 4.0, "model_ready": 4.0}
            # Each SIP call: at least a 200 to its INVITE and one to its BYE.
            assert (await promql.scalar('voxline_sip_responses_total{class="2xx"}') or 0) >= 4
            assert ((await promql.scalar("voxline_rtp_packets_received_total")) or 0) > 0
            assert await promql.scalar("voxline_rtp_packets_lost_total") == 0.0
            tokens = await promql.by("kind", "voxline_tokens_total")
            assert tokens["output_audio"] > 0 and tokens["input_audio"] > 0, tokens
            closes = await promql.by("code", 'voxline_websocket_closes_total{peer="realtime"}')
            assert sum(closes.values()) == 4.0, closes
            assert (await promql.scalar("sum(voxline_event_loop_lag_seconds_count)") or 0) > 0
    finally:
        await stop(prometheus)
        await stop(voxline)
    fake_openai.assert_no_violations()


async def _equals(value: Awaitable[float | None], expected: float) -> bool:
    return await value == expected
