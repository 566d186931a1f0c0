"""``voxline.logs``: the two formats, the ids of the call a record belongs to, structured fields,
and redaction of every part of a record."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxline.logs import (
    LogContextFilter,
    bind_log_ids,
    configure_logging,
    current_log_ids,
    log_ids,
    mask_secret,
    redacting_logger,
)
from voxline.runtime.server import RuntimeConfig

KEY = "sk-proj-unit-secret-4b3c2d1e0f"
TWILIO = "f00dbabe1234567890abcdef"  # the shape of a Twilio auth token: no pattern knows it


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, restored after the test (configure_logging changes it)."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(stream)]


def test_a_json_line_has_the_standard_keys_and_the_ids_of_its_call(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging(log_format="json", level="info", stream=out)
    log = logging.getLogger("voxline.test")
    log.info("outside %d", 1)
    with log_ids(session_id="session-7", call_id="call-9"):
        log.warning("inside %s", "a call")
    log.debug("below the level")
    first, second = records(out)
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(first["ts"]))
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "voxline.test", "outside 1")
    assert second["msg"] == "inside a call"
    assert (second["session_id"], second["call_id"]) == ("session-7", "call-9")
    assert current_log_ids() == (None, None)  # the block reset them


def test_fields_are_merged_in_both_formats(root: logging.Logger) -> None:
    fields = {"transport": "twilio", "caller": "+15550001", "duration_s": 12.5, "turns": 3, "p50_ms": None}
    out = io.StringIO()
    configure_logging(log_format="json", level="info", stream=out)
    with log_ids(session_id="session-1", call_id="call-1"):
        logging.getLogger("voxline.calls").info("call ended", extra={"fields": {**fields, "level": "x"}})
    (record,) = records(out)
    assert {k: record[k] for k in fields} == fields
    assert record["level"] == "INFO" and record["fields.level"] == "x"  # a standard key is never lost

    out = io.StringIO()
    configure_logging(log_format="text", level="info", stream=out)
    with log_ids(session_id="session-1", call_id="call-1"):
        more = {"outcome": "hung up", "rtp": {"lost": 0, "jitter_ms": 1.5}}
        logging.getLogger("voxline.calls").info("call ended", extra={"fields": {**fields, **more}})
    (line,) = lines(out)
    assert line.endswith(
        " INFO voxline.calls [session-1 call-1]: call ended transport=twilio caller=+15550001 "
        'duration_s=12.5 turns=3 p50_ms=null outcome="hung up" rtp={"lost":0,"jitter_ms":1.5}'
    ), line


def test_text_lines_without_a_call_have_no_ids(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging(1, stream=out)
    logging.getLogger("voxline.runtime").info("HTTP on %s", "127.0.0.1:8080")
    with log_ids(session_id="session-2"):
        logging.getLogger("voxline.session").info("outbound")
    first, second = lines(out)
    assert first.endswith(" INFO voxline.runtime: HTTP on 127.0.0.1:8080")
    assert second.endswith(" INFO voxline.session [session-2]: outbound")


def test_no_secret_in_message_fields_or_traceback_in_either_format(root: logging.Logger) -> None:
    mask_secret(TWILIO)
    for log_format in ("json", "text"):
        out = io.StringIO()
        configure_logging(log_format=log_format, level="debug", stream=out)
        log = logging.getLogger("voxline.test")
        log.debug("> Authorization: Bearer %s", KEY)
        log.info("headers %r", {"authorization": f"Bearer {KEY}", "x": "y"})
        log.info("GET /twilio?token=%s&x=1", "media-token-zz")
        log.info("auth token %s", TWILIO, extra={"fields": {"nested": {"k": [f"Bearer {KEY}", TWILIO]}}})
        try:
            raise RuntimeError(f"failed with {KEY} and {TWILIO}")
        except RuntimeError:
            log.exception("boom")
        text = out.getvalue()
        assert KEY[3:] not in text and TWILIO not in text and "media-token-zz" not in text, text
        assert "Authorization: ***" in text and "token=***&x=1" in text
        if log_format == "json":
            boom = records(out)[-1]
            assert isinstance(boom["exc_info"], str) and "RuntimeError: failed with" in boom["exc_info"]
            assert records(out)[3]["nested"] == {"k": ["Bearer ***", "***"]}


def test_short_values_are_not_masked_everywhere(root: logging.Logger) -> None:
    mask_secret("1234")  # would mangle every port and count: only the patterns protect it
    out = io.StringIO()
    configure_logging(log_format="json", level="info", stream=out)
    logging.getLogger("voxline.test").info("port 51234")
    assert records(out)[0]["msg"] == "port 51234"


def test_configure_logging_replaces_its_handler_and_level_wins_over_verbosity(root: logging.Logger) -> None:
    configure_logging(2, stream=io.StringIO())
    out = io.StringIO()
    configure_logging(2, log_format="json", level="error", stream=out)
    ours = [h for h in root.handlers if any(isinstance(f, LogContextFilter) for f in h.filters)]
    assert len(ours) == 1 and isinstance(ours[0], logging.StreamHandler) and ours[0].stream is out
    assert root.level == logging.ERROR
    logging.getLogger("voxline.test").warning("not shown")
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"log_format": "xml"}, "log_format must be 'text' or 'json', not 'xml'"),
        ({"level": "loud"}, "log_level must be one of debug, info, warning, error, not 'loud'"),
    ],
)
def test_bad_values_name_the_setting(root: logging.Logger, kwargs: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        configure_logging(**kwargs)  # type: ignore[arg-type]


def test_the_settings_come_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    scenario = {"scenario": "x.py"}
    config = RuntimeConfig.load(scenario, env={"VOXLINE_LOG_FORMAT": "JSON", "VOXLINE_LOG_LEVEL": "Info"})
    assert (config.log_format, config.log_level) == ("json", "info")
    toml = tmp_path / "voxline.toml"
    toml.write_text('[run]\nlog_format = "json"\nlog_level = "debug"\n')
    config = RuntimeConfig.load({**scenario, "log_level": "error"}, env={}, config_file=str(toml))
    assert (config.log_format, config.log_level) == ("json", "error")  # the flag wins
    default = RuntimeConfig.load(scenario, env={})
    assert (default.log_format, default.log_level) == ("text", None)
    with pytest.raises(ValueError, match="log_format must be 'text' or 'json', not 'yaml'"):
        RuntimeConfig.load(scenario, env={"VOXLINE_LOG_FORMAT": "yaml"})
    with pytest.raises(ValueError, match="log_level must be one of"):
        RuntimeConfig.load({**scenario, "log_level": "verbose"}, env={})


async def test_tasks_inherit_the_ids_and_a_bound_task_keeps_its_own(
    root: logging.Logger,
) -> None:
    out = io.StringIO()
    configure_logging(log_format="json", level="info", stream=out)
    log = logging.getLogger("voxline.test")

    async def later(name: str) -> None:
        await asyncio.sleep(0)
        log.info(name)

    async def serving() -> None:
        bind_log_ids(session_id="session-5", call_id="call-6")  # for the rest of this task
        await asyncio.sleep(0)
        log.info("bound")

    with log_ids(session_id="session-3", call_id="call-4"):
        task = asyncio.create_task(later("child"))
    await asyncio.gather(task, asyncio.create_task(serving()), later("outside"))
    got = {r["msg"]: (r.get("session_id"), r.get("call_id")) for r in records(out)}
    assert got == {
        "child": ("session-3", "call-4"),
        "bound": ("session-5", "call-6"),
        "outside": (None, None),
    }


def test_a_library_logger_keeps_the_ids_of_the_call_it_was_made_for(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging(log_format="json", level="debug", stream=out)
    with log_ids(session_id="session-8", call_id="call-8"):
        library = redacting_logger("websockets.client")
    # Logged later from another context (the caller's audio arrives from the carrier's socket).
    with log_ids(session_id="session-1"):
        library.debug("> %s: %s", "Authorization", f"Bearer {KEY}")
    (record,) = records(out)
    assert record["msg"] == "> Authorization: ***"
    assert (record["session_id"], record["call_id"]) == ("session-8", "call-8")
