"""Access control of the carrier media sockets, before the WebSocket upgrade; no I/O library.

A media endpoint accepts a connection only with the configured token (query parameter ``token``
or ``Authorization: Bearer``) or, on the Twilio endpoint, a valid ``X-Twilio-Signature``. No
credential: 401; a wrong one: 403. With no token and no Twilio auth token configured the endpoints
are open (``CarrierEndpoints`` logs a warning once). Then the limits: 503 with ``Retry-After``
while the application admits no call (``Admit``) or the sockets are at ``max_streams``.

Both socket layers (aiohttp's and websockets') describe the request as an ``UpgradeRequest`` and
answer a ``Refusal`` in their own response type. Credentials, signatures and the Host are compared
as the bytes received (undecodable bytes arrive as surrogate escapes), so bytes that are not UTF-8
get a 403.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from ._base import Stats
from .config import Admit, CarrierConfig
from .twiml import SIGNATURE_HEADER, validate_signature

__all__ = ["AccessControl", "Refusal", "UpgradeRequest", "public_url"]

log = logging.getLogger("voxline.carriers")

RETRY_AFTER_S = "1"


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """What access control needs of an HTTP request, whichever library parsed it.

    ``raw_path``: path and query as requested (what Twilio signs). ``headers``: a case-insensitive
    mapping (aiohttp's and websockets' header types both are).
    """

    raw_path: str
    headers: Mapping[str, str]
    host: str
    secure: bool = False
    remote: str | None = None

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    def query(self, name: str) -> str | None:
        """The first value of query parameter ``name`` (percent-decoded, bytes kept as received)."""
        query = self.raw_path.partition("?")[2]
        for key, value in parse_qsl(query, keep_blank_values=True, errors="surrogateescape"):
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer instead of the upgrade."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


def public_url(
    config: CarrierConfig, *, secure: bool, host: str, raw_path: str, websocket: bool, path: str | None = None
) -> str:
    """The URL as the carrier requested it (what Twilio signs): ``config.public_url`` as the base
    when set (behind a proxy), else the request's own scheme and Host."""
    base = config.public_url
    if base:
        parts = urlsplit(base)
        scheme, netloc, prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")
    else:
        scheme, netloc, prefix = ("https" if secure else "http"), host, ""
    if websocket:
        scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{scheme}://{netloc}{prefix}{path if path is not None else raw_path}"


class AccessControl:
    """Decides, before the upgrade, whether a media socket is let in. ``count_once(counter,
    message)`` counts a refusal and logs its kind once (shared with the endpoint's other counters)."""

    def __init__(
        self,
        config: CarrierConfig,
        admit: Admit | None,
        stats: Stats,
        count_once: Callable[[str, str], None],
    ) -> None:
        self.config = config
        self.admit = admit
        self.stats = stats
        self._count_once = count_once

    @property
    def open(self) -> bool:
        """No token and no Twilio auth token: every media socket is let in."""
        return self.config.token is None and self.config.twilio_auth_token is None

    def refuse(self, request: UpgradeRequest, *, twilio: bool, active_sockets: int) -> Refusal | None:
        """None lets the socket in; otherwise the answer to give instead of the upgrade."""
        cfg = self.config
        if self.open:
            return self.over_limit(active_sockets)
        # From here a credential is required; /media with only a Twilio auth token admits nobody.
        auth_token = cfg.twilio_auth_token if twilio else None
        presented = request.query("token")
        header = request.headers.get("Authorization", "")
        if presented is None and header[:7].lower() == "bearer ":
            presented = header[7:].strip()
        signature = request.headers.get(SIGNATURE_HEADER) if twilio else None
        if (
            presented is not None
            and cfg.token is not None
            and hmac.compare_digest(
                presented.encode("utf-8", "surrogateescape"), cfg.token.encode("utf-8", "surrogateescape")
            )
        ):
            return self.over_limit(active_sockets)
        if (
            signature is not None
            and auth_token is not None
            and validate_signature(
                auth_token,
                signature,
                public_url(
                    cfg, secure=request.secure, host=request.host, raw_path=request.raw_path, websocket=True
                ),
            )
        ):
            return self.over_limit(active_sockets)
        if presented is None and signature is None:
            self.stats["refused_unauthenticated"] += 1
            log.info("refused %s from %s: no credentials", request.path, request.remote)
            return Refusal(401, "credentials required\n", {"WWW-Authenticate": "Bearer"})
        self.stats["refused_forbidden"] += 1
        log.info("refused %s from %s: wrong token or signature", request.path, request.remote)
        return Refusal(403, "wrong credentials\n")

    def over_limit(self, active_sockets: int) -> Refusal | None:
        """503 while the application admits no call or the sockets are at ``max_streams``."""
        reason = self.admit() if self.admit is not None else None
        limit = self.config.max_streams
        if reason is None and limit is not None and active_sockets >= limit:
            reason = "busy"
        if reason is None:
            return None
        self._count_once(f"refused_{reason}", f"refusing carrier media sockets with 503: {reason}")
        return Refusal(503, f"not taking calls: {reason}\n", {"Retry-After": RETRY_AFTER_S})
