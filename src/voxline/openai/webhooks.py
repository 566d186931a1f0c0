"""OpenAI webhooks: the Standard Webhooks signature scheme OpenAI signs them with, sans-I/O.

OpenAI signs every webhook (https://www.standardwebhooks.com/, as openai-python's
``client.webhooks.unwrap`` checks it) with three headers:

- ``webhook-id``: the delivery's id (the same on every retry of one event);
- ``webhook-timestamp``: Unix seconds when it was sent;
- ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries over
  ``"{webhook-id}.{webhook-timestamp}.{body}"``, keyed with the secret (``whsec_<base64>``: the key is
  the base64-decoded part; several entries during a secret rotation, any one matching suffices).

:class:`WebhookVerifier` checks the signature in constant time, refuses a timestamp outside the
tolerance (both ways: a replay of an old delivery, a clock far ahead) and remembers the ids it has
accepted within that window, so a captured delivery replayed inside it is refused too. It reads no
clock: the caller passes ``now`` (Unix seconds). :func:`sign` is the sender's side (the test fakes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "WebhookVerificationError",
    "WebhookVerifier",
    "decode_secret",
    "sign",
]

# openai-python's and the Standard Webhooks libraries' default tolerance.
DEFAULT_TOLERANCE_S = 300
# Seen ids are kept for the tolerance window; past this many (a flood) the oldest go first.
MAX_SEEN_IDS = 100_000
SECRET_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """A webhook delivery that must not be believed; ``reason`` says why (for logs and metrics):
    ``missing_header``, ``bad_timestamp``, ``stale``, ``bad_signature``, ``replayed``, ``bad_body``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a webhook secret: ``whsec_<base64>`` decoded (raises ValueError naming it)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("parameter 'webhook_secret' must be a non-empty string (whsec_...)")
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("parameter 'webhook_secret' is not a whsec_ secret (base64 after it)") from None
    if not key:
        raise ValueError("parameter 'webhook_secret' decodes to an empty key")
    return key


def _signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender puts on ``body`` (what OpenAI sends)."""
    key = decode_secret(secret)
    stamp = str(int(timestamp))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + _signature(key, webhook_id, stamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


class WebhookVerifier:
    """Verifies OpenAI webhook deliveries for one secret; keeps the ids accepted within the window."""

    def __init__(self, secret: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        if isinstance(tolerance_s, bool) or not isinstance(tolerance_s, int) or tolerance_s <= 0:
            raise ValueError(f"parameter 'tolerance_s' must be a positive integer, not {tolerance_s!r}")
        self._key = decode_secret(secret)
        self.tolerance_s = tolerance_s
        self._seen: OrderedDict[str, int] = OrderedDict()  # id -> its timestamp, oldest first

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any]:
        """The delivery's JSON event when it is OpenAI's, fresh and not seen before; else raises
        :class:`WebhookVerificationError`. Only a delivery that passes is remembered."""
        webhook_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        if not webhook_id or not timestamp or not signatures:
            raise WebhookVerificationError(
                "missing_header", "missing webhook-id, webhook-timestamp or webhook-signature header"
            )
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise WebhookVerificationError("bad_timestamp", f"invalid webhook-timestamp {timestamp[:20]!r}")
        sent = int(timestamp)
        if abs(now - sent) > self.tolerance_s:
            raise WebhookVerificationError(
                "stale", f"webhook-timestamp {sent} is more than {self.tolerance_s} s from now"
            )
        expected = _signature(self._key, webhook_id, timestamp, body).encode()
        matched = False
        for entry in signatures.split():
            version, _, value = entry.partition(",")
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                matched = True
        if not matched:
            raise WebhookVerificationError("bad_signature", "no webhook-signature matches the secret")
        self._forget(now)
        if webhook_id in self._seen:
            raise WebhookVerificationError("replayed", f"webhook-id {webhook_id!r} was already delivered")
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookVerificationError("bad_body", "the signed body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookVerificationError("bad_body", "the signed body is not a JSON object")
        self._seen[webhook_id] = sent
        while len(self._seen) > MAX_SEEN_IDS:
            self._seen.popitem(last=False)
        return event

    def _forget(self, now: float) -> None:
        """Drop ids whose timestamp left the window: a replay of them fails the timestamp check."""
        # Oldest first (insertion order); a later id sent a little earlier waits for the next call.
        horizon = now - self.tolerance_s
        while self._seen:
            key, sent = next(iter(self._seen.items()))
            if sent >= horizon:
                break
            del self._seen[key]
