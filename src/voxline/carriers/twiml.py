"""TwiML that connects a Twilio call to a media stream, and Twilio request signatures.

Twilio signs each request with ``X-Twilio-Signature``: HMAC-SHA1, keyed with the account's auth
token, over the full URL Twilio requested followed by every POST parameter as name + value with
no separators, parameters sorted by name (and a name's several values sorted), base64-encoded.
Requests without a body (GET, the WebSocket upgrade of a Media Stream) sign the URL alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

__all__ = ["SIGNATURE_HEADER", "compute_signature", "connect_stream_twiml", "validate_signature"]

SIGNATURE_HEADER = "X-Twilio-Signature"

Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


def connect_stream_twiml(
    url: str,
    parameters: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
    status_callback: str | None = None,
) -> str:
    """``<Response><Connect><Stream url=...>`` with a ``<Parameter>`` per custom parameter.

    ``<Connect><Stream>`` makes the stream bidirectional: the caller hears what the stream sends.
    Parameters arrive in the stream's ``start.customParameters``.
    """
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in ("wss", "ws"):
        raise ValueError(f"url must be a wss:// (or ws://) WebSocket URL, got {url!r}")
    attrs = f"url={quoteattr(url)}"
    if name is not None:
        attrs += f" name={quoteattr(name)}"
    if status_callback is not None:
        attrs += f" statusCallback={quoteattr(status_callback)}"
    children = ""
    for key, value in (parameters or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"parameters must map str to str, got {key!r}: {value!r}")
        children += f"<Parameter name={quoteattr(key)} value={quoteattr(value)}/>"
    stream = f"<Stream {attrs}>{children}</Stream>" if children else f"<Stream {attrs}/>"
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>{stream}</Connect></Response>'


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            if isinstance(value, str):
                pairs.append((key, value))
            else:
                pairs.extend((key, v) for v in value)
        return pairs
    return list(params)


def compute_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a request to ``url`` with these POST params."""
    data = url + "".join(key + value for key, value in sorted(_pairs(params)))
    # aiohttp hands over undecodable request bytes as surrogate escapes: sign the bytes received.
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8", "surrogateescape"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port (Twilio's own
    validators accept either, since a proxy may add or strip the port)."""
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    userinfo = userinfo + "@" if userinfo else ""
    variants = [url, urlunsplit(parts._replace(netloc=userinfo + host))]
    if default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{default}")))
    return list(dict.fromkeys(variants))


def validate_signature(
    auth_token: str, signature: str | None, url: str, params: Params | None = None
) -> bool:
    """True if ``signature`` is Twilio's signature of this request (constant-time comparison)."""
    if not signature or not auth_token or not signature.isascii():
        return False  # a signature is base64, so anything else is simply not one
    pairs = _pairs(params)
    expected = signature.encode("ascii")
    try:
        return any(
            hmac.compare_digest(compute_signature(auth_token, variant, pairs).encode("ascii"), expected)
            for variant in _port_variants(url)
        )
    except (UnicodeEncodeError, ValueError):
        return False  # lone surrogates that stand for no received byte; a URL urlsplit refuses
