"""SIP over TLS between two SipEndpoints on loopback (a self-signed certificate the caller trusts):
one connection carries the whole call both ways (RFC 3261 §18), SDES keys make the RTP SRTP, an
untrusted certificate stops the call, a plain-RTP offer to an SRTP-required listener gets 488, and a
best-effort offer to a plain callee makes a plain call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voxline.audio import Frame
from voxline.sip import CallDisconnected, SipCallLeg, SipConfig, SipEndpoint
from voxline.sip.endpoint import CallFailedError
from voxline.sip.tls import SipTls

from .tlscert import make_cert


async def _wait(predicate: object, timeout: float = 3.0) -> None:
    assert callable(predicate)
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)


async def test_tls_call_reuses_its_connection_and_runs_srtp(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    heard_by_callee: list[Frame] = []
    heard_by_caller: list[Frame] = []
    callees: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        callees.append(leg)
        leg.on_audio = heard_by_callee.append
        await leg.answer()

    async with (
        SipEndpoint(
            "127.0.0.1", 0, on_incoming_call=on_call, tls=SipTls(port=0, cert=str(cert), key=str(key))
        ) as uas,
        SipEndpoint("127.0.0.1", 0, tls=SipTls(port=None, ca_file=str(cert))) as uac,
    ):
        assert uas.tls_port is not None and uas.tls_port != uas.port
        caller = await uac.call(f"sips:agent@127.0.0.1:{uas.tls_port}")
        caller.on_audio = heard_by_caller.append
        await asyncio.wait_for(caller.wait_connected(), 5)
        callee = callees[0]
        assert (callee.headers.get("Via") or "").startswith("SIP/2.0/TLS ")
        assert (callee.headers.get("Contact") or "").startswith("<sips:")  # §8.1.1.8: a sips: request
        assert caller.srtp == callee.srtp == "AES_CM_128_HMAC_SHA1_80"  # the default on TLS: offer
        caller.send_audio(b"\x31" * 160 * 3)
        callee.send_audio(b"\x42" * 160 * 3)
        await _wait(lambda: len(heard_by_callee) >= 3 and len(heard_by_caller) >= 3)
        assert b"\x31" * 480 in b"".join(f.data for f in heard_by_callee)
        assert b"\x42" * 480 in b"".join(f.data for f in heard_by_caller)
        assert caller.rtp is not None and caller.rtp.srtp is not None
        assert caller.rtp.srtp.stats["protected"] > 0 and caller.rtp.srtp.stats["unprotected"] > 0
        assert caller.rtp.srtp.stats["auth_failed"] == 0
        callee.hangup()  # the BYE goes back on the caller's connection: the caller has no listener
        ended = await asyncio.wait_for(caller.wait_ended(), 3)
        assert isinstance(ended, CallDisconnected) and ended.by == "remote"
        assert uas.stats["tls_accepted"] == 1 and uac.stats["tls_connected"] == 1


async def test_an_untrusted_certificate_stops_the_call_before_any_invite(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    other, _ = make_cert(tmp_path, "other")
    calls: list[SipCallLeg] = []
    async with (
        SipEndpoint(
            "127.0.0.1", 0, on_incoming_call=calls.append, tls=SipTls(port=0, cert=str(cert), key=str(key))
        ) as uas,
        SipEndpoint("127.0.0.1", 0, tls=SipTls(port=None, ca_file=str(other))) as uac,
    ):
        assert uas.tls_port is not None
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.tls_port};transport=tls")
        await _wait(lambda: uac.stats["tls_connect_failed"] == 1)
        assert uac.stats["tls_connect_failed"] == 1 and uac.stats["tls_connected"] == 0
        assert not calls
        caller.hangup()


async def test_plain_rtp_offer_to_srtp_required_listener_gets_488(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    calls: list[SipCallLeg] = []
    listener = SipTls(port=0, cert=str(cert), key=str(key))
    required, plain = SipConfig(srtp="require"), SipConfig(srtp="off")
    async with (
        SipEndpoint("127.0.0.1", 0, config=required, on_incoming_call=calls.append, tls=listener) as uas,
        SipEndpoint("127.0.0.1", 0, config=plain, tls=SipTls(port=None, ca_file=str(cert))) as uac,
    ):
        caller = await uac.call(f"sips:agent@127.0.0.1:{uas.tls_port}")
        with pytest.raises(CallFailedError) as failed:
            await asyncio.wait_for(caller.wait_connected(), 5)
        assert failed.value.status == 488 and not calls


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a certificate and its key"):
        SipTls(port=5061)
    with pytest.raises(ValueError, match=r"cert: '/nonexistent\.pem' is not a readable file"):
        SipTls(cert="/nonexistent.pem", key="/nonexistent.key")
    with pytest.raises(ValueError, match="srtp must be off, offer or require"):
        SipConfig(srtp="sometimes")  # type: ignore[arg-type]
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"bad\.pem"):
        SipTls(cert=str(bad), key=str(bad)).server_context()


async def test_a_best_effort_offer_to_a_plain_callee_is_a_plain_call(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    callees: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        callees.append(leg)
        await leg.answer()

    listener = SipTls(port=0, cert=str(cert), key=str(key))
    async with (
        SipEndpoint("127.0.0.1", 0, srtp="off", on_incoming_call=on_call, tls=listener) as uas,
        SipEndpoint("127.0.0.1", 0, tls=SipTls(port=None, ca_file=str(cert))) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.tls_port};transport=tls")  # srtp: offer
        await asyncio.wait_for(caller.wait_connected(), 5)
        assert "a=crypto:" in (callees[0].remote_sdp.to_bytes().decode() if callees[0].remote_sdp else "")
        assert caller.srtp is None and callees[0].srtp is None
        assert caller.rtp is not None and caller.rtp.srtp is None
        caller.hangup()
