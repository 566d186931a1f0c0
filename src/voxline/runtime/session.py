"""One call session: one execution of the scenario file with fresh globals (like VoxEngine).

The session owns what the scenario creates (calls, OpenAI clients, players, recorders) and ends them
all on ``terminate()``. An error in the scenario's code ends its own session cleanly (calls hung up,
clients closed, traceback logged) and nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, Protocol

from dotenv.parser import parse_stream

from .._tasks import background
from ..context import Closable, current_session
from ..errors import EndedError
from ..events import AppEvents
from ..eventtarget import Event, EventTarget
from ..logs import bind_log_ids, log_ids
from .call import Call

if TYPE_CHECKING:
    from ..sip.endpoint import SipEndpoint
    from .readiness import Readiness

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

    def check(self, secrets: Secrets | None = None) -> None:
        """Run the top level once in a throwaway session (its listeners and resources are dropped,
        no event is delivered): an ImportError or a NameError there raises ``ScenarioError`` with
        the file and line, at start-up rather than at the first call. The top level of a scenario
        should only import and register listeners, as in VoxEngine."""
        # Its own id, so the first call's session is session-1.
        session = Session(self, secrets, session_id="session-check")
        token = current_session.set(session)
        try:
            self.execute()
        except Exception as exc:
            raise ScenarioError(self._describe(exc)) from None
        finally:
            current_session.reset(token)
            session.discard()

    def _describe(self, exc: BaseException) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if f.filename == str(self.path)]
        where = ours[-1] if ours else (frames[-1] if frames else None)
        line = f"{where.filename}:{where.lineno}" if where is not None else str(self.path)
        return f"{line}: {type(exc).__name__}: {exc}"


class Secrets:
    """``VoxEngine.get_secret_value``: the environment, then an optional secrets file in dotenv
    syntax (``NAME=value``, ``export NAME=value``, single or double quotes, ``#`` comments; values
    are taken literally, ``${VAR}`` is not expanded)."""

    def __init__(
        self, file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self._env = os.environ if env is None else env
        self._file: dict[str, str] = {}
        if file is not None:
            self._file = self._parse(Path(file))

    @staticmethod
    def _parse(path: Path) -> dict[str, str]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ScenarioError(f"cannot read secrets file {path}: {reason}") from None
        values: dict[str, str] = {}
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                raise ScenarioError(f"{path}:{binding.original.line}: expected NAME=value")
            if binding.key is None:
                continue  # a comment or a blank line
            if binding.value is None:
                raise ScenarioError(
                    f"{path}:{binding.original.line}: {binding.key} has no value (NAME=value)"
                )
            values[binding.key] = binding.value
        return values

    def get(self, name: str) -> str | None:
        return self._env.get(name) or self._file.get(name)

    def values(self) -> tuple[str, ...]:
        """What must never be logged: the secrets file's values and ``OPENAI_API_KEY``."""
        key = self.get("OPENAI_API_KEY")
        return (*self._file.values(), *((key,) if key else ()))


class SessionServices(Protocol):
    """What the runtime offers its sessions (:class:`voxline.runtime.server.Runtime` does)."""

    # The SIP endpoint for ``VoxEngine.call_sip``, if the runtime listens for SIP.
    sip: SipEndpoint | None
    # Where Realtime clients connect when the scenario gives no base URL (the embedded backend).
    realtime_base_url: str | None
    # Trace every Realtime client (the scenario's own ``trace`` still wins).
    trace: bool
    # Called with (session, resource) for everything a session adopts.
    observers: list[Callable[[Session, Any], None]]
    # Whether the node takes calls; counts the Realtime connects that fail in a row.
    readiness: Readiness


class Session(EventTarget):
    """``VoxEngine`` for one call session; the :class:`voxline.context.SessionContext` of the code it
    runs."""

    _event_enums = (AppEvents,)

    def __init__(
        self,
        scenario: Scenario,
        secrets: Secrets | None = None,
        *,
        services: SessionServices | None = None,
        on_terminated: Callable[[Session], None] | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__()
        self.id = session_id or f"session-{next(_session_ids)}"
        self.scenario = scenario
        self.secrets = secrets or Secrets()
        # What the runtime offers the scenario (SIP endpoint for call_sip, backend choice, ...).
        self.services = services
        self._on_terminated = on_terminated
        self._resources: list[Closable] = []
        self._terminating = False
        self.terminated = asyncio.Event()
        self.globals: dict[str, Any] = {}
        #: The id of the session's first call (the inbound call, or the first one it dials): the
        #: ``call_id`` of the records its code emits.
        self.call_id: str | None = None

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.scenario.path.name}>"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> bool:
        """Execute the scenario in this session's context, then deliver ``AppEvents.Started``.

        Returns False (and terminates) when the scenario's top level raised.
        """
        # Listeners registered now run in a copy of this context: their records carry the ids.
        with log_ids(session_id=self.id, call_id=self.call_id):
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
        if isinstance(resource, Call):
            resource.session_id = self.id
            if self.call_id is None:
                self.call_id = resource.id()
                if current_session.get() is self:
                    # A call the scenario dials: what its code does next (listeners it registers,
                    # tasks it starts) is about this call.
                    bind_log_ids(call_id=self.call_id)
        if self._terminating:
            _close_quietly(resource)
            return
        self._resources.append(resource)
        for observer in self.services.observers if self.services is not None else ():
            try:
                observer(self, resource)
            except Exception:
                log.exception("%s: observer %r failed on %r", self.id, observer, resource)

    @property
    def realtime_base_url(self) -> str | None:
        return self.services.realtime_base_url if self.services is not None else None

    @property
    def trace(self) -> bool:
        return self.services.trace if self.services is not None else False

    def model_connect(self, error: str | None) -> None:
        if self.services is not None:
            self.services.readiness.model_connect(error)

    @property
    def resources(self) -> tuple[Closable, ...]:
        """What the session owns: its calls, OpenAI clients, players, recorders (in creation order)."""
        return tuple(self._resources)

    def terminate(self) -> None:
        """``VoxEngine.terminate()``: end the session. Idempotent."""
        if self._terminating:
            return
        self._terminating = True
        with log_ids(session_id=self.id, call_id=self.call_id):
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
        with log_ids(session_id=self.id, call_id=self.call_id):
            if isinstance(exc, EndedError):
                # The handler met something that has ended (its caller hung up, its session ended
                # meanwhile): a normal early hang-up, not a bug worth a traceback.
                level = logging.DEBUG if self._terminating else logging.INFO
                log.log(level, "%s: handler for %s stopped: %s", self.id, name, exc)
            else:
                log.error(
                    "%s: scenario handler for %s raised; terminating the session",
                    self.id,
                    name,
                    exc_info=exc,
                )
        self.terminate()

    def discard(self) -> None:
        """Drop the session without delivering any event: close what it adopted, forget listeners."""
        self._terminating = True
        for resource in reversed(self._resources):
            _close_quietly(resource)
        self._resources.clear()
        self._release_listeners()

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
