"""The readiness object on its own, on a virtual clock: draining, the call limit, failed model
connects in a row (and the try after the back-off), and what /readyz says about each."""

from __future__ import annotations

import pytest

from voxline.runtime.readiness import RETRY_AFTER_S, Readiness


class Node:
    def __init__(self, **settings: object) -> None:
        self.calls = 0
        self.now = 100.0
        self.readiness = Readiness(
            max_calls=settings.pop("max_calls", 2),  # type: ignore[arg-type]
            active_calls=lambda: self.calls,
            clock=lambda: self.now,
            **settings,  # type: ignore[arg-type]
        )


def test_ready_by_default_with_a_body_that_says_so() -> None:
    r = Node().readiness
    assert r.ready and r.reason() is None and r.reasons() == []
    assert r.status() == {
        "status": "ready",
        "ready": True,
        "reason": None,
        "reasons": [],
        "draining": False,
        "calls": 0,
        "max_calls": 2,
        "model_connect_failures": 0,
    }


def test_draining_is_for_good() -> None:
    node = Node()
    node.readiness.start_draining()
    node.readiness.model_connect(None)
    node.now += 3600
    assert node.readiness.reason() == "draining" and node.readiness.draining
    assert node.readiness.retry_after() == RETRY_AFTER_S


def test_at_max_calls_until_a_call_ends() -> None:
    node = Node(max_calls=2)
    node.calls = 1
    assert node.readiness.ready
    node.calls = 2
    assert node.readiness.reason() == "at max_calls (2)"
    assert node.readiness.status()["calls"] == 2
    node.calls = 1
    assert node.readiness.ready


def test_three_failed_connects_in_a_row_and_one_success_flips_back() -> None:
    node = Node()
    r = node.readiness
    r.model_connect("cannot connect to wss://a: refused")
    r.model_connect(None)  # a success resets the count
    r.model_connect("one")
    r.model_connect("two")
    assert r.ready and r.consecutive_failures == 2
    r.model_connect("HTTP 401: Incorrect API key provided: sk-abcdefghijkl1234")
    assert not r.ready
    assert r.reason() == "model connects failing (3 in a row: HTTP 401: Incorrect API key provided: sk-***)"
    assert r.status()["model_connect_failures"] == 3
    r.model_connect(None)
    assert r.ready and r.consecutive_failures == 0


def test_the_limit_is_configurable_and_zero_turns_it_off() -> None:
    one = Node(model_failures=1).readiness
    one.model_connect("refused")
    assert one.reason() == "model connects failing (1 in a row: refused)"
    off = Node(model_failures=0).readiness
    for _ in range(10):
        off.model_connect("refused")
    assert off.ready and off.consecutive_failures == 10


def test_after_the_back_off_the_node_is_ready_for_a_try_and_a_failure_takes_it_out_again() -> None:
    node = Node(model_failures=3, model_retry_s=30.0)
    r = node.readiness
    for _ in range(3):
        r.model_connect("refused")
    node.now += 10
    assert not r.ready and r.retry_after() == 20  # the back-off left, when it alone keeps us out
    node.now += 20
    assert r.ready  # no calls means no connects: without this the node would stay out for ever
    r.model_connect("still refused")
    assert r.reason() == "model connects failing (4 in a row: still refused)"
    node.now += 29.5
    assert not r.ready and r.retry_after() == 1
    node.now += 0.5
    r.model_connect(None)
    assert r.ready and r.retry_after() == RETRY_AFTER_S


def test_every_reason_is_listed_and_the_most_lasting_comes_first() -> None:
    node = Node(max_calls=1, model_failures=1)
    node.calls = 1
    node.readiness.model_connect("refused\r\n  twice")
    node.readiness.start_draining()
    assert node.readiness.reasons() == [
        "draining",
        "at max_calls (1)",
        "model connects failing (1 in a row: refused twice)",  # one line
    ]
    assert node.readiness.retry_after() == RETRY_AFTER_S


def test_a_long_error_is_cut() -> None:
    r = Node(model_failures=1).readiness
    r.model_connect("x" * 5000)
    reason = r.reason()
    assert reason is not None and len(reason) < 300 and reason.endswith("...)")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_calls": 0}, "max_calls must be an integer >= 1"),
        ({"model_failures": -1}, "model_failures must be an integer >= 0"),
        ({"model_failures": True}, "model_failures must be an integer >= 0"),
        ({"model_retry_s": 0.0}, "model_retry_s must be a finite number of seconds > 0"),
        ({"model_retry_s": float("nan")}, "model_retry_s must be a finite number of seconds > 0"),
    ],
)
def test_bad_settings_name_the_parameter(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Node(**settings)
