"""Logging set-up for the command line, and the redaction that keeps secrets out of every log line.

Secrets never appear in a log record at any verbosity (DESIGN §4): ``Authorization`` header values,
bearer tokens and OpenAI-style keys are replaced by ``***`` in the final text of a record.
:class:`RedactingFilter` does it for a handler (``configure_logging`` installs it on the root
handler, so the debug lines of ``websockets`` and ``httpx`` are covered too), and
:func:`redacting_logger` wraps a logger handed to a library, so its records are clean at the source
whatever handlers an embedding application has.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

__all__ = ["RedactingFilter", "configure_logging", "redact", "redacting_logger"]

_PATTERNS = (
    # "Authorization: Bearer sk-...", "Proxy-Authorization: Digest ...", in headers and their reprs.
    (re.compile(r"((?:proxy-)?authorization['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\",}]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-***"),
    (re.compile(r"([?&](?:api_key|key|token)=)[^&\s'\"]+", re.IGNORECASE), r"\1***"),
)


def redact(text: str) -> str:
    """``text`` with header credentials, bearer tokens, API keys and ``token=`` query values masked."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message (and its traceback text); never drops a record."""

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
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
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
        super().log(level, redact(str(msg)), **kwargs)

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
    """A logger for a library (``websockets.connect(logger=...)``) whose records carry no secret."""
    return _RedactingAdapter(logging.getLogger(name), {})


def configure_logging(verbosity: int) -> None:
    """The command line's logging: WARNING by default, INFO with ``-v``, DEBUG with ``-vv``; every
    record passes :class:`RedactingFilter`."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
