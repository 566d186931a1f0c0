"""The core behind a SIP proxy (``SipConfig.trusted_proxies``), on a virtual clock: the caller's
address from the Via below the proxy's, what ``allow_sources`` checks then, the route set the
proxy's Record-Route makes (our BYE goes through the proxy), and Vias from anyone else ignored.
With the real Kamailio: tests/deploy/test_kamailio.py."""

from __future__ import annotations

import logging

import pytest

from voxline.runtime.server import RuntimeConfig
from voxline.sip import IncomingCall, SipConfig

from .messages import invite, request
from .test_core import Harness

PROXY = ("192.0.2.10", 5060)
CALLER_VIA = "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-inv-1;rport"
RECORD_ROUTE = "<sip:192.0.2.10;lr>"


def proxied(data: bytes, caller_via: str = "", *, proxies: list[str] | None = None) -> bytes:
    """``data`` as a proxy forwards it: the caller's Via changed to ``caller_via`` (when given), the
    proxy's own Via (or those of ``proxies``, outermost first) on top, its Record-Route added."""
    if caller_via:
        data = data.replace(CALLER_VIA.encode(), caller_via.encode())
    head, sep, rest = data.partition(b"\r\n")
    tops = b"".join(
        f"Via: SIP/2.0/UDP {p};branch=z9hG4bK-proxy-{n}\r\n".encode()
        for n, p in enumerate(proxies or [f"{PROXY[0]}:{PROXY[1]}"])
    )
    return head + sep + tops + f"Record-Route: {RECORD_ROUTE}\r\n".encode() + rest


def incoming(h: Harness) -> IncomingCall:
    calls = [e for e in h.events if isinstance(e, IncomingCall)]
    assert len(calls) == 1, h.events
    return calls[0]


def test_the_callers_address_comes_from_the_via_the_trusted_proxy_received() -> None:
    h = Harness(trusted_proxies=["192.0.2.0/28"])
    caller_via = "SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK-inv-1;rport=40123;received=203.0.113.9"
    h.feed(proxied(invite(), caller_via), PROXY)
    call = incoming(h)
    assert call.source == PROXY  # where answers go
    assert call.caller_address == ("203.0.113.9", 40123)  # received= and rport= of the proxy
    assert call.caller_id == "15551230000"  # From, untouched by the proxy
    assert [r.status for r in h.responses()] == [100]
    # Without received/rport (the proxy saw the request come from its sent-by): the sent-by.
    h = Harness(trusted_proxies=["192.0.2.10"])
    h.feed(proxied(invite(), "SIP/2.0/UDP 203.0.113.9:5080;branch=z9hG4bK-inv-1"), PROXY)
    assert incoming(h).caller_address == ("203.0.113.9", 5080)


def test_a_chain_of_trusted_proxies_is_followed_down_to_the_caller() -> None:
    h = Harness(trusted_proxies=["192.0.2.0/24"])
    caller_via = "SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-inv-1;rport=5060"  # the edge proxy
    data = proxied(invite(), caller_via, proxies=["192.0.2.10:5060"])
    # The edge proxy's Via (trusted) comes before the caller's: the caller is below it.
    data = data.replace(
        caller_via.encode(),
        (
            caller_via
            + "\r\nVia: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bK-c;received=198.51.100.4;rport=7000"
        ).encode(),
    )
    h.feed(data, PROXY)
    assert incoming(h).caller_address == ("198.51.100.4", 7000)


def test_allow_sources_checks_the_caller_behind_the_proxy_not_the_proxy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxline.sip")
    h = Harness(allow_sources=["203.0.113.0/24"], trusted_proxies=["192.0.2.10"])
    trunk = "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-inv-1;rport=5060"
    h.feed(proxied(invite(call_id="from-trunk"), trunk), PROXY)  # the proxy is not in allow_sources
    assert incoming(h).call_id == "from-trunk"
    stranger = "SIP/2.0/UDP 198.51.100.66:5060;branch=z9hG4bK-inv-2;rport=5060"
    data = proxied(invite(call_id="from-stranger", branch="z9hG4bK-inv-2"), "")
    h.feed(data.replace(b"SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-inv-2;rport", stranger.encode()), PROXY)
    assert [r.status for r in h.responses()] == [100, 403]  # the 403 goes to the proxy, which relays it
    assert (h.sent[-1][1].headers.get("Via") or "").startswith("SIP/2.0/UDP 192.0.2.10:5060")
    assert h.core.stats["rejected_source"] == 1
    refused = [r.getMessage() for r in caplog.records if "allow_sources" in r.getMessage()]
    assert refused == [
        "403 to INVITE from 198.51.100.66:5060 (via proxy 192.0.2.10:5060): source not in allow_sources "
        "(further refusals not logged)"
    ]
    # The proxy's own requests (its probes, an INVITE it makes itself) pass, and the probe gets why.
    h.core.stop_accepting(h.now)
    h.feed(request("OPTIONS", branch="z9hG4bK-probe").replace(b"127.0.0.1:5062", b"192.0.2.10:5060"), PROXY)
    probe = h.responses()[-1]
    assert probe.status == 503 and "not accepting" in (probe.headers.get("Warning") or "")


def test_vias_from_an_untrusted_source_are_never_believed() -> None:
    forged = "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-inv-1;received=203.0.113.9;rport=5060"
    # No trusted proxy at all: the proxy is a caller like any other.
    h = Harness(allow_sources=["203.0.113.0/24"])
    h.feed(proxied(invite(), forged), PROXY)
    assert [r.status for r in h.responses()] == [403] and h.events == []
    # A stranger that writes a proxy-looking Via on top of a trunk's: its own address counts.
    h = Harness(allow_sources=["203.0.113.0/24"], trusted_proxies=["192.0.2.10"])
    h.feed(proxied(invite(), forged), ("198.51.100.66", 5060))
    assert [r.status for r in h.responses()] == [403] and h.events == []
    h = Harness(trusted_proxies=["192.0.2.10"])
    h.feed(proxied(invite(), forged), ("198.51.100.66", 5060))
    assert incoming(h).caller_address == ("198.51.100.66", 5060)


def test_the_proxys_record_route_is_the_route_set_our_bye_takes() -> None:
    h = Harness(allow_sources=["203.0.113.0/24"], trusted_proxies=["192.0.2.10"])
    caller = "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-inv-1;rport=5060"
    h.feed(proxied(invite(), caller), PROXY)
    call_id = incoming(h).call_id
    h.core.answer(call_id, h.now, rtp_port=30000)
    h.collect()
    ok = h.responses(200)[-1]
    assert ok.headers.get_all("Record-Route") == [RECORD_ROUTE]  # echoed: the caller routes via it
    assert (ok.headers.get("Via") or "").startswith("SIP/2.0/UDP 192.0.2.10:5060")
    tag = ok.to.tag or ""
    # The ACK comes through the proxy (a Route to us consumed there, its Via on top).
    h.feed(proxied(request("ACK", cseq=1, to_tag=tag, branch="z9hG4bK-ack"), ""), PROXY)
    assert h.core.call_state(call_id) == "connected"
    h.core.hangup(call_id, h.now)
    out = h.core.data_to_send()
    assert len(out) == 1 and out[0].addr == PROXY  # to the first route hop, not the caller's Contact
    text = out[0].data.decode()
    assert text.startswith("BYE sip:alice@127.0.0.1:5062 SIP/2.0\r\n")  # the caller's Contact
    assert f"\r\nRoute: {RECORD_ROUTE}\r\n" in text


def test_trusted_proxies_are_validated_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies: 'kamailio\.local' is not an IP address"):
        SipConfig(trusted_proxies=["192.0.2.1", "kamailio.local"])
    assert SipConfig(trusted_proxies="192.0.2.1").trusted_proxies == ("192.0.2.1",)
    config = RuntimeConfig.load({"sip_trusted_proxy": "192.0.2.1, 198.51.100.0/28"}, env={})
    assert config.sip_trusted_proxy == ("192.0.2.1", "198.51.100.0/28")
    assert RuntimeConfig.load({}, env={"VOXLINE_SIP_TRUSTED_PROXY": "none"}).sip_trusted_proxy is None
    with pytest.raises(ValueError, match=r"sip_trusted_proxy must list the proxies.*not 'any'"):
        RuntimeConfig.load({"sip_trusted_proxy": "any"}, env={})
    with pytest.raises(ValueError, match=r"sip_trusted_proxy: '10\.0\.0\.0/40' is not an IP address"):
        RuntimeConfig.load({"sip_trusted_proxy": "10.0.0.0/40"}, env={})
