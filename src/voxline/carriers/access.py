"""Access control of the carrier media sockets, before the WebSocket upgrade; no I/O library.

A media endpoint accepts a connection only with the configured token (query parameter ``token``
or ``Authorization: Bearer``) or, on the Twilio endpoint, a valid ``X-Twilio-Signature``. No
credential: 401; a wrong one: 403. With no token and no Twilio auth token configured the endpoints
are open (``CarrierEndpoints`` logs a warning once). Then the limits: 503 with ``Retry-After``
while the application admits no call (``Admit``) or the sockets are at ``max_streams``.

Both socket layers (aiohttp's and websockets') describe the request as an ``UpgradeRequest`` and
answer a ``Refusal`` in their own response type. Behind a reverse proxy the URL Twilio signed is
``public_url``'s: ``CarrierConfig.public_url`` when set, else the request's scheme and Host, taken
from ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` only when the request comes from one of
``CarrierConfig.trusted_proxies`` (anyone else could send them). Credentials, signatures and the
Host are compared as the bytes received (undecodable bytes arrive as surrogate escapes), so bytes
that are not UTF-8 get a 403.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from ._base import Stats
from .config import Admit, CarrierConfig
from .twiml import SIGNATURE_HEADER, validate_signature

__all__ = ["AccessControl", "Refusal", "UpgradeRequest", "forwarded_origin", "header_lines", "public_url"]

log = logging.getLogger("voxline.carriers")

RETRY_AFTER_S = "1"
# What a forwarded Host may be: a name or address and a port, nothing that could change the URL's
# shape (no userinfo, path, query or whitespace).
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


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


def header_lines(headers: Mapping[str, str], name: str) -> list[str]:
    """Every line of header ``name``, in order, from either socket layer's headers."""
    # aiohttp's headers have getall(), websockets' get_all(); a plain get() takes the first of a
    # repeated header (aiohttp) or raises MultipleValuesError (websockets).
    getall, get_all = getattr(headers, "getall", None), getattr(headers, "get_all", None)
    if getall is not None:
        return list(getall(name, []))
    if get_all is not None:
        return list(get_all(name))
    value = headers.get(name)
    return [] if value is None else [value]


def _last_value(headers: Mapping[str, str], name: str) -> str | None:
    """The last value of a header over all its lines and commas (the one the nearest proxy set)."""
    values = [v.strip() for line in header_lines(headers, name) for v in line.split(",") if v.strip()]
    return values[-1] if values else None


def forwarded_origin(config: CarrierConfig, request: UpgradeRequest) -> tuple[str, str]:
    """The scheme (``http``/``https``) and Host the carrier asked for.

    ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` count only when the request's peer is in
    ``config.trusted_proxies`` (a stranger's would let it choose the URL a signature is checked
    against); an unusable value is ignored. Otherwise: the request's own scheme and Host.
    """
    scheme, host = ("https" if request.secure else "http"), request.host
    if not config.trusts(request.remote):
        return scheme, host
    proto = _last_value(request.headers, "X-Forwarded-Proto")
    if proto is not None and proto.lower() in ("http", "https"):
        scheme = proto.lower()
    forwarded_host = _last_value(request.headers, "X-Forwarded-Host")
    if forwarded_host is not None and _HOST.fullmatch(forwarded_host):
        host = forwarded_host
    return scheme, host


def public_url(
    config: CarrierConfig, request: UpgradeRequest, *, websocket: bool, path: str | None = None
) -> str:
    """The URL as the carrier requested it (what Twilio signs): ``config.public_url`` as the base
    when set, else the request's scheme and Host (``forwarded_origin``); ``path`` replaces the
    request's path and query."""
    base = config.public_url
    if base:
        parts = urlsplit(base)
        scheme, netloc, prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")
    else:
        (scheme, netloc), prefix = forwarded_origin(config, request), ""
    if websocket:
        scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{scheme}://{netloc}{prefix}{path if path is not None else request.raw_path}"


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
        authorization = header_lines(request.headers, "Authorization")
        signatures = header_lines(request.headers, SIGNATURE_HEADER) if twilio else []
        if len(authorization) > 1 or len(signatures) > 1:
            # Which one would count differs between the socket layers: none does.
            self.stats["refused_forbidden"] += 1
            log.info("refused %s from %s: a credential header repeated", request.path, request.remote)
            return Refusal(403, "wrong credentials\n")
        presented = request.query("token")
        header = authorization[0] if authorization else ""
        if presented is None and header[:7].lower() == "bearer ":
            presented = header[7:].strip()
        signature = signatures[0] if signatures else None
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
                public_url(cfg, request, websocket=True),
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
