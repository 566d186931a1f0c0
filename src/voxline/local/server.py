"""The embedded offline Realtime backend: OpenAI's Realtime GA wire protocol on a loopback WebSocket.

Scenarios keep their unchanged client: ``OpenAI.create_realtime_api_client(...)`` connects here when
the runtime chooses the embedded backend (no ``OPENAI_API_KEY``). Protocol behaviour (events, turn
detection, interruption, truncation, function calls, errors) is
:class:`voxline.realtime_server.RealtimeServer` (the server ``voxline.testing.FakeRealtimeServer`` also
runs); the speech parts are :mod:`voxline.local.engine` (webrtcvad, pocketsphinx, the responder,
espeak-ng).

It needs the ``voxline[local]`` extra (pocketsphinx, webrtcvad-wheels, PyYAML for rules files,
jsonschema) and the espeak-ng program. Without one of those Python packages, starting the backend
raises :class:`LocalBackendUnavailableError`, one line naming the missing modules and the extra;
this module itself imports without them.

.. code-block:: python

    async with await start_local_backend(rules="agent_rules.yaml") as backend:
        client = await OpenAI.create_realtime_api_client(api_key=LOCAL_API_KEY, base_url=backend.base_url)

:func:`use_local_backend` wires it into ``voxline run --backend local`` and ``voxline demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from voxline.realtime_server.server import RealtimeServer
from voxline.runtime.session import Secrets

from .responder import Responder, load_responder

if TYPE_CHECKING:
    from voxline.runtime.server import Runtime

    from .engine import LocalEngine, WebrtcSpeechDetector

__all__ = [
    "LOCAL_API_KEY",
    "LOCAL_EXTRA_MODULES",
    "LocalBackendUnavailableError",
    "LocalRealtimeBackend",
    "configure_runtime",
    "default_rules_path",
    "missing_local_modules",
    "setup_error_message",
    "start_local_backend",
    "use_local_backend",
]

log = logging.getLogger("voxline.local")

# What scenarios get from VoxEngine.get_secret_value("OPENAI_API_KEY") when the embedded backend runs.
LOCAL_API_KEY = "sk-voxline-local"

LOCAL_INSTRUCTIONS = "Offline voxline agent: replies come from the rules file, not from a language model."


# The Python modules of the 'voxline[local]' extra, each with the distribution that installs it.
LOCAL_EXTRA_MODULES: dict[str, str] = {
    "pocketsphinx": "pocketsphinx",
    "webrtcvad": "webrtcvad-wheels",
    "yaml": "PyYAML",
    "jsonschema": "jsonschema",
}
# What the backend needs whatever the responder; PyYAML only for a rules file.
_BACKEND_MODULES = ("pocketsphinx", "webrtcvad", "jsonschema")


class LocalBackendUnavailableError(ImportError, RuntimeError):
    """A Python package of the ``voxline[local]`` extra is missing: the embedded backend cannot start.

    ``missing``: the module names (``pocketsphinx``, ``webrtcvad``, ``yaml``, ``jsonschema``). An
    ImportError, and a RuntimeError like the backend's other setup failures.
    """

    def __init__(self, missing: Iterable[str]) -> None:
        order = list(LOCAL_EXTRA_MODULES)
        self.missing = tuple(sorted(missing, key=lambda m: order.index(m) if m in order else len(order)))
        shown = ", ".join(_module_and_package(module) for module in self.missing)
        super().__init__(
            "the embedded offline backend needs the 'voxline[local]' extra; "
            f"missing Python modules: {shown}. Install it with: pip install 'voxline[local]'",
            name=self.missing[0] if self.missing else None,
        )


def _module_and_package(module: str) -> str:
    package = LOCAL_EXTRA_MODULES.get(module, module)
    return module if package == module else f"{module} (package {package})"


def missing_local_modules(modules: Iterable[str] = LOCAL_EXTRA_MODULES) -> list[str]:
    """Which of ``modules`` (default: the whole ``voxline[local]`` extra) cannot be imported."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def _require(modules: Iterable[str]) -> None:
    missing = missing_local_modules(modules)
    if missing:
        raise LocalBackendUnavailableError(missing)


def _is_rules_file(rules: object) -> bool:
    return isinstance(rules, str | os.PathLike) and Path(os.fspath(rules)).suffix.lower() in (".yaml", ".yml")


def default_rules_path() -> Path:
    """The rules of Voxy, the example agent (``examples/agent_rules.yaml``, shipped as package data)."""
    return Path(str(resources.files("voxline.local").joinpath("data", "agent_rules.yaml")))


class LocalRealtimeBackend:
    """The offline backend: a Realtime server on 127.0.0.1 with a local speech engine.

    ``responder``: the agent's brain (a :class:`~voxline.local.responder.RulesResponder`, a
    :class:`~voxline.local.responder.ModuleResponder` or anything with ``vocabulary`` and
    ``async respond(conversation)``). ``pace``: how fast response audio streams relative to real
    time (OpenAI also streams faster than it plays; a response still streaming is what a caller's
    barge-in cancels). ``vad_aggressiveness``: webrtcvad's mode 0..3. ``recognition``: decode in
    worker ``"thread"``s or ``"process"``es (see :class:`~voxline.local.engine.LocalEngine`).
    ``keep_history``: keep every event and all input audio for inspection (``backend.server.received``,
    ``sent``, ``sessions``), as tests want; a long-running runtime passes False and these records are
    dropped every few seconds.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        voice: str = "en-us",
        rate_wpm: int = 180,
        pace: float | None = 2.0,
        vad_aggressiveness: int = 2,
        recognizers: int = 2,
        recognition: Literal["thread", "process"] = "thread",
        keep_history: bool = True,
    ) -> None:
        _require(_BACKEND_MODULES)
        from .engine import LocalEngine, LocalEventValidator, WebrtcSpeechDetector

        self.responder = responder
        self.keep_history = keep_history
        self._trimmer: asyncio.Task[None] | None = None
        self.trim_interval_s = 5.0
        self.engine: LocalEngine = LocalEngine(
            responder, voice=voice, rate_wpm=rate_wpm, recognizers=recognizers, recognition=recognition
        )
        self.detector: WebrtcSpeechDetector = WebrtcSpeechDetector(vad_aggressiveness)
        self.server = RealtimeServer(
            engine=self.engine,
            detector=self.detector,
            transcriber=self.engine,
            validator=LocalEventValidator(),
            instructions=LOCAL_INSTRUCTIONS,
            pace=pace,
            host=host,
            port=port,
        )

    async def start(self, *, preload_rates: tuple[int, ...] = (8000,)) -> LocalRealtimeBackend:
        await self.server.start()
        for rate in preload_rates:
            await self.engine.preload(rate)
        if not self.keep_history:
            self._trimmer = asyncio.create_task(self._trim_history(), name="voxline-local-trim")
        log.info("embedded offline Realtime backend at %s", self.ws_url)
        return self

    async def close(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trimmer
            self._trimmer = None
        await self.server.close()
        self.engine.close()

    async def _trim_history(self) -> None:
        while True:
            await asyncio.sleep(self.trim_interval_s)
            self.trim_history()

    def trim_history(self) -> None:
        """Drop the protocol server's records (every event, all input audio, ended sessions): a
        runtime answering calls for days must not keep them. Conversations themselves stay."""
        server = self.server
        server.received.clear()
        server.sent.clear()
        server.rejections.clear()
        server.truncations.clear()
        server.sessions[:] = [c for c in server.sessions if not c.finished.done()]
        for connection in server.sessions:
            connection.core.clear_records()

    async def __aenter__(self) -> LocalRealtimeBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """What a Realtime client gets as ``base_url`` (``http://127.0.0.1:PORT/``)."""
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return f"ws://{self.server.host}:{self.server.port}"


async def start_local_backend(
    rules: str | os.PathLike[str] | Responder | None = None,
    **options: Any,
) -> LocalRealtimeBackend:
    """Load the responder and start the backend on 127.0.0.1.

    ``rules``: a ``.yaml`` rules file, a ``.py`` responder module, a responder object, or None for
    the example agent's rules. A bad rules file raises :class:`~voxline.local.responder.RulesError`
    naming the file and line; missing espeak-ng raises
    :class:`~voxline.local.tts.EspeakNotFoundError` naming the package; a missing Python package of
    the ``voxline[local]`` extra raises :class:`LocalBackendUnavailableError` naming all of them.
    ``options`` go to :class:`LocalRealtimeBackend`.
    """
    if rules is None:
        rules = default_rules_path()
    _require((*_BACKEND_MODULES, "yaml") if _is_rules_file(rules) else _BACKEND_MODULES)
    responder: Responder = load_responder(os.fspath(rules)) if isinstance(rules, str | os.PathLike) else rules
    backend = LocalRealtimeBackend(responder, **options)
    try:
        return await backend.start()
    except BaseException:
        await backend.close()
        raise


def setup_error_message(exc: BaseException) -> str:
    """One line for a backend that cannot start: a bad rules file or responder names its file and line,
    a missing package of the ``voxline[local]`` extra names the modules and the extra."""
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: syntax error in the responder: {exc.msg}"
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


class _LocalSecrets(Secrets):
    """The runtime's secrets, with the embedded backend's placeholder key as ``OPENAI_API_KEY``: a
    real key, if one is set, never reaches the offline backend or the scenario."""

    def __init__(self, inner: Secrets) -> None:
        super().__init__(env={})
        self._inner = inner

    def get(self, name: str) -> str | None:
        return LOCAL_API_KEY if name == "OPENAI_API_KEY" else self._inner.get(name)


async def use_local_backend(
    runtime: Runtime,
    *,
    rules: str | os.PathLike[str] | Responder | None = None,
    announce: Callable[[str], None] | None = None,
    **options: Any,
) -> LocalRealtimeBackend:
    """Start the embedded backend for ``runtime`` (``--backend local``): Realtime clients created
    with no ``base_url`` connect to it and ``VoxEngine.get_secret_value("OPENAI_API_KEY")`` returns
    a placeholder key. Close the backend after the runtime."""
    options.setdefault("keep_history", False)
    options.setdefault("recognition", "process")  # the runtime's calls never wait on a decoder's GIL
    backend = await start_local_backend(rules, **options)
    runtime.realtime_base_url = backend.base_url
    runtime.secrets = _LocalSecrets(runtime.secrets)
    log.info("embedded offline Realtime backend at %s", backend.ws_url)
    if announce is not None:
        announce(f"the embedded offline backend at {backend.ws_url} answers (--backend local)")
    return backend


async def configure_runtime(
    runtime: Runtime,
    *,
    rules: str | os.PathLike[str] | Responder | None = None,
    announce: Callable[[str], None] | None = None,
    **options: Any,
) -> LocalRealtimeBackend | None:
    """Choose the Realtime backend for ``runtime`` from the key: with ``OPENAI_API_KEY``
    (environment or secrets file) nothing changes and scenarios reach OpenAI; without it the
    embedded backend starts (:func:`use_local_backend`). ``voxline run`` and ``voxline demo`` make
    the choice explicit (``--backend``) instead. Returns the backend (close it after the runtime)
    or None."""
    if runtime.secrets.get("OPENAI_API_KEY"):
        return None
    message = "no OPENAI_API_KEY: using the embedded offline backend"
    backend = await use_local_backend(runtime, rules=rules, **options)
    if announce is not None:
        announce(f"{message} at {backend.ws_url}")
    return backend
