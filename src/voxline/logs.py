"""Logging for the command line: text or JSON lines, the call each record belongs to, and the
redaction that keeps secrets out of every log line.

Secrets never appear in a log record at any verbosity (DESIGN §4): ``Authorization`` header values,
bearer tokens, OpenAI-style keys, ``token=`` query values and every value given to
:func:`mask_secret` (the runtime gives its API key, media token and Twilio auth token) are replaced
by ``***`` in the final text of a record. The formatters :func:`configure_logging` installs redact
everything they write (message, fields, traceback), so the debug lines of ``websockets`` and
``httpx`` are covered too; :class:`RedactingFilter` does it for another handler, and
:func:`redacting_logger` wraps a logger handed to a library, so its records are clean at the source
whatever handlers an embedding application has.

Records emitted inside a call carry its session and call id: the runtime sets them in context
variables (:func:`log_ids`, :func:`bind_log_ids`) where a session's code and its call's events run,
and :class:`LogContextFilter` stamps them on each record.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "LogContextFilter",
    "RedactingFilter",
    "TextFormatter",
    "bind_log_ids",
    "configure_logging",
    "current_log_ids",
    "log_ids",
    "mask_secret",
    "parse_log_format",
    "parse_log_level",
    "redact",
    "redacting_logger",
]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

_PATTERNS = (
    # "Authorization: Bearer sk-...", "Proxy-Authorization: Digest ...", in headers and their reprs.
    (re.compile(r"((?:proxy-)?authorization['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\",}]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-***"),
    (re.compile(r"([?&](?:api_key|key|token)=)[^&\s'\"]+", re.IGNORECASE), r"\1***"),
)

# Shorter values are not masked wherever they occur: "1234" would mangle ports and counts.
MIN_SECRET_LENGTH = 8
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def mask_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (values shorter than
    ``MIN_SECRET_LENGTH`` characters are ignored; such a secret is also masked by the patterns when
    it is in an ``Authorization`` header or a ``token=`` query)."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    _secrets.add(value)
    # Longest first: a secret that contains another is masked whole.
    alternatives = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """``text`` with header credentials, bearer tokens, API keys, ``token=`` query values and the
    values given to :func:`mask_secret` masked."""
    if not text:
        return text
    if _secret_pattern is not None:
        text = _secret_pattern.sub("***", text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# -- the call a record belongs to ---------------------------------------------------------------

_session_id: ContextVar[str | None] = ContextVar("voxline_log_session_id", default=None)
_call_id: ContextVar[str | None] = ContextVar("voxline_log_call_id", default=None)


def current_log_ids() -> tuple[str | None, str | None]:
    """The (session id, call id) records emitted here carry."""
    return _session_id.get(), _call_id.get()


@contextmanager
def log_ids(*, session_id: str | None = None, call_id: str | None = None) -> Iterator[None]:
    """Records emitted in the block (and in tasks and listeners created there, which copy the
    context) carry these ids; an id given as None keeps the one already set."""
    tokens = []
    if session_id is not None:
        tokens.append((_session_id, _session_id.set(session_id)))
    if call_id is not None:
        tokens.append((_call_id, _call_id.set(call_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_log_ids(*, session_id: str | None = None, call_id: str | None = None) -> None:
    """Set the ids for the rest of the current context (a task that serves one call); None keeps
    the one already set."""
    if session_id is not None:
        _session_id.set(session_id)
    if call_id is not None:
        _call_id.set(call_id)


class LogContextFilter(logging.Filter):
    """Stamps ``session_id`` and ``call_id`` from the context on each record (an ``extra`` that
    gives them wins); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "session_id", None) is None:
            record.session_id = _session_id.get()
        if getattr(record, "call_id", None) is None:
            record.call_id = _call_id.get()
        return True


# -- formats ------------------------------------------------------------------------------------

_RESERVED = frozenset(("ts", "level", "logger", "msg", "session_id", "call_id", "exc_info", "stack"))


def _record_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """The structured fields given as ``extra={"fields": {...}}``."""
    fields = getattr(record, "fields", None)
    if fields is None:
        return {}
    if isinstance(fields, Mapping):
        return fields
    return {"fields": fields}


def _clean(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with every string redacted (non-finite numbers become null)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return redact(str(value))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the format: show both rather than lose the record
        return f"{record.msg!s} {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``,
    ``msg``, ``session_id`` and ``call_id`` when set, the record's fields, ``exc_info`` (the
    traceback text) and ``stack`` when present. A field named like one of those keys is written
    as ``fields.<name>``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(_message(record)),
        }
        session_id = getattr(record, "session_id", None)
        call_id = getattr(record, "call_id", None)
        if session_id is not None:
            out["session_id"] = str(session_id)
        if call_id is not None:
            out["call_id"] = str(call_id)
        for key, value in _record_fields(record).items():
            name = str(key)
            out[f"fields.{name}" if name in _RESERVED else name] = _clean(value)
        if record.exc_info:
            out["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def _logfmt(value: Any) -> str:
    """A field's value in a text line: a plain word as it is, other text in JSON quotes, the rest as
    compact JSON (``null``, ``true``, ``[1,2]``)."""
    if not isinstance(value, str):
        return json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), default=str)
    if value and not any(c.isspace() or c in '"=\\' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-01-31 12:00:00,123 INFO voxline.call [session-3 call-3]: message key=value``: the ids
    in brackets when the record has them, the record's fields as ``key=value`` after the message;
    the whole line redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [str(i) for i in (getattr(record, "session_id", None), getattr(record, "call_id", None)) if i]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        text = super().format(record)
        fields = _record_fields(record)
        if fields:
            pairs = " ".join(f"{key}={_logfmt(value)}" for key, value in fields.items())
            head, sep, tail = text.partition("\n")  # the fields go on the message line, not the traceback
            text = f"{head} {pairs}{sep}{tail}"
        return redact(text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message (and its traceback text); never drops a record. For a
    handler with another formatter (the formatters here redact on their own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to the handler
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _RedactingAdapter(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        # The call the library connection was opened for: its records carry it even when the code
        # that makes it log runs elsewhere (the caller's audio arrives from the carrier's socket).
        session_id, call_id = current_log_ids()
        self._ids = {k: v for k, v in (("session_id", session_id), ("call_id", call_id)) if v is not None}

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        if self._ids:
            kwargs["extra"] = {**self._ids, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if args:
            try:
                msg = str(msg) % args
            except (TypeError, ValueError):
                msg = " ".join(str(part) for part in (msg, *args))
            args = ()
        text, options = self.process(redact(str(msg)), kwargs)
        self.logger.log(level, text, **options)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kwargs)


def redacting_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger for a library (``websockets.connect(logger=...)``) whose records carry no secret,
    and the session and call ids of the context it is created in."""
    return _RedactingAdapter(logging.getLogger(name))


# -- set-up -------------------------------------------------------------------------------------


def parse_log_format(value: Any, name: str = "log_format") -> str:
    """``text`` or ``json`` (any case); ValueError naming ``name`` otherwise."""
    text = str(value).strip().lower()
    if text not in LOG_FORMATS:
        raise ValueError(f"{name} must be 'text' or 'json', not {value!r}")
    return text


def parse_log_level(value: Any, name: str = "log_level") -> str:
    """``debug``, ``info``, ``warning`` or ``error`` (any case); ValueError naming ``name`` otherwise."""
    text = str(value).strip().lower()
    if text not in LOG_LEVELS:
        raise ValueError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return text


class _VoxlineHandler(logging.StreamHandler[IO[str]]):
    """The handler :func:`configure_logging` installs (and replaces when called again)."""


def configure_logging(
    verbosity: int = 0, *, log_format: str = "text", level: str | None = None, stream: IO[str] | None = None
) -> None:
    """The command line's logging on ``stream`` (stderr): WARNING by default, INFO with ``-v``,
    DEBUG with ``-vv``, or ``level`` (``debug``/``info``/``warning``/``error``, which wins over
    ``verbosity``); ``log_format`` ``text`` or ``json`` (one object per line). Every record gets the
    ids of the call it was emitted in and is redacted. Calling it again replaces the set-up."""
    log_format = parse_log_format(log_format)
    if level is not None:
        number = getattr(logging, parse_log_level(level).upper())
    else:
        number = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VoxlineHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _VoxlineHandler(sys.stderr if stream is None else stream)
    handler.addFilter(LogContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(number)
