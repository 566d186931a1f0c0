"""HTTP Digest authentication for the UAC side (RFC 2617, RFC 7616, RFC 3261 §22): MD5 and SHA-256,
with or without ``qop=auth``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

__all__ = [
    "ALGORITHMS",
    "DigestChallenge",
    "DigestError",
    "build_authorization",
    "digest_response",
    "parse_challenge",
    "parse_digest_params",
]

_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
ALGORITHMS = tuple(_ALGORITHMS)  # what we answer and verify


class DigestError(ValueError):
    """A challenge we cannot answer (not Digest, unknown algorithm or qop, missing realm/nonce)."""


@dataclass(slots=True)
class DigestChallenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False


_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[m.group(1).lower()] = value
        pos = m.end()
    return out


def parse_digest_params(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest ...`` header value (names lower-cased, quotes removed), or None
    when the scheme is not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    return _params(rest)


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate value. Raises ``DigestError``."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    p = _params(rest)
    if "realm" not in p or "nonce" not in p:
        raise DigestError("challenge without realm or nonce")
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm not in _ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    qop = [q.strip().lower() for q in p["qop"].split(",")] if "qop" in p else []
    if qop and "auth" not in qop:
        raise DigestError(f"unsupported qop {p['qop']!r} (only auth)")
    return DigestChallenge(
        p["realm"], p["nonce"], algorithm, qop, p.get("opaque"), p.get("stale", "").lower() == "true"
    )


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    """The ``response`` value (RFC 2617 §3.2.2.1; RFC 7616 §3.4.1)."""
    fn = _ALGORITHMS[algorithm.upper()]

    def h(s: str) -> str:
        return fn(s.encode()).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def build_authorization(
    challenge: DigestChallenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The Authorization / Proxy-Authorization header value answering ``challenge``."""
    qop = "auth" if "auth" in challenge.qop else None
    nc_text = f"{nc:08x}"
    response = digest_response(
        username=username,
        password=password,
        realm=challenge.realm,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)
