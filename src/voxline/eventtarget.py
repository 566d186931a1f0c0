"""Listener registry shared by every voxline object that emits events (DESIGN §1).

A listener gets one event object. Sync and async callables both work; anything else raises
``TypeError`` at registration. A listener that raises is logged with its traceback and never
reaches the emitter, the call, or another call.
"""

from __future__ import annotations

import contextvars
import difflib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ._tasks import background

log = logging.getLogger("voxline.events")

Listener = Callable[[Any], Any]
# A listener runs in the context it was registered in, so a scenario's listener sees its own call
# session (``VoxEngine``) whichever I/O task delivers the event.
_Registration = tuple[Listener, contextvars.Context]


@dataclass(slots=True)
class Event:
    """What a listener receives. ``data`` is the provider's JSON exactly as received."""

    name: str
    client: Any = None
    data: Any = None
    tag: str | None = None
    encoding: str | None = None
    custom_parameters: dict[str, str] | None = None
    media_info: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        # Events of units (calls, the app) carry their own fields: event.call, event.callerid, ...
        try:
            return self.extra[item]
        except KeyError:
            raise AttributeError(item) from None


class EventTarget:
    """``add_event_listener`` / ``remove_event_listener`` with VoxEngine's rules.

    ``_event_aliases`` maps other accepted names (value strings of constants are the constants
    themselves; provider types such as ``"response.done"``) to the canonical event name.
    """

    _event_aliases: Mapping[str, str] = {}
    # The constants this target emits. When set, a string that names none of them (by value, by
    # member name or by alias) raises at registration: a typo would otherwise never fire.
    _event_enums: tuple[type[StrEnum], ...] = ()

    def __init__(self) -> None:
        self._listeners: dict[str, list[_Registration]] = {}

    def _canonical(self, event: str | StrEnum, param: str = "event") -> str:
        if not isinstance(event, str):
            raise TypeError(f"{param} must be an event constant or a string, not {type(event).__name__}")
        name = str(event)
        name = self._event_aliases.get(name, name)
        if self._event_enums and name not in _known_names(type(self)):
            raise ValueError(
                unknown_event_message(event, type(self).__name__, self._event_enums, self._event_aliases)
            )
        return name

    def accepts_event(self, event: str | StrEnum) -> bool:
        """Whether ``add_event_listener(event, ...)`` takes this name (code that serves several kinds
        of target asks before registering)."""
        try:
            self._canonical(event)
        except (TypeError, ValueError):
            return False
        return True

    def add_event_listener(self, event: str | StrEnum, callback: Listener) -> None:
        if not callable(callback):
            raise TypeError(f"callback for {event!s} must be a function, not {type(callback).__name__}")
        self._listeners.setdefault(self._canonical(event), []).append((callback, contextvars.copy_context()))

    def remove_event_listener(self, event: str | StrEnum, callback: Listener | None = None) -> None:
        name = self._canonical(event)
        if callback is None:
            self._listeners.pop(name, None)
            return
        listeners = self._listeners.get(name)
        if listeners:
            for registration in listeners:
                if registration[0] == callback:
                    listeners.remove(registration)
                    break

    def has_listeners(self, name: str) -> bool:
        return bool(self._listeners.get(name))

    def _dispatch(self, event: Event) -> None:
        for callback, context in tuple(self._listeners.get(event.name, ())):
            try:
                # A fresh copy: the same registration may be re-entered (a listener that triggers itself).
                context = context.copy()
                result = context.run(callback, event)
            except Exception as exc:
                self._listener_failed(event.name, exc)
                continue
            if inspect.isawaitable(result):
                self._spawn(result, event.name, context)

    def _listener_failed(self, name: str, exc: BaseException) -> None:
        """A listener raised: log it with its traceback; the emitter goes on."""
        log.error("listener for %s raised", name, exc_info=exc)

    def _spawn(self, awaitable: Awaitable[Any], name: str, context: contextvars.Context) -> None:
        background(
            awaitable,
            name=f"listener:{name}",
            context=context,
            on_error=lambda exc: self._listener_failed(name, exc),
        )

    def _release_listeners(self) -> None:
        self._listeners.clear()


_KNOWN: dict[type[EventTarget], frozenset[str]] = {}


def _known_names(cls: type[EventTarget]) -> frozenset[str]:
    known = _KNOWN.get(cls)
    if known is None:
        known = _KNOWN[cls] = frozenset(str(m) for enum in cls._event_enums for m in enum)
    return known


def unknown_event_message(
    event: str, target: str, enums: tuple[type[StrEnum], ...], aliases: Mapping[str, str] = {}
) -> str:
    """``unknown event 'X' for Target: did you mean Enum.Member ('value')?``: the closest constant by
    its value, its member name or a provider alias (``difflib``)."""
    by_value = {str(m): f"{enum.__name__}.{m.name}" for enum in enums for m in enum}
    candidates: dict[str, str] = {}
    for enum in enums:
        for member in enum:
            constant = f"{enum.__name__}.{member.name}"
            candidates[str(member)] = candidates[member.name] = candidates[constant] = constant
    for alias, value in aliases.items():
        if value in by_value:
            candidates.setdefault(alias, by_value[value])
    close = difflib.get_close_matches(event, list(candidates), n=1, cutoff=0.0)
    hint = ""
    if close:
        constant = candidates[close[0]]
        value = next(v for v, c in by_value.items() if c == constant)
        hint = f": did you mean {constant} ({value!r})?"
    return f"unknown event {event!r} for {target}{hint}"
