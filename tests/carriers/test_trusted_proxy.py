"""Twilio signatures behind a reverse proxy, over real loopback sockets: ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` give the URL Twilio signed when the request comes from a trusted proxy, and
are ignored from anyone else (they would let a stranger pick the URL a signature is checked
against). The tests connect from 127.0.0.1: trusting it plays the proxy, trusting another network
plays a stranger sending the same headers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from voxline.carriers import CarrierConfig
from voxline.cli import build_parser
from voxline.runtime.server import RuntimeConfig

from .conftest import ServerFactory
from .test_endpoint_guards import healthy, signature

PUBLIC_STREAM = "wss://voice.example.com/twilio"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com"}
FORM = {"CallSid": "CA9", "From": "+15550100", "To": "+15550199"}


async def post_webhook(base: str, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(base + "/twilio/voice", data=FORM, headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_a_signed_stream_through_a_trusted_proxy_is_checked_against_the_forwarded_url(
    make_server: ServerFactory,
) -> None:
    server = await make_server(twilio_auth_token="authtok", trusted_proxies=("127.0.0.1",))
    await healthy(server, headers={**FORWARDED, "X-Twilio-Signature": signature("authtok", PUBLIC_STREAM)})
    # Signed for the URL the proxy received, not the node's: that is what Twilio signs.
    with pytest.raises(InvalidStatus) as refused:
        await healthy(
            server,
            headers={**FORWARDED, "X-Twilio-Signature": signature("authtok", server.ws_url("/twilio"))},
        )
    assert refused.value.response.status_code == 403


async def test_the_same_headers_from_an_untrusted_source_are_ignored(make_server: ServerFactory) -> None:
    server = await make_server(twilio_auth_token="authtok", trusted_proxies=("10.0.0.0/8",))
    with pytest.raises(InvalidStatus) as refused:
        await healthy(
            server, headers={**FORWARDED, "X-Twilio-Signature": signature("authtok", PUBLIC_STREAM)}
        )
    assert refused.value.response.status_code == 403
    # What the stranger really requested still validates: the headers change nothing.
    own = server.ws_url("/twilio")
    await healthy(server, headers={**FORWARDED, "X-Twilio-Signature": signature("authtok", own)})
    assert server.endpoints.stats["refused_forbidden"] == 1


async def test_the_webhook_behind_a_trusted_proxy_validates_and_points_the_stream_at_the_public_host(
    make_server: ServerFactory,
) -> None:
    public = "https://voice.example.com/twilio/voice"
    trusted = await make_server(twilio_auth_token="authtok", trusted_proxies=("127.0.0.0/8", "::1"))
    status, text = await post_webhook(
        trusted.base, {**FORWARDED, "X-Twilio-Signature": signature("authtok", public, FORM)}
    )
    assert status == 200
    stream = ET.fromstring(text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == PUBLIC_STREAM

    untrusted = await make_server(twilio_auth_token="authtok")  # the default: no proxy trusted
    status, _ = await post_webhook(
        untrusted.base, {**FORWARDED, "X-Twilio-Signature": signature("authtok", public, FORM)}
    )
    assert status == 403
    assert untrusted.endpoints.stats["webhook_refused"] == 1


@pytest.mark.parametrize(
    ("headers", "signed_url"),
    [
        # Several proxies or a caller's own value before the proxy's: the last one is the proxy's.
        (
            {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, voice.example.com"},
            PUBLIC_STREAM,
        ),
        # Values that are not a scheme or a host are ignored: the request's own are used.
        ({"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "voice.example.com/path?x="}, None),
        ({"X-Forwarded-Host": "user@voice.example.com"}, None),
        # Only the scheme forwarded (HAProxy keeps the Host): the request's Host with https.
        ({"X-Forwarded-Proto": "https"}, "wss://{host}/twilio"),
    ],
    ids=["last-value", "unusable", "userinfo", "proto-only"],
)
async def test_forwarded_values_the_proxy_set_win_and_unusable_ones_are_ignored(
    make_server: ServerFactory, headers: dict[str, str], signed_url: str | None
) -> None:
    server = await make_server(twilio_auth_token="authtok", trusted_proxies=("127.0.0.1",))
    host = server.base.removeprefix("http://")
    url = (signed_url or server.ws_url("/twilio")).format(host=host)
    await healthy(server, headers={**headers, "X-Twilio-Signature": signature("authtok", url)})


async def test_public_url_wins_over_forwarded_headers(make_server: ServerFactory) -> None:
    server = await make_server(
        twilio_auth_token="authtok", public_url="https://voice.example.org", trusted_proxies=("127.0.0.1",)
    )
    await healthy(
        server,
        headers={**FORWARDED, "X-Twilio-Signature": signature("authtok", "wss://voice.example.org/twilio")},
    )


@pytest.mark.parametrize("value", [("10.0.0.0/33",), ("proxy.example",), "10.0.0.1"])
def test_bad_trusted_proxies_name_the_setting(value: Any) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        CarrierConfig(trusted_proxies=value)


def test_trusts_matches_networks_and_ipv4_mapped_addresses() -> None:
    config = CarrierConfig(trusted_proxies=("10.0.0.0/8", "2001:db8::/32"))
    assert config.trusts("10.1.2.3") and config.trusts("::ffff:10.1.2.3") and config.trusts("2001:db8::5")
    assert not config.trusts("127.0.0.1") and not config.trusts(None) and not config.trusts("not-an-ip")
    assert not CarrierConfig().trusts("127.0.0.1")  # trusting nobody is the default


def test_runtime_setting_from_flag_environment_and_file(tmp_path: Path) -> None:
    assert RuntimeConfig.load({"scenario": "s.py"}, env={}).http_trusted_proxies == ()
    flag = RuntimeConfig.load({"scenario": "s.py", "http_trusted_proxies": "10.0.0.5, 10.1.0.0/16"}, env={})
    assert flag.http_trusted_proxies == ("10.0.0.5", "10.1.0.0/16")
    env = RuntimeConfig.load({"scenario": "s.py"}, env={"VOXLINE_HTTP_TRUSTED_PROXIES": "192.0.2.7"})
    assert env.http_trusted_proxies == ("192.0.2.7",)
    file = tmp_path / "voxline.toml"
    file.write_text('[run]\nhttp_trusted_proxies = ["192.0.2.0/24", "2001:db8::1"]\n')
    loaded = RuntimeConfig.load({"scenario": "s.py"}, env={}, config_file=str(file))
    assert loaded.http_trusted_proxies == ("192.0.2.0/24", "2001:db8::1")
    with pytest.raises(ValueError, match="http_trusted_proxies: 'proxy' is not an IP address"):
        RuntimeConfig.load({"scenario": "s.py", "http_trusted_proxies": "10.0.0.1,proxy"}, env={})


def test_the_cli_flag_reaches_the_setting() -> None:
    args = build_parser().parse_args(["run", "s.py", "--http-trusted-proxy", "10.0.0.5,10.0.0.6"])
    assert args.http_trusted_proxy == "10.0.0.5,10.0.0.6"
