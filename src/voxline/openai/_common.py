"""What the three OpenAI clients share: ids, trace files, privacy-aware logging, connector info."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from .._version import __version__

log = logging.getLogger("voxline.openai")

TRACE_DIR_ENV = "VOXLINE_TRACE_DIR"


def new_id() -> str:
    return secrets.token_hex(16)


def redact_url(url: str) -> str:
    """An endpoint fit for logs: no user info, no query (keys sometimes travel there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def trace_dir() -> Path:
    return Path(os.environ.get(TRACE_DIR_ENV) or "traces")


class Tracer:
    """Every message sent and received, as JSON lines: ``{"t", "dir", "msg"}``.

    With privacy on, only ``{"t", "dir", "type", "size"}`` is written. Headers are never traced.
    """

    def __init__(self, path: Path, privacy: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.privacy = privacy
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    @classmethod
    def for_client(cls, kind: str, client_id: str, privacy: bool) -> Tracer:
        return cls(trace_dir() / f"{kind}-{client_id}.jsonl", privacy)

    def record(self, direction: str, msg_type: str, size: int, message: Any) -> None:
        if self._file is None:
            return
        entry: dict[str, Any] = {"t": round(time.time(), 6), "dir": direction}
        if self.privacy:
            entry["type"] = msg_type
            entry["size"] = size
        else:
            entry["msg"] = message
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MessageLog:
    """voxline's own debug log of a client's traffic; with privacy, types and sizes only."""

    def __init__(self, logger: logging.Logger, client_id: str, privacy: bool) -> None:
        self._log = logger
        self._id = client_id
        self.privacy = privacy

    def message(self, direction: str, msg_type: str, size: int, text: str | None) -> None:
        if not self._log.isEnabledFor(logging.DEBUG):
            return
        if self.privacy or text is None:
            self._log.debug("%s %s %s (%d bytes)", self._id, direction, msg_type, size)
        else:
            self._log.debug("%s %s %s (%d bytes): %s", self._id, direction, msg_type, size, text[:2000])


def connector_information(
    client_id: str, endpoint: str, tracer: Tracer | None, **extra: Any
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "applicationVersion": __version__,
        "id": client_id,
        "endpoint": redact_url(endpoint),
    }
    if tracer is not None:
        info["trace"] = str(tracer.path.resolve())
    info.update(extra)
    return info
