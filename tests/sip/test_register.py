"""The sans-I/O registration state machine (voxline.sip.register): the REGISTER it builds (§10.2),
refresh timing by its deadline, digest answers, 423, backoff, unregister."""

from __future__ import annotations

import random

import pytest

from voxline.sip import SipRequest, SipResponse
from voxline.sip.auth import digest_response, parse_digest_params
from voxline.sip.register import (
    REFRESH_MARGIN_S,
    Account,
    Registration,
    RegistrationEnded,
    RegistrationFailed,
    RegistrationState,
    RegistrationSucceeded,
    parse_account,
)
from voxline.sip.registrations import Registrations

AOR = "sip:alice@192.0.2.10:5080"


def make(expires: int = 600, password: str | None = "pw", **kw: object) -> Registration:
    account = Account(AOR, password, expires=expires)
    return Registration(account, local_host="127.0.0.1", local_port=5062, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def answer(req: SipRequest, status: int, *headers: tuple[str, str]) -> SipResponse:
    resp = SipResponse(status=status, reason="X")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        resp.headers.add(name, req.headers.get(name) or "")
    for name, value in headers:
        resp.headers.add(name, value)
    return resp


def sent(reg: Registration) -> SipRequest:
    out = reg.requests_to_send()
    assert len(out) == 1, out
    return out[0]


def test_register_request_follows_rfc3261_section_10() -> None:
    reg = make()
    reg.start(100.0)
    first = sent(reg)
    assert first.method == "REGISTER"
    assert first.uri == "sip:192.0.2.10:5080"  # the domain, no user part (§10.2)
    assert first.headers.get("To") == "<sip:alice@192.0.2.10:5080>"
    assert first.from_.uri.user == "alice" and first.from_.tag
    assert first.headers.get("Contact") == "<sip:alice@127.0.0.1:5062>"
    assert first.headers.get("Expires") == "600"
    assert first.vias[0].branch and first.vias[0].branch.startswith("z9hG4bK")
    reg.receive(answer(first, 200, ("Contact", "<sip:alice@127.0.0.1:5062>;expires=300")), 100.2)
    reg.tick(reg.next_deadline() or 0)
    second = sent(reg)
    # Same Call-ID and From tag, CSeq one up, a new branch (§10.2.4).
    assert second.call_id == first.call_id
    assert second.from_.tag == first.from_.tag
    assert second.cseq[0] == first.cseq[0] + 1
    assert second.vias[0].branch != first.vias[0].branch


def test_refresh_is_due_before_expiry_at_the_granted_interval() -> None:
    reg = make(expires=600)
    reg.start(0.0)
    req = sent(reg)
    # The registrar grants 120 s on our binding (another binding of the AOR says 3600).
    contacts = "<sip:alice@198.51.100.7:5060>;expires=3600, <sip:alice@127.0.0.1:5062>;expires=120"
    reg.receive(answer(req, 200, ("Contact", contacts), ("Expires", "999")), 1.0)
    assert reg.state is RegistrationState.REGISTERED
    assert reg.events_received() == [RegistrationSucceeded(AOR, 120, "sip:alice@127.0.0.1:5062")]
    assert reg.next_deadline() == pytest.approx(0.0 + max(60.0, 120 - REFRESH_MARGIN_S))
    reg.tick(87.9)
    assert reg.requests_to_send() == []  # not yet
    reg.tick(88.0)
    assert sent(reg).headers.get("Expires") == "600"  # asks for its own again
    # A short grant: refreshed at half of it.
    reg2 = make(expires=60)
    reg2.start(0.0)
    reg2.receive(answer(sent(reg2), 200, ("Expires", "40")), 0.5)
    assert reg2.next_deadline() == pytest.approx(20.0)


def test_digest_challenge_is_answered_once_with_sha256() -> None:
    reg = make()
    reg.start(0.0)
    first = sent(reg)
    challenge = 'Digest realm="pbx", nonce="n1", algorithm=SHA-256, qop="auth", opaque="o"'
    reg.receive(answer(first, 401, ("WWW-Authenticate", challenge)), 0.1)
    second = sent(reg)
    assert second.cseq[0] == first.cseq[0] + 1 and second.call_id == first.call_id
    params = parse_digest_params(second.headers.get("Authorization") or "")
    assert params is not None
    assert params["algorithm"] == "SHA-256" and params["opaque"] == "o" and params["uri"] == first.uri
    expected = digest_response(
        username="alice", password="pw", realm="pbx", nonce="n1", method="REGISTER", uri=first.uri,
        algorithm="SHA-256", qop="auth", nc=params["nc"], cnonce=params["cnonce"],
    )  # fmt: skip
    assert params["response"] == expected
    # Challenged again, not stale: the password is wrong.
    reg.receive(answer(second, 401, ("WWW-Authenticate", challenge.replace("n1", "n2"))), 0.2)
    assert reg.requests_to_send() == []
    events = reg.events_received()
    assert isinstance(events[0], RegistrationFailed)
    assert events[0].status == 401 and events[0].reason == "wrong credentials"
    assert reg.state is RegistrationState.FAILED


def test_stale_nonce_is_answered_again() -> None:
    reg = make()
    reg.start(0.0)
    reg.receive(answer(sent(reg), 407, ("Proxy-Authenticate", 'Digest realm="r", nonce="a"')), 0.1)
    second = sent(reg)
    assert second.headers.get("Proxy-Authorization")
    reg.receive(answer(second, 407, ("Proxy-Authenticate", 'Digest realm="r", nonce="b", stale=true')), 0.2)
    third = sent(reg)
    assert 'nonce="b"' in (third.headers.get("Proxy-Authorization") or "")
    reg.receive(answer(third, 200), 0.3)
    assert reg.state is RegistrationState.REGISTERED


def test_no_password_means_a_challenge_is_a_failure() -> None:
    reg = make(password=None)
    reg.start(0.0)
    reg.receive(answer(sent(reg), 401, ("WWW-Authenticate", 'Digest realm="r", nonce="a"')), 0.1)
    (event,) = reg.events_received()
    assert isinstance(event, RegistrationFailed) and "no password" in event.reason


def test_423_retries_at_once_with_min_expires() -> None:
    reg = make(expires=30)
    reg.start(0.0)
    reg.receive(answer(sent(reg), 423, ("Min-Expires", "120")), 0.1)
    again = sent(reg)
    assert again.headers.get("Expires") == "120"
    assert reg.expires == 120
    assert reg.events_received() == []
    reg.receive(answer(again, 200), 0.2)
    assert reg.granted == 120
    # A 423 without a usable Min-Expires is a failure, not a loop.
    reg2 = make(expires=30)
    reg2.start(0.0)
    reg2.receive(answer(sent(reg2), 423, ("Min-Expires", "10")), 0.1)
    assert reg2.state is RegistrationState.FAILED


def test_backoff_doubles_with_jitter_and_respects_retry_after() -> None:
    reg = make(retry_base_s=10.0, retry_max_s=60.0)
    reg.start(0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        reg.receive(answer(sent(reg), 403), now)
        (event,) = reg.events_received()
        assert isinstance(event, RegistrationFailed) and event.status == 403
        assert event.retry_in is not None
        delays.append(event.retry_in)
        deadline = reg.next_deadline()
        assert deadline == pytest.approx(now + event.retry_in)
        reg.tick(deadline - 0.01)
        assert reg.requests_to_send() == []
        now = deadline
        reg.tick(now)
    bases = [10, 20, 40, 60, 60]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base
    # A success resets the backoff.
    reg.receive(answer(sent(reg), 200), now)
    reg.events_received()
    reg.tick(reg.next_deadline() or 0)
    reg.receive(answer(sent(reg), 503, ("Retry-After", "50")), now + 400)
    (event,) = reg.events_received()
    assert isinstance(event, RegistrationFailed) and event.retry_in == 50  # longer than 10 s


def test_transaction_timeout_is_a_failure() -> None:
    reg = make()
    reg.start(0.0)
    req = sent(reg)
    timeout = answer(req, 408)  # what the client transaction reports at Timer F
    reg.receive(timeout, 32.0)
    (event,) = reg.events_received()
    assert isinstance(event, RegistrationFailed) and event.status == 408


def test_stale_and_foreign_responses_are_ignored() -> None:
    reg = make()
    reg.start(0.0)
    req = sent(reg)
    other = answer(req, 200)
    other.headers.set("CSeq", f"{req.cseq[0] - 1} REGISTER")
    reg.receive(other, 0.1)
    other2 = answer(req, 200)
    other2.headers.set("Call-ID", "someone-else")
    reg.receive(other2, 0.1)
    reg.receive(answer(req, 100), 0.1)
    assert reg.state is RegistrationState.REGISTERING and reg.events_received() == []


def test_unregister_sends_expires_zero_and_ends() -> None:
    reg = make()
    reg.start(0.0)
    reg.receive(answer(sent(reg), 200), 0.1)
    reg.events_received()
    assert reg.stop(5.0)
    bye = sent(reg)
    assert bye.headers.get("Expires") == "0"
    assert bye.headers.get("Contact") == "<sip:alice@127.0.0.1:5062>;expires=0"
    assert reg.next_deadline() is None  # no refresh after stop
    # The registrar challenges the unregister too: answered.
    reg.receive(answer(bye, 401, ("WWW-Authenticate", 'Digest realm="r", nonce="z"')), 5.1)
    authed = sent(reg)
    assert authed.headers.get("Expires") == "0" and authed.headers.get("Authorization")
    reg.receive(answer(authed, 200), 5.2)
    assert reg.events_received() == [RegistrationEnded(AOR, 200)]
    assert reg.state is RegistrationState.UNREGISTERED
    # Nothing registered: nothing to remove.
    idle = make()
    assert not idle.stop(0.0)
    assert idle.requests_to_send() == []


def test_account_parsing_names_the_problem() -> None:
    account = parse_account("sip:bob@pbx.example:5070;transport=tcp;expires=120", "pw")
    assert account.transport == "tcp" and account.expires == 120 and account.target == ("pbx.example", 5070)
    assert parse_account("bob@10.0.0.1").target == ("10.0.0.1", 5060)
    assert Account("sip:bob@pbx", registrar="10.0.0.2:5099").target == ("10.0.0.2", 5099)
    for bad, words in [
        ("sip:pbx.example", "user part"),
        ("sip:bob@pbx;expires=x", "expires"),
        ("sip:bob@pbx;colour=red", "unknown parameter"),
        ("sip:bob@pbx;transport=sctp", "transport"),
        ("sips:bob@pbx", "sip: URI"),
        ("sip:bob@", "not a SIP URI"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_account(bad)
    with pytest.raises(ValueError, match="expires"):
        Account("sip:bob@pbx", expires=0)


async def test_registrations_io_over_a_loopback_registrar() -> None:
    """The asyncio driver over a real endpoint, with a registrar made of a UDP socket: REGISTER,
    a 200 with a 1 s grant, the refresh, then the unregister on stop."""
    import asyncio

    from voxline.sip import parse_message
    from voxline.sip.endpoint import SipEndpoint

    loop = asyncio.get_running_loop()
    got: asyncio.Queue[tuple[SipRequest, tuple[str, int]]] = asyncio.Queue()

    class Registrar(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            req = parse_message(data)
            assert isinstance(req, SipRequest)
            got.put_nowait((req, addr))
            expires = req.headers.get("Expires") or "0"
            grant = "0" if expires == "0" else "1"
            self.transport.sendto(bytes(answer(req, 200, ("Expires", grant))), addr)  # type: ignore[attr-defined]

    transport, _ = await loop.create_datagram_endpoint(Registrar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    events: list[object] = []
    async with SipEndpoint("127.0.0.1", 0, transports=("udp",)) as ep:
        regs = Registrations(ep, [Account(f"sip:carol@127.0.0.1:{port}", expires=1)], on_event=events.append)
        await regs.start()
        first, _ = await asyncio.wait_for(got.get(), 5)
        refresh, _ = await asyncio.wait_for(got.get(), 5)  # at half the 1 s grant
        assert refresh.cseq[0] == first.cseq[0] + 1
        assert regs.states() == {f"sip:carol@127.0.0.1:{port}": "registered"}
        await regs.stop()
        while True:
            last, _ = await asyncio.wait_for(got.get(), 5)
            if last.headers.get("Expires") == "0":
                break
    transport.close()
    assert isinstance(events[-1], RegistrationEnded)
    assert sum(isinstance(e, RegistrationSucceeded) for e in events) >= 2


def test_a_grant_of_zero_is_a_failure_not_a_loop() -> None:
    reg = make()
    reg.start(0.0)
    reg.receive(answer(sent(reg), 200, ("Contact", "<sip:alice@127.0.0.1:5062>;expires=0")), 0.1)
    (event,) = reg.events_received()
    assert isinstance(event, RegistrationFailed) and "no time" in event.reason
    assert reg.requests_to_send() == [] and (reg.next_deadline() or 0) > 1.0
