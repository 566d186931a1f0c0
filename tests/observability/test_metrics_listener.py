"""Where ``voxline run`` serves /metrics: the HTTP listener by default, a listener of its own with
``--metrics HOST:PORT`` (also with ``--http off``), nowhere with ``off``; public addresses refused
unless ``--open-metrics``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inbound_agent.py"


def load(**settings: object) -> RuntimeConfig:
    return RuntimeConfig.load({"scenario": str(EXAMPLE), **settings}, env={})


def test_metrics_default_on_the_http_listener_on_loopback_only() -> None:
    assert load().metrics == "on"
    assert load(http="off", sip="127.0.0.1:0").metrics == "off"
    # A public HTTP listener (secured for media) does not show /metrics unless asked to.
    assert load(http="0.0.0.0:8080", token="t").metrics == "off"
    assert load(http="0.0.0.0:8080", token="t", open_metrics=True).metrics == "on"
    assert load(metrics="OFF").metrics == "off"
    assert load(metrics="127.0.0.1:9100").metrics_listen == "127.0.0.1:9100"
    assert load().metrics_listen is None


def test_metrics_refuses_what_cannot_be_served_or_is_public() -> None:
    with pytest.raises(ValueError, match="metrics: 'on' serves /metrics on the HTTP listener, which is off"):
        load(http="off", sip="127.0.0.1:0", metrics="on")
    with pytest.raises(ValueError, match=r"metrics: /metrics on the HTTP listener .* --open-metrics"):
        load(http="0.0.0.0:8080", token="t", metrics="on")
    with pytest.raises(ValueError, match=r"metrics: listening on 0\.0\.0\.0 .* --open-metrics"):
        load(metrics="0.0.0.0:9100")
    assert load(metrics="0.0.0.0:9100", open_metrics="yes").metrics_listen == "0.0.0.0:9100"
    with pytest.raises(ValueError, match="metrics must be HOST:PORT"):
        load(metrics="sometimes")
    with pytest.raises(ValueError, match="open_metrics must be true or false"):
        load(open_metrics="perhaps")


def test_metrics_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    env = {"VOXLINE_METRICS": "127.0.0.1:9300"}
    assert RuntimeConfig.load({"scenario": str(EXAMPLE)}, env=env).metrics_listen == "127.0.0.1:9300"
    toml = tmp_path / "voxline.toml"
    toml.write_text('[run]\nmetrics = "off"\n')
    assert RuntimeConfig.load({"scenario": str(EXAMPLE)}, env={}, config_file=str(toml)).metrics == "off"


async def start(**settings: object) -> Runtime:
    config = RuntimeConfig.load({"scenario": str(EXAMPLE), "sip": "127.0.0.1:0", **settings}, env={})
    runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": "sk-test"}))
    await runtime.start()
    return runtime


async def test_metrics_on_the_http_listener() -> None:
    runtime = await start(http="127.0.0.1:0")
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{runtime.http_port}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE voxline_calls_active gauge" in response.text
        assert 'voxline_calls_active{transport="sip"} 0.0' in response.text
        assert runtime.metrics_port is None
    finally:
        await runtime.shutdown(grace_s=0)


async def test_metrics_on_a_listener_of_its_own_with_http_off() -> None:
    runtime = await start(http="off", metrics="127.0.0.1:0")
    try:
        assert runtime.http_port is None and runtime.metrics_port is not None
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{runtime.metrics_port}/metrics")
            assert response.status_code == 200
            assert "voxline_sip_responses_total" in response.text
            assert (await client.get(f"http://127.0.0.1:{runtime.metrics_port}/twilio")).status_code == 404
    finally:
        await runtime.shutdown(grace_s=0)


async def test_metrics_off_is_not_served() -> None:
    runtime = await start(http="127.0.0.1:0", metrics="off")
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{runtime.http_port}/metrics")
        assert response.status_code == 404
    finally:
        await runtime.shutdown(grace_s=0)
