"""SDES keys for SRTP (RFC 4568): the ``a=crypto:`` attribute, parsed and built, sans-I/O.

``a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session params>]``.
Supported suites: ``AES_CM_128_HMAC_SHA1_80`` and ``AES_CM_128_HMAC_SHA1_32`` (RFC 4568 §6.2), each
with a 30-byte master key (16 bytes of key, 14 of salt). A line with an MKI, several keys or session
parameters is refused (``CryptoError``, a ``NotAcceptable``: 488 when no other line is usable):
voxline keeps one key per direction for the whole call, so it does what the simple, common case
needs and says so about the rest. Keys come from ``secrets``.

``SrtpPolicy``: ``off`` (plain RTP only; an RTP/SAVP offer gets 488), ``offer`` (SRTP when the peer
offers or takes it, plain RTP otherwise), ``require`` (SRTP or no call: a plain offer gets 488).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SUITES",
    "CryptoAttribute",
    "CryptoError",
    "SrtpKeys",
    "SrtpPolicy",
    "format_crypto",
    "new_key",
    "parse_crypto",
    "parse_policy",
]

SrtpPolicy = Literal["off", "offer", "require"]
SRTP_POLICIES: tuple[SrtpPolicy, ...] = ("off", "offer", "require")

SUITES: dict[str, int] = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30}
"""Crypto suites we support, in our order of preference, with their master key + salt length."""

_TAG = re.compile(r"^[0-9]{1,9}$")
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class CryptoError(ValueError):
    """An ``a=crypto`` line we cannot use (unknown suite, bad key length, MKI...). The SDP layer
    turns an offer without a usable line into ``NotAcceptable`` (488) with these reasons."""


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto`` line: its tag, suite and master key||salt."""

    tag: int
    suite: str
    key: bytes

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise CryptoError(f"unknown crypto suite {self.suite!r} (supported: {', '.join(SUITES)})")
        if len(self.key) != SUITES[self.suite]:
            raise CryptoError(
                f"bad key length {len(self.key)} for {self.suite} ({SUITES[self.suite]} bytes expected)"
            )


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """What offer/answer agreed for one SRTP stream: the suite, our key (we protect with it) and
    theirs (we unprotect with it)."""

    suite: str
    tag: int
    local_key: bytes
    remote_key: bytes

    def __repr__(self) -> str:  # never the keys in a log line
        return f"SrtpKeys(suite={self.suite!r}, tag={self.tag})"


def new_key(suite: str = "AES_CM_128_HMAC_SHA1_80") -> bytes:
    """A fresh master key||salt for ``suite``."""
    return secrets.token_bytes(SUITES[suite])


def parse_crypto(value: str) -> CryptoAttribute:
    """The value of an ``a=crypto`` attribute (after ``crypto:``). Raises ``CryptoError`` saying why."""
    parts = value.split()
    if len(parts) < 3:
        raise CryptoError(f"a=crypto needs a tag, a suite and key parameters: {value[:80]!r}")
    tag_text, suite, key_params = parts[0], parts[1], parts[2]
    if not _TAG.match(tag_text):
        raise CryptoError(f"bad a=crypto tag {tag_text[:20]!r}")
    if suite not in SUITES:
        raise CryptoError(f"unknown crypto suite {suite[:40]!r} (supported: {', '.join(SUITES)})")
    if len(parts) > 3:
        raise CryptoError(f"a=crypto session parameters are not supported: {' '.join(parts[3:])[:60]!r}")
    if ";" in key_params:
        raise CryptoError("a=crypto with several keys is not supported")
    method, _, info = key_params.partition(":")
    if method != "inline":
        raise CryptoError(f"a=crypto key method {method[:20]!r} is not inline")
    key_text, *extras = info.split("|")
    for extra in extras:
        if ":" in extra:
            raise CryptoError("a=crypto with an MKI is not supported")
    if not _B64.match(key_text):
        raise CryptoError("a=crypto key is not base64")
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("a=crypto key is not base64") from None
    return CryptoAttribute(int(tag_text), suite, key)


def format_crypto(attr: CryptoAttribute) -> str:
    """The attribute value (after ``crypto:``) for ``attr``."""
    return f"{attr.tag} {attr.suite} inline:{base64.b64encode(attr.key).decode()}"


def usable_crypto(values: Iterable[str]) -> tuple[list[CryptoAttribute], list[str]]:
    """The lines of ``values`` we can use, in their order, and why each other one is not."""
    good: list[CryptoAttribute] = []
    reasons: list[str] = []
    for value in values:
        try:
            good.append(parse_crypto(value))
        except CryptoError as exc:
            reasons.append(str(exc))
    return good, reasons


def parse_policy(value: object, name: str = "srtp") -> SrtpPolicy:
    text = str(value).strip().lower()
    for policy in SRTP_POLICIES:
        if text == policy:
            return policy
    raise ValueError(f"{name} must be off, offer or require, not {value!r}")
