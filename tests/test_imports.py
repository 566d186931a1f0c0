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
from collections.abc import Iterable

import pytest

import voxline.realtime_server

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


def run_blocked(blocked: Iterable[str], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


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
        core.receive_text(json.dumps({{"type": "response.create"}}))
        while core.next_due_ms() is not None:
            core.next_response_event()
        assert [e["type"] for e in core.sent][-2:] == ["response.done", "rate_limits.updated"], core.sent
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
