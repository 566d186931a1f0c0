"""What the WebSocket providers share: connecting with the Realtime client's transport, masked keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voxline._version import __version__
from voxline.logs import redacting_logger
from voxline.openai.websocket import HandshakeFailed, WebSocketClient, open_websocket

OPEN_TIMEOUT_S = 10.0


class SpeechConnectError(Exception):
    """A speech service refused the WebSocket handshake or could not be reached."""


async def connect(url: str, headers: Mapping[str, str], what: str) -> WebSocketClient:
    try:
        return await open_websocket(
            url,
            headers=headers,
            user_agent=f"voxline/{__version__}",
            open_timeout=OPEN_TIMEOUT_S,
            ping_interval=10.0,
            ping_timeout=10.0,
            close_timeout=2.0,
            logger=redacting_logger("websockets.client"),
        )
    except HandshakeFailed as exc:
        status = exc.response.status_code if exc.response is not None else None
        body = bytes(exc.response.body or b"")[:300].decode("utf-8", "replace") if exc.response else ""
        raise SpeechConnectError(f"{what}: handshake refused (HTTP {status}): {body}") from None
    except (OSError, TimeoutError, ValueError) as exc:
        raise SpeechConnectError(f"{what}: cannot connect: {exc}") from None


def check_param(value: Any, name: str, *, optional: bool = False) -> None:
    """A non-empty string parameter (or None when ``optional``), else ValueError naming it."""
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"parameter {name!r} must be a non-empty string, got {value!r}")
