"""Import boundaries: what each part of voxline needs, shown in fresh interpreters with packages blocked.

A small ``sys.meta_path`` finder makes the given top-level packages unimportable (as if not installed),
so these hold whatever this machine has installed.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import voxline.realtime_server

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# The asyncio network libraries the sans-I/O cores must not import, and the optional packages (extras)
# that no core needs either.
NETWORK = ("aiohttp", "httpx", "websockets")
OPTIONAL = ("jsonschema", "referencing", "pocketsphinx", "webrtcvad", "yaml")
# Cores that need one more package than the rest, and which.
NEEDS = {
    "voxline.realtime_server.schema": "jsonschema (it raises an ImportError naming the extra without it)",
    "voxline.openai.chat_stream": "jiter (a base dependency: partial JSON in the chat stream)",
    "voxline.rtp.srtp": "pylibsrtp (a base dependency: SRTP through libsrtp, loaded by the first SRTP call)",
    "voxline.webrtc.peer": "aiortc (the webrtc extra: the aiortc I/O of a WebRTC call)",
}

BLOCKER = """
import sys

BLOCKED = frozenset({blocked!r})


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


already = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
assert not already, f"imported before the blocker: {{already}}"
sys.meta_path.insert(0, Blocker())
"""


# Only the standard library and numpy: every other top-level name is unimportable.
ALLOWLIST = """
import sys

ALLOWED = frozenset(sys.stdlib_module_names) | {"numpy", "voxline"}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in ALLOWED:
            raise ImportError(f"No module named {name!r} (not stdlib nor numpy: blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def run_blocked(blocked: Iterable[str], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def run_stdlib_numpy_only(code: str) -> subprocess.CompletedProcess[str]:
    script = ALLOWLIST + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def sans_io_contract() -> dict[str, Any]:
    """The import-linter contract that forbids the network libraries (pyproject.toml)."""
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if set(NETWORK) <= set(c.get("forbidden_modules", ()))]
    return dict(contract)


def io_modules() -> set[str]:
    """The I/O modules: the importers the contract exempts (``"module -> library"`` lines)."""
    return {line.partition("->")[0].strip() for line in sans_io_contract()["ignore_imports"]}


def core_modules() -> list[str]:
    """Every module of the contract's sources but its I/O modules: a new module is a core by default."""
    names: set[str] = set()
    for source in sans_io_contract()["source_modules"]:
        names.add(source)
        spec = importlib.util.find_spec(source)
        assert spec is not None, source
        if spec.submodule_search_locations:
            names |= {
                info.name for info in pkgutil.walk_packages(spec.submodule_search_locations, source + ".")
            }
    return sorted(names - io_modules())


def import_all(modules: Iterable[str]) -> str:
    """A script importing each module, printing the ones that failed and why, then ``ok``."""
    return f"""
    import importlib

    failed = []
    for name in {sorted(modules)!r}:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed.append(f"{{name}}: {{exc}}")
    print("\\n".join(failed) or "ok")
    """


def test_the_cores_are_the_packages_less_their_declared_io_modules() -> None:
    cores = set(core_modules())
    # The ones the architecture names (docs/architecture.md); a new module in these packages is added.
    named = {
        "voxline.audio",
        "voxline.audio.codecs",
        "voxline.media",
        "voxline.media.clock",
        "voxline.rtp",
        "voxline.rtp.session",
        "voxline.sip",
        "voxline.sip.message",
        "voxline.sip.sdp",
        "voxline.sip.transaction",
        "voxline.carriers",
        "voxline.carriers._base",
        "voxline.carriers.twilio",
        "voxline.carriers.wsmedia",
        "voxline.carriers.twiml",
        "voxline.openai.realtime_protocol",
        "voxline.openai.sse",
        "voxline.openai.events",
        "voxline.openai.params",
        "voxline.openai.formats",
        "voxline.realtime_server",
        "voxline.realtime_server.core",
        "voxline.context",
        "voxline.events",
    }
    assert named <= cores, sorted(named - cores)
    assert set(NEEDS) <= cores
    assert io_modules() & cores == set()
    assert {"voxline.carriers.endpoint", "voxline.openai.realtime", "voxline.realtime_server.server"} <= (
        io_modules()
    )


def test_the_cores_import_without_network_libraries_or_extras() -> None:
    result = run_blocked([*NETWORK, *OPTIONAL], import_all(set(core_modules()) - set(NEEDS)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stdout


def test_the_cores_import_without_network_libraries() -> None:
    result = run_blocked(NETWORK, import_all(core_modules()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stdout


def test_the_io_modules_are_the_ones_that_need_a_network_library() -> None:
    # The blocker does block: each declared I/O module fails to import without the libraries.
    result = run_blocked(NETWORK, import_all(io_modules()))
    assert result.returncode == 0, result.stderr
    failed = {line.partition(":")[0] for line in result.stdout.splitlines()}
    assert failed == io_modules(), result.stdout


def test_voxline_rtp_and_audio_import_with_only_the_standard_library_and_numpy() -> None:
    result = run_stdlib_numpy_only(
        """
        import voxline.rtp
        import voxline.audio
        import voxline.audio.codecs
        from voxline.rtp import RtpSession
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_core_but_the_named_ones_needs_only_the_standard_library_and_numpy() -> None:
    result = run_stdlib_numpy_only(import_all(set(core_modules()) - set(NEEDS)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stdout


def test_the_public_face_loads_lazily() -> None:
    result = run_stdlib_numpy_only(
        """
        import sys

        import voxline
        from voxline import AppEvents, CallEvents, __version__

        assert CallEvents.Connected == "Call.Connected" and AppEvents.Started == "AppEvents.Started"
        loaded = sorted(m for m in sys.modules if m.startswith("voxline."))
        assert loaded == ["voxline._lazy", "voxline._version", "voxline.events"], loaded
        try:
            voxline.VoxEngine
        except ImportError as exc:
            print("VoxEngine needs:", exc.name)
        """
    )
    assert result.returncode == 0, result.stderr
    # The runtime is loaded on first use, and it is what needs the network libraries.
    assert result.stdout.startswith("VoxEngine needs: "), result.stdout


def sans_io_modules() -> list[str]:
    """Every module of ``voxline.realtime_server`` but ``server`` (websockets) and ``schema`` (jsonschema)."""
    names = [info.name for info in pkgutil.iter_modules(voxline.realtime_server.__path__)]
    assert {"core", "server", "schema"} <= set(names)
    return [f"voxline.realtime_server.{name}" for name in names if name not in ("server", "schema")]


def test_carrier_callers_import_without_jsonschema() -> None:
    result = run_blocked(
        ["jsonschema", "referencing"],
        """
        import voxline.testing.carrier_callers
        from voxline.testing import ScriptedResponse, SchemaProblem
        from voxline.testing.carrier_callers import TwilioTestCaller, VoxEngineTestCaller
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "statement",
    [
        "from voxline.testing import FakeRealtimeServer",
        "from voxline.testing import ClientEventValidator",
        "import voxline.testing.realtime_server",
        "import voxline.testing.schema",
    ],
)
def test_schema_validating_parts_without_jsonschema_name_the_testing_extra(statement: str) -> None:
    result = run_blocked(
        ["jsonschema", "referencing"],
        f"""
        try:
            {statement}
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported without jsonschema")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'voxline[testing]'" in result.stdout
    assert "missing: jsonschema" in result.stdout


def test_local_backend_does_not_import_voxline_testing() -> None:
    result = run_blocked(
        [],
        """
        import sys

        import voxline.local.engine
        import voxline.local.server

        testing = [m for m in sys.modules if m == "voxline.testing" or m.startswith("voxline.testing.")]
        assert not testing, testing
        assert "voxline.realtime_server.server" in sys.modules
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_realtime_server_core_modules_are_sans_io() -> None:
    modules = sans_io_modules()
    result = run_blocked(
        ["websockets", "aiohttp", "httpx", "jsonschema", "referencing"],
        f"""
        import importlib
        import json

        for name in {modules!r}:
            importlib.import_module(name)

        from voxline.realtime_server import (
            EnergySpeechDetector, RealtimeSessionCore, ScriptedEngine, ScriptedResponse, ScriptedTranscriber,
        )


        class AcceptAll:
            def validate(self, event):
                return []


        engine = ScriptedEngine()
        engine.queue.append(ScriptedResponse(text="Hello"))
        core = RealtimeSessionCore(
            kind="realtime", model="gpt-realtime", now=0.0, engine=engine, detector=EnergySpeechDetector(),
            transcriber=ScriptedTranscriber(), validator=AcceptAll(),
        )
        core.start()
        core.receive_text(json.dumps({{"type": "response.create"}}), 0.0)
        while (deadline := core.next_deadline()) is not None:
            core.tick(deadline)
        assert [e["type"] for e in core.sent][-2:] == ["response.done", "rate_limits.updated"], core.sent
        assert [e["type"] for e in core.data_to_send()] == [e["type"] for e in core.sent], core.sent
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("module", "named"),
    [
        ("pocketsphinx", "pocketsphinx"),
        ("webrtcvad", "webrtcvad (package webrtcvad-wheels)"),
        ("yaml", "yaml (package PyYAML)"),
        ("jsonschema", "jsonschema"),
    ],
)
def test_local_backend_without_a_local_package_raises_one_line_naming_the_extra(
    module: str, named: str
) -> None:
    result = run_blocked(
        [module],
        """
        import asyncio

        from voxline.local.server import LocalBackendUnavailableError, setup_error_message
        from voxline.local.server import start_local_backend

        try:
            asyncio.run(start_local_backend())
        except LocalBackendUnavailableError as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, RuntimeError)
            print(setup_error_message(exc))
        else:
            raise SystemExit("the backend started")
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert "'voxline[local]'" in lines[0]
    assert f"missing Python modules: {named}." in lines[0]


# Every public name of the modules that moved, as they were before the move.
MOVED = {
    "voxline.testing.realtime.core": (
        "voxline.realtime_server.core",
        "DEFAULT_INSTRUCTIONS MIN_COMMIT_MS SESSION_LIFETIME_S Abort Close Outgoing PendingWork RawFrame "
        "RealtimeSessionCore Truncation error_event new_id",
    ),
    "voxline.testing.realtime.engine": (
        "voxline.realtime_server.engine",
        "DEFAULT_REPLY EnergySpeechDetector FunctionCall Output ResponseEngine ResponseRequest Say "
        "ScriptedEngine ScriptedResponse ScriptedTranscriber SpeechDetector Transcriber TranscriptionRequest "
        "session_detector speech_like_audio",
    ),
    "voxline.testing.realtime": (
        "voxline.realtime_server",
        "EnergySpeechDetector FunctionCall RealtimeSessionCore ResponseEngine ResponseRequest Say "
        "ScriptedEngine ScriptedResponse ScriptedTranscriber SpeechDetector Transcriber TranscriptionRequest "
        "Truncation",
    ),
    "voxline.testing.schema": (
        "voxline.realtime_server.schema",
        "ACCEPTED_EVENT_TYPES DOCUMENT_ID ClientEventValidator SchemaProblem default_validator format_param "
        "load_vendored_document",
    ),
    "voxline.testing.realtime_server": (
        "voxline.realtime_server.server",
        "CLOSE_AUTH CLOSE_SHAPE REALTIME_PATH HandshakeRejection RealtimeConnection",
    ),
    "voxline.testing": (
        "voxline.realtime_server",
        "ClientEventValidator EnergySpeechDetector FunctionCall HandshakeRejection RealtimeConnection "
        "ResponseEngine ResponseRequest Say SchemaProblem ScriptedResponse SpeechDetector Transcriber "
        "TranscriptionRequest",
    ),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_re_export_the_moved_names(old: str) -> None:
    new, names = MOVED[old]
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names.split():
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"
        assert name in old_module.__all__, f"{old}.{name}"
    doc = old_module.__doc__ or ""
    assert "moved" in doc.lower() and "voxline.realtime_server" in doc, f"{old} does not say where"


def test_fake_realtime_server_is_the_realtime_server() -> None:
    from voxline.realtime_server.server import RealtimeServer
    from voxline.testing import FakeRealtimeServer

    testing = importlib.import_module("voxline.testing")
    assert issubclass(FakeRealtimeServer, RealtimeServer)
    assert set(testing.__all__) <= set(dir(testing))
