"""REFER (RFC 3515) and its implicit subscription, sans-I/O: the pieces with no state of the core.

A transfer is a REFER inside the call's dialog: ``Refer-To`` names the target, ``Referred-By``
(RFC 3892) who asks. The REFER creates an implicit subscription to the ``refer`` event in the same
dialog; the transferee reports the outcome of its INVITE to the target in NOTIFYs whose body is a
``message/sipfrag`` (RFC 3420) holding the status line of that INVITE's response, with
``Subscription-State: active`` while it goes on and ``terminated`` at the end (RFC 6665).

Here: the sipfrag parser and builder, the ``Subscription-State`` and ``Event`` parsers, and the
records a dialog keeps for one transfer each way (``OutgoingRefer``: we referred the peer;
``IncomingRefer``: the peer referred us). ``voxline.sip.transfer`` runs them on the core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .message import SipParseError, SipRequest, parse_name_addr, reason_phrase
from .transaction import ServerNonInviteTransaction

__all__ = [
    "SIPFRAG",
    "IncomingRefer",
    "OutgoingRefer",
    "ReferError",
    "Sipfrag",
    "SubscriptionState",
    "build_sipfrag",
    "event_package",
    "parse_refer_to",
    "parse_sipfrag",
    "parse_subscription_state",
]

SIPFRAG = "message/sipfrag"
MAX_SIPFRAG_BYTES = 4096  # a status line and a few headers; more is not a sipfrag we need to read

_STATUS_LINE = re.compile(r"^SIP/2\.0[ \t]+([1-6][0-9]{2})(?:[ \t]+([^\r\n]*))?$", re.IGNORECASE)


class ReferError(ValueError):
    """A REFER, NOTIFY or body that cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Sipfrag:
    """The status line a ``message/sipfrag`` NOTIFY body reports (RFC 3515 §2.4.5)."""

    status: int
    reason: str

    @property
    def final(self) -> bool:
        return self.status >= 200


def parse_sipfrag(body: bytes) -> Sipfrag:
    """The status line at the start of a sipfrag body (the headers after it are ignored). Raises
    ``ReferError`` for an empty or oversized body, one that is not text, or a first line that is not
    a SIP/2.0 status line (RFC 3515 §2.4.5: a NOTIFY of a REFER carries a response's status line)."""
    if not body.strip():
        raise ReferError("empty sipfrag body")
    if len(body) > MAX_SIPFRAG_BYTES:
        raise ReferError(f"sipfrag body of {len(body)} bytes (more than {MAX_SIPFRAG_BYTES})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReferError("sipfrag body is not UTF-8 text") from None
    first = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    m = _STATUS_LINE.match(first)
    if m is None:
        raise ReferError(f"sipfrag does not start with a SIP/2.0 status line: {first[:60]!r}")
    status = int(m.group(1))
    reason = (m.group(2) or "").strip()
    return Sipfrag(status, "".join(c if c.isprintable() else "?" for c in reason) or reason_phrase(status))


def build_sipfrag(status: int, reason: str | None = None) -> bytes:
    """The body of a NOTIFY reporting ``status``: ``SIP/2.0 200 OK`` and CRLF."""
    if not 100 <= status <= 699:
        raise ValueError(f"status must be a SIP status 100..699, got {status}")
    text = reason or reason_phrase(status)
    text = "".join(c if c.isprintable() else "?" for c in text)[:120]
    return f"SIP/2.0 {status} {text}\r\n".encode()


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """``Subscription-State`` (RFC 6665 §8.2.3): ``active``, ``pending`` or ``terminated``, with the
    ``reason`` and ``expires`` parameters when given."""

    state: str
    reason: str | None = None
    expires: int | None = None

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"


def parse_subscription_state(value: str | None) -> SubscriptionState:
    """Parse a ``Subscription-State`` value; ``ReferError`` when it is missing or has no state. An
    unknown state is kept as it is (RFC 6665 §4.1.3: treated like ``active`` by its reader)."""
    if value is None or not value.strip():
        raise ReferError("no Subscription-State header")
    state, _, rest = value.partition(";")
    state = state.strip().lower()
    if not re.fullmatch(r"[a-z0-9.!%*_+`'~\-]+", state):
        raise ReferError(f"bad Subscription-State {value[:60]!r}")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = val.strip()
    expires = params.get("expires")
    return SubscriptionState(
        state,
        params.get("reason") or None,
        int(expires) if expires is not None and expires.isdigit() else None,
    )


def event_package(value: str | None) -> tuple[str, str | None]:
    """An ``Event`` header's package and its ``id`` parameter: ``refer;id=3`` -> ("refer", "3"); a
    missing header -> ("", None)."""
    if value is None:
        return "", None
    package, _, rest = value.partition(";")
    event_id: str | None = None
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        if key.strip().lower() == "id":
            event_id = val.strip() or None
    return package.strip().lower(), event_id


def parse_refer_to(req: SipRequest) -> str:
    """The target URI of a REFER's ``Refer-To`` (RFC 3515 §2.1: exactly one), as written (embedded
    headers such as ``?Replaces=`` kept). ``ReferError`` when it is missing, repeated or bad."""
    values = req.headers.get_all("Refer-To")
    if len(values) != 1:
        raise ReferError("no Refer-To header" if not values else "more than one Refer-To header")
    try:
        addr = parse_name_addr(values[0])
    except SipParseError as exc:
        raise ReferError(f"bad Refer-To: {exc}") from None
    if addr.uri.scheme not in ("sip", "sips", "tel"):
        raise ReferError(f"Refer-To scheme {addr.uri.scheme!r} is not sip, sips or tel")
    return str(addr.uri)


@dataclass(slots=True)
class OutgoingRefer:
    """Our REFER to the peer and its subscription: sent, ``accepted`` (a 2xx, or a NOTIFY that came
    first), ``done`` once its outcome is reported (a final sipfrag, a rejection, the timeout)."""

    cseq: int
    target: str
    deadline: float | None  # when we stop waiting for the final NOTIFY
    accepted: bool = False
    last_status: int | None = None  # of the last sipfrag (progress is reported once per status)
    done: bool = False


@dataclass(slots=True)
class IncomingRefer:
    """The peer's REFER to us: ``txn`` is answered by the application (``accept`` / ``reject``, or
    603 at ``deadline``); once accepted our NOTIFYs report the outcome until ``done``."""

    cseq: int
    target: str
    referred_by: str | None
    request: SipRequest
    txn: ServerNonInviteTransaction
    deadline: float | None
    accepted: bool = False
    done: bool = False
