"""The vendored OpenAI schemas and the validator's OpenAI-shaped answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voxline.testing.schema import (
    ClientEventValidator,
    SchemaProblem,
    default_validator,
    load_vendored_document,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "openai-spec" / "openapi.json"
EXAMPLES = ROOT.parent / "shared" / "openai-spec" / "event-examples.json"
TOOL = ROOT / "tools" / "vendor_openai_schemas.py"
VENDORED = ROOT / "src" / "voxline" / "realtime_server" / "schemas" / "realtime_client_events.json"


def validate(event: Any) -> list[SchemaProblem]:
    return default_validator().validate(event)


def test_vendored_document_records_its_origin() -> None:
    header = load_vendored_document()["x-vendored"]
    assert header["origin_repository"] == "https://github.com/openai/openai-openapi"
    assert header["commit"] == "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
    assert header["spec_sha256"] == "bbfd19abcde0e7412da99378deb2a959ccdd3a812f97c9e35901921e8e973f9a"
    assert header["licence"] == "MIT"
    assert "RealtimeClientEventSessionUpdate" in header["roots"]


def test_vendored_schemas_are_closed_under_references() -> None:
    schemas = load_vendored_document()["components"]["schemas"]
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schemas)
    assert refs, "the client events reference shared schemas"
    missing = {r for r in refs if r.removeprefix("#/components/schemas/") not in schemas}
    assert missing == set()


def test_vendoring_tool_reproduces_the_committed_file(tmp_path: Path) -> None:
    if not SPEC.exists():
        pytest.skip(f"OpenAI spec not found at {SPEC}")
    out = tmp_path / "out.json"
    subprocess.run([sys.executable, str(TOOL), str(SPEC), "--out", str(out)], check=True, capture_output=True)
    assert out.read_text(encoding="utf-8") == VENDORED.read_text(encoding="utf-8")
    check = subprocess.run([sys.executable, str(TOOL), str(SPEC), "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_vendoring_tool_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    if not SPEC.exists():
        pytest.skip(f"OpenAI spec not found at {SPEC}")
    stale = tmp_path / "stale.json"
    stale.write_text("{}\n", encoding="utf-8")
    check = subprocess.run(
        [sys.executable, str(TOOL), str(SPEC), "--out", str(stale), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "out of date" in check.stderr


def test_schema_loads_from_an_installed_layout(tmp_path: Path) -> None:
    # setuptools' build_py lays out exactly what a wheel holds (modules plus package data); the validator
    # must find its schemas there through importlib.resources, not through the source checkout.
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "build_py",
            "--build-lib",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert (tmp_path / "voxline/realtime_server/schemas/realtime_client_events.json").exists()
    code = (
        "import voxline.testing, voxline.testing.schema as s\n"
        f"assert voxline.testing.__file__.startswith({str(tmp_path)!r}), voxline.testing.__file__\n"
        "print(s.default_validator().header['commit'])"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"


def test_import_without_jsonschema_names_the_extra() -> None:
    code = "import sys; sys.modules['jsonschema'] = None\nfrom voxline.testing import FakeRealtimeServer"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "voxline[testing]" in result.stderr


def strict_examples() -> list[tuple[str, dict[str, Any]]]:
    if not EXAMPLES.exists():
        return []
    out = []
    for event_type, entry in json.loads(EXAMPLES.read_text(encoding="utf-8"))["ga_realtime_client"].items():
        try:
            out.append((event_type, json.loads(entry["example"])))
        except ValueError:
            continue  # a few spec examples carry comments or trailing commas
    return out


@pytest.mark.parametrize(("event_type", "example"), strict_examples())
def test_official_examples_are_accepted_except_webrtc_and_beta_events(
    event_type: str, example: dict[str, Any]
) -> None:
    problems = validate(example)
    if event_type in ("output_audio_buffer.clear", "transcription_session.update"):
        # Not accepted over a GA WebSocket: answered with invalid_value on 'type', like live.
        assert [(p.code, p.param) for p in problems] == [("invalid_value", "type")]
    else:
        assert problems == []


def test_official_examples_were_found() -> None:
    if not EXAMPLES.exists():
        pytest.skip(f"examples not found at {EXAMPLES}")
    assert len(strict_examples()) >= 8


@pytest.mark.parametrize(
    ("event", "code", "param", "message"),
    [
        (
            {"type": "session.update", "session": {"type": "realtime", "voice_id": "x"}},
            "unknown_parameter",
            "session.voice_id",
            "Unknown parameter: 'session.voice_id'.",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "tools": [{"type": "function", "meta": 1}]},
            },
            "unknown_parameter",
            "session.tools[0].meta",
            "Unknown parameter: 'session.tools[0].meta'.",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
                },
            },
            "integer_below_min_value",
            "session.audio.input.format.rate",
            "Invalid 'session.audio.input.format.rate': integer below minimum value. "
            "Expected a value >= 24000, but got 16000 instead.",
        ),
        (
            {"type": "session.update", "session": {"instructions": "x"}},
            "missing_required_parameter",
            "session.type",
            "Missing required parameter: 'session.type'.",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "instructions": 5}},
            "invalid_type",
            "session.instructions",
            "Invalid type for 'session.instructions': expected a string, but got an integer instead.",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "function_call_output", "output": "{}"}},
            "missing_required_parameter",
            "item.call_id",
            "Missing required parameter: 'item.call_id'.",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "message", "role": "bot", "content": []}},
            "invalid_value",
            "item.role",
            "Invalid value: 'bot'. Supported values are: 'system', 'user', and 'assistant'.",
        ),
        (
            {"type": "response.create", "event_id": "e" * 513},
            "string_above_max_length",
            "event_id",
            "Invalid 'event_id': string too long. Expected a string with maximum length 512, "
            "but got a string with length 513 instead.",
        ),
        ({}, "invalid_event", None, "The 'type' field is missing."),
    ],
)
def test_invalid_events_get_openai_errors(
    event: dict[str, Any], code: str, param: str | None, message: str
) -> None:
    problems = validate(event)
    assert problems, "the event must be rejected"
    assert problems[0] == SchemaProblem(code, message, param)


def test_legacy_transcription_session_update_is_rejected_like_live() -> None:
    (problem,) = validate({"type": "transcription_session.update", "session": {}})
    assert (problem.code, problem.param) == ("invalid_value", "type")
    assert problem.message.startswith("Invalid value: 'transcription_session.update'. Supported values are: ")
    assert "'session.update'" in problem.message and "'response.cancel'" in problem.message


@pytest.mark.parametrize(
    "event",
    [
        {"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"]}},
        {"type": "response.create", "response": {"conversation": "auto", "metadata": {"purpose": "x"}}},
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "tracing": None,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "noise_reduction": None,
                        "turn_detection": None,
                    }
                },
            },
        },
        {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": {"transcription": {}}}},
        },
        {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 10},
    ],
)
def test_valid_events_pass(event: dict[str, Any]) -> None:
    # OpenAPI's nullable/default-null and the spec's overlapping oneOf unions must not reject valid input.
    assert validate(event) == []


def test_a_validator_can_be_built_from_a_document() -> None:
    validator = ClientEventValidator(load_vendored_document())
    assert validator.header["licence"] == "MIT"
    assert validator.schema_name("session.update") == "RealtimeClientEventSessionUpdate"
    assert validator.schema_name("output_audio_buffer.clear") is None
