"""Registration with a SIP registrar (RFC 3261 §10), sans-I/O: one ``Registration`` per account.

Commands in: ``start(now)``, ``stop(now)``; responses in: ``receive(response, now)``; time in:
``tick(now)`` at ``next_deadline()``. Out: ``requests_to_send()`` (REGISTER requests, each to be sent
in a non-INVITE client transaction of its own to the registrar, whose final response, or the
transaction's 408, comes back through ``receive``) and ``events_received()``
(``RegistrationSucceeded``, ``RegistrationFailed``, ``RegistrationEnded``).

The rules followed: one Call-ID for every REGISTER of a registration and a CSeq that grows by one
each time (§10.2.4), To and From the address of record, the Request-URI the AOR's domain without the
user (§10.2), our Contact with an ``Expires`` header; the expiry granted is read from our own
binding in the 2xx (its ``expires`` parameter), else the response's ``Expires``, else what we asked.

What happens after the answer:

- 2xx: registered; the refresh is due at ``max(granted / 2, granted - REFRESH_MARGIN_S)`` after the
  REGISTER was sent (the margin covers a full transaction timeout, so the binding never lapses);
- 401 / 407: answered once with digest credentials (MD5 or SHA-256, ``voxline.sip.auth``); a new
  challenge to our credentials is a failure (the password is wrong) unless it says ``stale=true``;
- 423 Interval Too Brief: asked again at once with the registrar's ``Min-Expires``;
- anything else (403, 404, 5xx, the transaction's 408): a failure; tried again after a backoff that
  doubles from ``retry_base_s`` to ``retry_max_s`` (RFC 5626 §4.5's shape, with up to 50 % jitter
  off), or after the ``Retry-After`` a 503 gave when that is longer;
- ``stop``: a REGISTER with ``Expires: 0`` (and ``expires=0`` on the Contact) removes our binding;
  ``RegistrationEnded`` when it is answered (or failed: nothing more to do on shutdown).
"""

from __future__ import annotations

import logging
import random
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from .auth import DigestChallenge, DigestError, build_authorization, parse_challenge
from .events import Transport
from .message import SipParseError, SipRequest, SipResponse, SipUri, parse_name_addr, parse_uri

__all__ = [
    "REFRESH_MARGIN_S",
    "Account",
    "Registration",
    "RegistrationEnded",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "RegistrationSucceeded",
    "parse_account",
]

log = logging.getLogger("voxline.sip")

REFRESH_MARGIN_S = 32.0  # 64*T1: a refresh sent this early still ends (answer or 408) in time
_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$")


@dataclass(frozen=True, slots=True)
class Account:
    """One registration. ``aor``: the address of record, ``sip:user@registrar[:port]``;
    ``username``: the digest user (default the AOR's user); ``expires``: seconds asked for;
    ``registrar``: where REGISTERs go, ``host[:port]`` (default the AOR's host and port)."""

    aor: str
    password: str | None = None
    username: str | None = None
    expires: int = 600
    transport: Transport = "udp"
    registrar: str | None = None

    def __post_init__(self) -> None:
        uri = self.uri  # raises ValueError naming aor
        if uri.password is not None:
            raise ValueError(
                f"register: no password in the URI {uri.user}@{uri.host} (it would show in ps and logs): "
                "give it in VOXLINE_REGISTER_PASSWORD or the account's TOML table"
            )
        if not uri.user or not _USER.match(uri.user):
            raise ValueError(f"register: {self.aor!r} needs a user part (sip:user@registrar)")
        if isinstance(self.expires, bool) or not isinstance(self.expires, int) or self.expires < 1:
            raise ValueError(
                f"register: expires must be a whole number of seconds >= 1, not {self.expires!r}"
            )
        if self.transport not in ("udp", "tcp"):
            raise ValueError(f"register: transport must be udp or tcp, not {self.transport!r}")
        if self.username is not None and (not self.username or '"' in self.username):
            raise ValueError(f"register: username {self.username!r} is not usable")

    @property
    def uri(self) -> SipUri:
        try:
            uri = parse_uri(self.aor)
        except SipParseError as exc:
            raise ValueError(f"register: {self.aor!r} is not a SIP URI: {exc}") from None
        if uri.scheme != "sip":
            raise ValueError(f"register: {self.aor!r} must be a sip: URI")
        return uri

    @property
    def user(self) -> str:
        return self.uri.user or ""

    @property
    def target(self) -> tuple[str, int]:
        """(host, port) of the registrar (a name is resolved by the I/O layer)."""
        if self.registrar:
            host, sep, port = self.registrar.rpartition(":")
            if sep and port.isdigit() and not host.endswith(":"):
                return host.strip("[]"), int(port)
            return self.registrar.strip("[]"), 5060
        uri = self.uri
        return uri.host, uri.port or 5060


def parse_account(value: str, password: str | None = None, **options: object) -> Account:
    """``sip:user@host[:port][;transport=tcp][;expires=N]`` (a ``--register`` value) as an Account."""
    text = value.strip()
    scheme, colon, rest = text.partition(":")
    if colon and "@" not in scheme and scheme.lower() != "sip" and not rest[:1].isdigit():
        raise ValueError(f"register: {value!r} must be a sip: URI")
    if not text.startswith("sip:"):
        text = "sip:" + text
    base, *params = text.split(";")
    extra: dict[str, object] = {}
    for param in params:
        name, _, val = param.partition("=")
        name = name.strip().lower()
        if name == "transport":
            extra["transport"] = val.strip().lower()
        elif name == "expires":
            if not val.strip().isdigit():
                raise ValueError(f"register: expires must be a number of seconds, not {val!r}")
            extra["expires"] = int(val)
        elif name in ("user", "username"):
            extra["username"] = val.strip()
        else:
            raise ValueError(
                f"register: unknown parameter {name!r} in {value!r} (transport, expires, username)"
            )
    extra.update(options)
    return Account(base, password, **extra)  # type: ignore[arg-type]


class RegistrationState(StrEnum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"  # waiting to try again
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True, slots=True)
class RegistrationSucceeded:
    aor: str
    expires: int  # seconds granted
    contact: str


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    aor: str
    status: int
    reason: str
    retry_in: float | None  # seconds until the next try (None: not tried again)


@dataclass(frozen=True, slots=True)
class RegistrationEnded:
    """Our binding is gone (unregistered), or the unregister failed with ``status``."""

    aor: str
    status: int


RegistrationEvent = RegistrationSucceeded | RegistrationFailed | RegistrationEnded


@dataclass(slots=True)
class _Attempt:
    """The REGISTER in flight."""

    cseq: int
    expires: int
    sent_at: float
    answered: set[str] = field(default_factory=set)  # nonces we have answered


class Registration:
    """One account's registration (see the module docstring)."""

    def __init__(
        self,
        account: Account,
        *,
        local_host: str,
        local_port: int,
        user_agent: str = "voxline",
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < retry_base_s <= retry_max_s:
            raise ValueError(
                f"retry_base_s must be > 0 and <= retry_max_s, got {retry_base_s}, {retry_max_s}"
            )
        self.account = account
        self.local_host = local_host
        self.local_port = local_port
        self.user_agent = user_agent
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._rng = rng or random.Random()
        self.state = RegistrationState.IDLE
        host = f"[{local_host}]" if ":" in local_host else local_host
        self.call_id = f"{secrets.token_hex(12)}@{host}"
        self._from_tag = secrets.token_hex(6)
        self._cseq = secrets.randbelow(2**16) + 1
        self._expires = account.expires
        self.granted: int | None = None
        self._attempt: _Attempt | None = None
        self._wake_at: float | None = None  # refresh or retry
        self._failures = 0
        self._out: list[SipRequest] = []
        self._events: list[RegistrationEvent] = []
        suffix = ";transport=tcp" if account.transport == "tcp" else ""
        self.contact_uri = f"sip:{account.user}@{host}:{local_port}{suffix}"

    # ------------------------------------------------------------------------------------ outputs

    def requests_to_send(self) -> list[SipRequest]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[RegistrationEvent]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When ``tick`` must run (a refresh or a retry), or None."""
        return self._wake_at

    @property
    def expires(self) -> int:
        """The expiry we ask for now (the account's, or a registrar's Min-Expires after a 423)."""
        return self._expires

    @property
    def refresh_at(self) -> float | None:
        return self._wake_at if self.state is RegistrationState.REGISTERED else None

    # ------------------------------------------------------------------------------------ commands

    def start(self, now: float) -> None:
        if self.state in (RegistrationState.IDLE, RegistrationState.UNREGISTERED, RegistrationState.FAILED):
            self._send(now, self._expires)

    def stop(self, now: float) -> bool:
        """Remove our binding (REGISTER with Expires: 0). False when there is none to remove (nothing
        is sent; no ``RegistrationEnded`` follows)."""
        self._wake_at = None
        if self.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING):
            # Registering: the REGISTER in flight may have made a binding; remove it too.
            self.state = RegistrationState.UNREGISTERING
            self._send(now, 0)
            return True
        if self.state is not RegistrationState.UNREGISTERING:
            self.state = RegistrationState.UNREGISTERED
            self._attempt = None
        return self.state is RegistrationState.UNREGISTERING

    def tick(self, now: float) -> None:
        if self._wake_at is not None and now >= self._wake_at:
            self._wake_at = None
            if self.state in (RegistrationState.REGISTERED, RegistrationState.FAILED):
                self._send(now, self._expires)

    # ------------------------------------------------------------------------------------ responses

    def receive(self, resp: SipResponse, now: float) -> None:
        """The response to our REGISTER (or the transaction's 408). Stale ones are ignored."""
        attempt = self._attempt
        try:
            cseq, method = resp.cseq
            call_id = resp.call_id
        except SipParseError:
            return
        if attempt is None or method != "REGISTER" or cseq != attempt.cseq or call_id != self.call_id:
            return
        status = resp.status
        if status < 200:
            return
        self._attempt = None
        if self.state is RegistrationState.UNREGISTERING:
            if status in (401, 407) and self._answer_challenge(resp, attempt, now):
                return
            self.state = RegistrationState.UNREGISTERED
            self.granted = None
            self._events.append(RegistrationEnded(self.account.aor, status))
            return
        if 200 <= status < 300:
            granted = self._granted(resp, attempt.expires)
            if granted < 1:
                # Our binding removed in the answer to adding it: retrying at once would be a loop.
                self._fail(resp, now, "the registrar granted no time (expires=0)")
                return
            self._failures = 0
            self.granted = granted
            self.state = RegistrationState.REGISTERED
            self._wake_at = attempt.sent_at + max(granted / 2, granted - REFRESH_MARGIN_S)
            self._events.append(RegistrationSucceeded(self.account.aor, granted, self.contact_uri))
            return
        if status in (401, 407) and self._answer_challenge(resp, attempt, now):
            return
        if status == 423:
            minimum = _int_header(resp, "Min-Expires")
            if minimum is not None and minimum > attempt.expires:
                log.info("registrar of %s wants expires >= %d s", self.account.aor, minimum)
                self._expires = minimum
                self._send(now, minimum)
                return
        self._fail(resp, now)

    # ------------------------------------------------------------------------------------ internals

    def _fail(self, resp: SipResponse, now: float, reason: str | None = None) -> None:
        status = resp.status
        if reason is None and status in (401, 407):
            reason = "wrong credentials" if self.account.password else "credentials needed (no password set)"
        elif reason is None:
            reason = resp.reason or str(status)
        delay = min(self.retry_max_s, self.retry_base_s * 2**self._failures)
        delay *= 1 - 0.5 * self._rng.random()  # jitter: many accounts must not retry in step
        retry_after = _int_header(resp, "Retry-After") if status == 503 else None
        if retry_after is not None:
            delay = max(delay, float(min(retry_after, int(self.retry_max_s))))
        self._failures += 1
        self.state = RegistrationState.FAILED
        self.granted = None
        self._wake_at = now + delay
        self._events.append(RegistrationFailed(self.account.aor, status, reason, delay))

    def _answer_challenge(self, resp: SipResponse, attempt: _Attempt, now: float) -> bool:
        account = self.account
        if account.password is None:
            return False
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge: DigestChallenge | None = None
        for value in resp.headers.get_all(header):
            try:
                challenge = parse_challenge(value)
                break
            except DigestError as exc:
                log.info("registrar of %s: unusable challenge: %s", account.aor, exc)
        if challenge is None:
            return False
        if challenge.nonce in attempt.answered or (attempt.answered and not challenge.stale):
            return False  # our credentials were refused
        answered = {*attempt.answered, challenge.nonce}
        authorization = build_authorization(
            challenge,
            method="REGISTER",
            uri=self._request_uri(),
            username=account.username or account.user,
            password=account.password,
            cnonce=secrets.token_hex(8),
        )
        name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        self._send(now, attempt.expires, auth=(name, authorization))
        assert self._attempt is not None
        self._attempt.answered = answered
        return True

    def _granted(self, resp: SipResponse, asked: int) -> int:
        """The expiry of our binding in a 2xx (§10.2.4)."""
        ours = parse_uri(self.contact_uri)
        for value in resp.headers.get_all("Contact"):
            for entry in _split_contacts(value):
                try:
                    addr = parse_name_addr(entry)
                except SipParseError:
                    continue
                uri = addr.uri
                if (uri.user, uri.host.lower(), uri.port) != (ours.user, ours.host.lower(), ours.port):
                    continue
                expires = addr.params.get("expires")
                if expires is not None and expires.isdigit():
                    return int(expires)
        header = _int_header(resp, "Expires")
        return header if header is not None else asked

    def _request_uri(self) -> str:
        uri = self.account.uri
        port = f":{uri.port}" if uri.port else ""
        host = f"[{uri.host}]" if ":" in uri.host else uri.host
        suffix = ";transport=tcp" if self.account.transport == "tcp" else ""
        return f"sip:{host}{port}{suffix}"

    def _send(self, now: float, expires: int, auth: tuple[str, str] | None = None) -> None:
        if expires and self.state is not RegistrationState.UNREGISTERING:
            self.state = RegistrationState.REGISTERING
        self._cseq += 1
        account = self.account
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        aor = f"<sip:{account.user}@{_hostport(account.uri)}>"
        req = SipRequest(method="REGISTER", uri=self._request_uri())
        branch = "z9hG4bK" + secrets.token_hex(8)
        req.headers.add(
            "Via", f"SIP/2.0/{account.transport.upper()} {host}:{self.local_port};branch={branch};rport"
        )
        req.headers.add("Max-Forwards", "70")
        req.headers.add("From", f"{aor};tag={self._from_tag}")
        req.headers.add("To", aor)
        req.headers.add("Call-ID", self.call_id)
        req.headers.add("CSeq", f"{self._cseq} REGISTER")
        req.headers.add("Contact", f"<{self.contact_uri}>" + (";expires=0" if expires == 0 else ""))
        req.headers.add("Expires", str(expires))
        if auth is not None:
            req.headers.add(*auth)
        req.headers.add("User-Agent", self.user_agent)
        req.headers.add("Content-Length", "0")
        self._attempt = _Attempt(self._cseq, expires, now)
        self._out.append(req)


def _hostport(uri: SipUri) -> str:
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    return f"{host}:{uri.port}" if uri.port else host


def _int_header(resp: SipResponse, name: str) -> int | None:
    value = resp.headers.get(name)
    if value is None:
        return None
    text = value.split(";", 1)[0].split("(", 1)[0].strip()
    return int(text) if text.isdigit() else None


def _split_contacts(value: str) -> list[str]:
    """A Contact value's entries (commas inside <...> or quotes are not separators)."""
    entries: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            entries.append(value[start:i].strip())
            start = i + 1
    entries.append(value[start:].strip())
    return [e for e in entries if e]
