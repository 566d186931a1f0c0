"""Inbound access control (voxline.sip.access) and its place in the core: digest authentication of
new INVITEs (server side) and the per-source rate limit."""

from __future__ import annotations

import pytest

from voxline.sip import SipResponse, parse_message
from voxline.sip.access import DigestVerifier, RateLimiter
from voxline.sip.auth import build_authorization, parse_challenge
from voxline.sip.config import SipConfig
from voxline.sip.core import UserAgentCore
from voxline.sip.events import IncomingCall

from .messages import invite

URI = "sip:agent@127.0.0.1:5060"
SRC = ("127.0.0.1", 5062)


def answer_challenge(
    challenge: str, password: str = "pw", user: str = "alice", nc: int = 1, uri: str = URI
) -> str:
    return build_authorization(
        parse_challenge(challenge),
        method="INVITE",
        uri=uri,
        username=user,
        password=password,
        cnonce="c0ffee",
        nc=nc,
    )


def test_verifier_challenges_then_accepts_md5_and_sha256() -> None:
    v = DigestVerifier({"alice": "pw"}, "voxline")
    first = v.check("INVITE", [], 10.0)
    assert first.status == 401
    assert [parse_challenge(c).algorithm for c in first.challenges] == ["SHA-256", "MD5"]  # RFC 8760 order
    assert all(parse_challenge(c).qop == ["auth"] for c in first.challenges)
    nonces = {parse_challenge(c).nonce for c in first.challenges}
    assert len(nonces) == 1  # one nonce, offered with either algorithm
    for index in (0, 1):
        challenge = v.check("INVITE", [], 10.0).challenges[index]
        ok = v.check("INVITE", [answer_challenge(challenge)], 11.0)
        assert (ok.status, ok.username) == (0, "alice")


def test_wrong_password_and_unknown_user_are_403() -> None:
    v = DigestVerifier({"alice": "pw"})
    (challenge, _) = v.check("INVITE", [], 0.0).challenges
    assert v.check("INVITE", [answer_challenge(challenge, password="nope")], 1.0).status == 403
    assert v.check("INVITE", [answer_challenge(challenge, user="mallory")], 1.0).status == 403


def test_stale_nonce_gets_a_new_challenge_with_stale_true() -> None:
    v = DigestVerifier({"alice": "pw"}, nonce_ttl=30)
    (challenge, _) = v.check("INVITE", [], 0.0).challenges
    late = v.check("INVITE", [answer_challenge(challenge)], 31.0)
    assert late.status == 401
    assert all(parse_challenge(c).stale for c in late.challenges)
    # Wrong password on an expired nonce: 403, not a hint that the password was right.
    assert v.check("INVITE", [answer_challenge(challenge, password="x")], 31.0).status == 403
    # A nonce of another process (another key) is stale for us, never accepted.
    other = DigestVerifier({"alice": "pw"})
    (foreign, _) = other.check("INVITE", [], 0.0).challenges
    assert v.check("INVITE", [answer_challenge(foreign)], 1.0).status == 401


def test_replayed_credentials_are_refused() -> None:
    v = DigestVerifier({"alice": "pw"})
    (challenge, _) = v.check("INVITE", [], 0.0).challenges
    auth = answer_challenge(challenge)
    assert v.check("INVITE", [auth], 1.0).status == 0
    replay = v.check("INVITE", [auth], 2.0)
    assert replay.status == 403 and "replayed" in replay.reason
    assert v.check("INVITE", [answer_challenge(challenge, nc=2)], 3.0).status == 0  # nc grows: fine


def test_forgotten_nonces_are_stale_not_replayable(monkeypatch: pytest.MonkeyPatch) -> None:
    import voxline.sip.access as access

    monkeypatch.setattr(access, "_NONCE_TABLE", 2)
    v = DigestVerifier({"alice": "pw"})
    auths = []
    for i in range(3):
        (challenge, _) = v.check("INVITE", [], float(i)).challenges
        auths.append(answer_challenge(challenge))
    for i, auth in enumerate(auths):
        assert v.check("INVITE", [auth], 5.0 + i).status == 0
    # The first nonce's nc fell out of the table: a replay of it is stale (re-challenged), not let in.
    assert v.check("INVITE", [auths[0]], 9.0).status == 401


def test_other_realm_is_challenged_and_bad_headers_are_400() -> None:
    v = DigestVerifier({"alice": "pw"}, "voxline")
    (challenge, _) = v.check("INVITE", [], 0.0).challenges
    other_realm = answer_challenge(challenge).replace('realm="voxline"', 'realm="elsewhere"')
    assert v.check("INVITE", [other_realm], 1.0).status == 401
    assert v.check("INVITE", ["Basic YWxpY2U6cHc="], 1.0).status == 401  # not Digest: not ours
    good = answer_challenge(challenge)
    bad = [
        'Digest realm="voxline"',  # nothing else
        good.replace("qop=auth, ", ""),  # no qop
        good.replace("nc=00000001", "nc=zz"),
        good.replace("nc=00000001", "nc=1"),
        good.replace("algorithm=SHA-256", "algorithm=MD4"),
        (
            'Digest realm="voxline", username="alice", nonce=",,,", uri="x", response="y", '
            'qop=auth, nc=0000000g, cnonce=""'
        ),
        'Digest realm="voxline", ' + "x" * 5000,
        "Digest " + '"' * 300,
    ]
    for header in bad:
        verdict = v.check("INVITE", [header], 1.0)
        assert verdict.status in (400, 401), (header, verdict)
    assert v.check("INVITE", [bad[0]], 1.0).status == 400


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="sip_auth"):
        DigestVerifier({})
    with pytest.raises(ValueError, match="sip_auth"):
        DigestVerifier({"a:b": "pw"})
    with pytest.raises(ValueError, match="sip_rate_limit"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="sip_auth"):
        SipConfig(auth_users={"": "x"})


def test_rate_limiter_is_per_source_and_bounded() -> None:
    limiter = RateLimiter(2.0, 3, max_sources=100)
    assert [limiter.allow("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("b", 0.0)  # another source is unaffected
    assert not limiter.allow("a", 0.2)
    assert limiter.allow("a", 0.6)  # 2/s: a token again after 0.5 s
    assert limiter.retry_after() == 1
    for i in range(1000):
        limiter.allow(f"10.0.{i // 250}.{i % 250}", 1.0)
    assert len(limiter) == 100


def core(**settings: object) -> UserAgentCore:
    return UserAgentCore(SipConfig(**settings))  # type: ignore[arg-type]


def responses(c: UserAgentCore) -> list[SipResponse]:
    out = []
    for item in c.data_to_send():
        msg = parse_message(item.data)
        assert isinstance(msg, SipResponse)
        out.append(msg)
    return out


def test_core_challenges_before_any_call_exists_then_lets_the_answer_in() -> None:
    c = core(auth_users={"alice": "pw"})
    c.receive(invite(branch="z9hG4bK-a1"), SRC, 0.0)
    (resp,) = responses(c)
    assert resp.status == 401
    assert resp.to.tag  # a final response has a To tag
    challenges = resp.headers.get_all("WWW-Authenticate")
    assert len(challenges) == 2
    assert not c.events_received()  # no IncomingCall: nothing of a call (or a model) started
    assert c.stats["auth_challenges"] == 1
    auth = answer_challenge(challenges[1])  # MD5
    c.receive(invite(branch="z9hG4bK-a2", cseq=2, extra=f"Authorization: {auth}\r\n"), SRC, 0.5)
    events = c.events_received()
    assert [type(e) for e in events] == [IncomingCall]
    # The same credentials again on a new INVITE (a replay): 403, counted.
    c.receive(invite(branch="z9hG4bK-a3", call_id="other", extra=f"Authorization: {auth}\r\n"), SRC, 1.0)
    assert [r.status for r in responses(c) if r.status >= 200] == [403]
    assert c.stats["rejected_auth"] == 1
    assert not c.events_received()


def test_core_answers_an_unreadable_authorization_with_400() -> None:
    c = core(auth_users={"alice": "pw"})
    c.receive(invite(extra='Authorization: Digest realm="voxline", username=\r\n'), SRC, 0.0)
    (resp,) = responses(c)
    assert resp.status == 400
    assert not c.events_received()


def test_core_rate_limit_503_with_retry_after_per_source() -> None:
    c = core(rate_limit=1.0, rate_burst=2)
    statuses = []
    for i in range(4):
        c.receive(invite(branch=f"z9hG4bK-r{i}", call_id=f"r{i}"), SRC, 0.0)
        statuses += [r.status for r in responses(c) if r.status >= 200]
    refused = [s for s in statuses if s == 503]
    assert len(refused) == 2 and c.stats["rejected_rate"] == 2
    assert len([e for e in c.events_received() if isinstance(e, IncomingCall)]) == 2
    # A retransmission of an admitted INVITE costs no token and is not refused.
    c.receive(invite(branch="z9hG4bK-r0", call_id="r0"), SRC, 0.0)
    assert all(r.status != 503 for r in responses(c))
    c.receive(invite(branch="z9hG4bK-o", call_id="o"), ("127.0.0.3", 5062), 0.0)
    assert [type(e) for e in c.events_received()] == [IncomingCall]  # another source: in


def test_core_rate_limit_response_carries_retry_after() -> None:
    c = core(rate_limit=0.5, rate_burst=1)
    c.receive(invite(branch="z9hG4bK-1", call_id="1"), SRC, 0.0)
    c.data_to_send()
    c.receive(invite(branch="z9hG4bK-2", call_id="2"), SRC, 0.0)
    (resp,) = responses(c)
    assert resp.status == 503 and resp.headers.get("Retry-After") == "2"


def test_core_rate_limit_spares_exempt_sources() -> None:
    c = core(rate_limit=1.0, rate_burst=1, rate_exempt=("127.0.0.2",))
    for i in range(5):
        c.receive(invite(branch=f"z9hG4bK-e{i}", call_id=f"e{i}"), ("127.0.0.2", 5060), 0.0)
    assert len([e for e in c.events_received() if isinstance(e, IncomingCall)]) == 5
    assert c.stats["rejected_rate"] == 0
    with pytest.raises(ValueError, match="rate_exempt"):
        SipConfig(rate_exempt=("registrar.example",))
