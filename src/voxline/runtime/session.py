"""One call session: one execution of the scenario file with fresh globals (like VoxEngine).

The session owns what the scenario creates (calls, OpenAI clients, players, recorders) and ends them
all on ``terminate()``. An error in the scenario's code ends its own session cleanly (calls hung up,
clients closed, traceback logged) and nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import CodeType
from typing import Any

from .._tasks import background
from ..eventtarget import Event, EventTarget
from .context import Closable, current_session
from .events import AppEvents

log = logging.getLogger("voxline.session")

_session_ids = itertools.count(1)


class ScenarioError(Exception):
    """The scenario file cannot be loaded (missing, unreadable, syntax error)."""


class Scenario:
    """A scenario file compiled once; executed once per session with fresh globals."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            source = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {self.path}: {exc.strerror or exc}") from None
        try:
            self.code: CodeType = compile(source, str(self.path), "exec")
        except SyntaxError as exc:
            raise ScenarioError(f"{self.path}:{exc.lineno}: syntax error: {exc.msg}") from None

    def execute(self) -> dict[str, Any]:
        scope: dict[str, Any] = {"__name__": "__voxline_scenario__", "__file__": str(self.path)}
        exec(self.code, scope)
        return scope


class Secrets:
    """``VoxEngine.get_secret_value``: the environment, then an optional file of ``NAME=value`` lines."""

    def __init__(
        self, file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self._env = os.environ if env is None else env
        self._file: dict[str, str] = {}
        if file is not None:
            self._file = self._parse(Path(file))

    @staticmethod
    def _parse(path: Path) -> dict[str, str]:
        values: dict[str, str] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ScenarioError(f"cannot read secrets file {path}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ScenarioError(f"{path}:{number}: expected NAME=value")
            values[name.strip()] = value.strip().strip("'\"")
        return values

    def get(self, name: str) -> str | None:
        return self._env.get(name) or self._file.get(name)


class Session(EventTarget):
    """``VoxEngine`` for one call session."""

    def __init__(
        self,
        scenario: Scenario,
        secrets: Secrets | None = None,
        *,
        services: Any = None,
        on_terminated: Callable[[Session], None] | None = None,
    ) -> None:
        super().__init__()
        self.id = f"session-{next(_session_ids)}"
        self.scenario = scenario
        self.secrets = secrets or Secrets()
        # What the runtime offers the scenario (SIP endpoint for call_sip, backend choice, ...).
        self.services = services
        self._on_terminated = on_terminated
        self._resources: list[Closable] = []
        self._terminating = False
        self.terminated = asyncio.Event()
        self.globals: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.scenario.path.name}>"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> bool:
        """Execute the scenario in this session's context, then deliver ``AppEvents.Started``.

        Returns False (and terminates) when the scenario's top level raised.
        """
        token = current_session.set(self)
        try:
            self.globals = self.scenario.execute()
        except Exception as exc:
            log.error("%s: scenario %s failed while loading", self.id, self.scenario.path, exc_info=exc)
            self.terminate()
            return False
        finally:
            current_session.reset(token)
        self.emit(AppEvents.Started)
        return not self._terminating

    def emit(self, name: AppEvents, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra=fields))

    def adopt(self, resource: Closable) -> None:
        if self._terminating:
            _close_quietly(resource)
            return
        self._resources.append(resource)
        for observer in getattr(self.services, "observers", ()):
            try:
                observer(self, resource)
            except Exception:
                log.exception("%s: observer %r failed on %r", self.id, observer, resource)

    @property
    def resources(self) -> tuple[Closable, ...]:
        """What the session owns: its calls, OpenAI clients, players, recorders (in creation order)."""
        return tuple(self._resources)

    def terminate(self) -> None:
        """``VoxEngine.terminate()``: end the session. Idempotent."""
        if self._terminating:
            return
        self._terminating = True
        self.emit(AppEvents.Terminating)
        for resource in reversed(self._resources):
            _close_quietly(resource)
        self._resources.clear()
        self.emit(AppEvents.Terminated)
        self._release_listeners()
        self.terminated.set()
        if self._on_terminated is not None:
            self._on_terminated(self)

    @property
    def terminating(self) -> bool:
        return self._terminating

    def _listener_failed(self, name: str, exc: BaseException) -> None:
        # An unhandled error in the scenario's own handler ends its session (VoxEngine semantics).
        log.error("%s: scenario handler for %s raised; terminating the session", self.id, name, exc_info=exc)
        self.terminate()

    def get_secret_value(self, name: str) -> str:
        value = self.secrets.get(name)
        if value is None:
            raise KeyError(f"secret {name!r} is not set: export it or put it in the secrets file")
        return value


def _close_quietly(resource: Closable) -> None:
    """Hang up / close one resource; a failure is logged and never stops the others."""
    try:
        result = resource.close()
        if inspect.isawaitable(result):
            background(result, name=f"close:{resource!r}")
    except Exception:
        log.exception("closing %r failed", resource)
