"""OPTIONS as a balancer's health probe, on a virtual clock: 200 while a new call would be taken,
503 with Retry-After (and the reason, for allowed sources) when it would not, and back."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from voxline.sip import IncomingCall, SipConfig, SipResponse, UserAgentCore

from .messages import invite, request
from .test_core import PEER, Harness

STRANGER = ("198.51.100.9", 5060)


def harness(readiness: Callable[[], str | None] | None = None, **config: object) -> Harness:
    h = Harness()
    h.core = UserAgentCore(SipConfig(**config), readiness=readiness)  # type: ignore[arg-type]
    return h


def probe(h: Harness, branch: str, addr: tuple[str, int] = PEER) -> SipResponse:
    h.feed(request("OPTIONS", cseq=1, branch=branch, call_id=f"{branch}@probe"), addr)
    return h.responses()[-1]


def test_options_is_503_at_max_calls_and_200_again_when_the_call_ends() -> None:
    h = harness(max_calls=1)
    assert probe(h, "z9hG4bK-p1").status == 200
    h.feed(invite())
    incoming = h.events[-1]
    assert isinstance(incoming, IncomingCall)
    full = probe(h, "z9hG4bK-p2")
    assert (full.status, full.headers.get("Retry-After")) == (503, "5")
    assert full.headers.get("Warning") == '399 voxline "at max_calls (1)"'
    assert h.core.unready_reason() == "at max_calls (1)"
    h.core.reject(incoming.call_id, h.now, 486)
    h.collect()
    ok = probe(h, "z9hG4bK-p3")
    assert ok.status == 200 and ok.headers.get("Retry-After") is None and ok.headers.get("Warning") is None
    assert h.core.unready_reason() is None


def test_the_readiness_hook_is_asked_on_every_probe() -> None:
    state: list[str | None] = [None]
    h = harness(lambda: state[0])
    assert probe(h, "z9hG4bK-a").status == 200
    state[0] = 'model connects failing (3 in a row: HTTP 401: bad "key")'
    unready = probe(h, "z9hG4bK-b")
    assert (unready.status, unready.headers.get("Retry-After")) == (503, "5")
    # A quoted-string: its quotes escaped (RFC 3261 §25.1).
    assert unready.headers.get("Warning") == (
        '399 voxline "model connects failing (3 in a row: HTTP 401: bad \\"key\\")"'
    )
    assert unready.to.tag is not None  # a final response outside a dialog carries a To tag
    state[0] = None
    assert probe(h, "z9hG4bK-c").status == 200
    # An INVITE is not refused for it: readiness is advice, the limits are the core's own.
    state[0] = "model connects failing"
    h.feed(invite())
    assert isinstance(h.events[-1], IncomingCall)


def test_a_failing_hook_answers_200_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> str | None:
        raise RuntimeError("hook bug")

    h = harness(broken)
    with caplog.at_level(logging.ERROR, logger="voxline.sip"):
        assert probe(h, "z9hG4bK-x").status == 200
    assert any("readiness hook raised" in r.getMessage() for r in caplog.records)


def test_strangers_get_the_status_without_the_reason() -> None:
    h = harness(
        lambda: "model connects failing (3 in a row: cannot connect to wss://x)",
        allow_sources=["127.0.0.0/8"],
    )
    # Answered to anyone (it opens nothing), but what went wrong upstream is for the trunk only.
    stranger = probe(h, "z9hG4bK-s", STRANGER)
    assert (stranger.status, stranger.headers.get("Retry-After")) == (503, "5")
    assert stranger.headers.get("Warning") is None
    trunk = probe(h, "z9hG4bK-t")
    assert trunk.status == 503 and "cannot connect" in (trunk.headers.get("Warning") or "")
    assert h.core.stats["rejected_source"] == 0


def test_options_inside_a_call_stays_200_while_not_ready() -> None:
    h = harness(lambda: "draining")
    call_id, tag = h.answered()
    h.feed(request("OPTIONS", cseq=5, branch="z9hG4bK-in", call_id=call_id, to_tag=tag))
    assert h.responses()[-1].status == 200
    assert probe(h, "z9hG4bK-out").status == 503
