"""Listener rules (DESIGN §1): order, async listeners, removal, isolation, registration errors."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, ClassVar

import pytest

from voxline.eventtarget import Event, EventTarget


class Emitter(EventTarget):
    _event_aliases: ClassVar[dict[str, str]] = {"provider.type": "Ns.Name"}

    def emit(self, name: str, data: Any = None) -> None:
        self._dispatch(Event(name=name, client=self, data=data))


def test_listeners_run_in_registration_order_with_the_event() -> None:
    e, seen = Emitter(), []
    e.add_event_listener("Ns.Name", lambda ev: seen.append(("a", ev.name, ev.data, ev.client)))
    e.add_event_listener("provider.type", lambda ev: seen.append(("b", ev.name, ev.data, ev.client)))
    e.emit("Ns.Name", {"x": 1})
    assert seen == [("a", "Ns.Name", {"x": 1}, e), ("b", "Ns.Name", {"x": 1}, e)]


async def test_async_listeners_run_and_their_errors_are_isolated(caplog: pytest.LogCaptureFixture) -> None:
    e, seen = Emitter(), []

    async def slow(ev: Event) -> None:
        await asyncio.sleep(0)
        seen.append("async")

    async def broken(ev: Event) -> None:
        raise RuntimeError("boom in async listener")

    e.add_event_listener("Ns.Name", slow)
    e.add_event_listener("Ns.Name", broken)
    e.add_event_listener("Ns.Name", lambda ev: seen.append("sync"))
    with caplog.at_level(logging.ERROR):
        e.emit("Ns.Name")
        for _ in range(5):
            await asyncio.sleep(0)
    assert seen == ["sync", "async"]
    assert "boom in async listener" in caplog.text


def test_a_raising_listener_is_logged_and_the_next_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    e, seen = Emitter(), []

    def broken(ev: Event) -> None:
        raise ValueError("listener bug")

    e.add_event_listener("Ns.Name", broken)
    e.add_event_listener("Ns.Name", lambda ev: seen.append(1))
    with caplog.at_level(logging.ERROR):
        e.emit("Ns.Name")
    assert seen == [1]
    assert "listener bug" in caplog.text


def test_remove_one_or_all() -> None:
    e, seen = Emitter(), []

    def a(ev: Event) -> None:
        seen.append("a")

    def b(ev: Event) -> None:
        seen.append("b")

    e.add_event_listener("Ns.Name", a)
    e.add_event_listener("Ns.Name", b)
    e.remove_event_listener("provider.type", a)
    e.emit("Ns.Name")
    assert seen == ["b"]
    e.add_event_listener("Ns.Name", a)
    e.remove_event_listener("Ns.Name")
    e.emit("Ns.Name")
    assert seen == ["b"]
    e.remove_event_listener("Ns.Name", a)  # removing what isn't there is harmless


@pytest.mark.parametrize("bad", [None, 42, "not a function", ["list"]])
def test_non_callable_listener_raises_type_error_at_registration(bad: Any) -> None:
    with pytest.raises(TypeError, match="must be a function"):
        Emitter().add_event_listener("Ns.Name", bad)


def test_event_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="event"):
        Emitter().add_event_listener(3, print)  # type: ignore[arg-type]


def test_listeners_run_in_the_context_they_were_registered_in() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    e, seen = Emitter(), []

    def register() -> None:
        var.set("session-1")
        e.add_event_listener("Ns.Name", lambda ev: seen.append(var.get()))

    contextvars.copy_context().run(register)
    e.emit("Ns.Name")
    assert seen == ["session-1"]
    assert var.get() == "none"


def test_a_listener_may_re_enter_its_own_event() -> None:
    e, depth = Emitter(), []

    def again(ev: Event) -> None:
        depth.append(ev.data)
        if ev.data < 3:
            e.emit("Ns.Name", ev.data + 1)

    e.add_event_listener("Ns.Name", again)
    e.emit("Ns.Name", 1)
    assert depth == [1, 2, 3]


def test_accepts_event_says_which_names_a_target_takes() -> None:
    from voxline.events import AppEvents, CallEvents

    class Calls(EventTarget):
        _event_enums = (CallEvents,)

    assert Calls().accepts_event(CallEvents.Failed) and Calls().accepts_event("Call.Failed")
    assert not Calls().accepts_event(AppEvents.Started) and not Calls().accepts_event("Call.Faild")
    assert EventTarget().accepts_event("Anything.Goes")  # a target without constants takes any name
