"""``SipConfig``: the settings of one SIP user agent (``UserAgentCore``), validated when made.

The core reads them as it goes; nothing changes them once the core exists (what changes at run time
is a command of the core, such as ``UserAgentCore.stop_accepting``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from .access import DigestVerifier, RateLimiter
from .auth import ALGORITHMS
from .crypto import SrtpPolicy, parse_policy
from .message import MAX_MESSAGE_BYTES
from .transaction import Timers

__all__ = ["Network", "SipConfig", "source_networks"]


@dataclass(slots=True)
class SipConfig:
    """Settings of one user agent. ``host``/``port`` are what we advertise in Via, Contact and SDP.

    ``allow_sources``: the IP addresses and CIDR networks (IPv4 and IPv6, e.g. ``"203.0.113.0/24"``,
    ``"2001:db8::1"``) that may send requests outside a dialog; None lets anyone in, ``()`` nobody
    (see ``voxline.sip.core`` for what is and is not checked). A single string is one entry.
    ``trusted_proxies``: IPs / CIDRs of SIP proxies in front (Kamailio, OpenSIPS): for a request
    from one of them the caller's address is the one the proxy received it from (its Via below the
    proxy's: ``received``/``rport`` or sent-by), and that address is what ``allow_sources`` checks
    (the proxies themselves may always send). None: no proxy is trusted.
    ``auth_users``: user -> password; when set, a new INVITE must carry digest credentials of one of
    them (401 challenge, 403 on wrong ones; see ``voxline.sip.access``) in ``auth_realm``, offering
    ``auth_algorithms`` in that order (clients that read only the first challenge take that one).
    ``rate_limit``: new INVITEs a second per source (the caller's address, as ``allow_sources`` sees
    it), bursts of ``rate_burst`` (default max(2, rate)); beyond, 503 with ``Retry-After``. None: off.
    ``rate_exempt``: IPs / CIDRs the rate limit does not apply to (registrars: every call they
    deliver comes from them; trusted proxies are exempt anyway).
    ``alerting_timeout``: seconds an incoming call may stay unanswered before it is refused with 480
    (None: forever). ``max_message_bytes``: larger messages are refused with 513.
    ``srtp``: ``off``, ``offer`` or ``require`` (``voxline.sip.crypto``) for every call; None: offer
    on calls over TLS (their SDES keys travel encrypted), off over UDP and TCP. ``tls_port``: the
    port of our TLS listener, advertised in Via and Contact of calls over TLS (None: no listener).
    """

    host: str = "127.0.0.1"
    port: int = 5060
    user: str = "voxline"
    user_agent: str = "voxline"
    max_calls: int = 100
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf_payload_type: int = 101
    timers: Timers = field(default_factory=Timers)
    invite_timeout: float = 120.0  # outbound: give up (CANCEL) when unanswered this long
    # Inbound: refused (480) when neither answered nor rejected this long. 60 s is what callers and
    # carriers expect of a ringing phone; a call the application forgot must not hold a slot forever.
    alerting_timeout: float | None = 60.0
    allow_sources: Sequence[str] | None = None
    trusted_proxies: Sequence[str] | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES
    auth_users: Mapping[str, str] | None = None
    auth_realm: str = "voxline"
    auth_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    rate_limit: float | None = None
    rate_burst: float | None = None
    rate_exempt: Sequence[str] = ()
    srtp: SrtpPolicy | None = None
    tls_port: int | None = None

    def srtp_for(self, transport: str) -> SrtpPolicy:
        """The SRTP policy of a call signalled over ``transport``."""
        if self.srtp is not None:
            return self.srtp
        return "offer" if transport == "tls" else "off"

    def __post_init__(self) -> None:
        if self.srtp is not None:
            self.srtp = parse_policy(self.srtp)
        if self.allow_sources is not None:
            entries = (self.allow_sources,) if isinstance(self.allow_sources, str) else self.allow_sources
            self.allow_sources = tuple(str(e) if not isinstance(e, str) else e for e in entries)
            source_networks(self.allow_sources)  # validates: ValueError naming the bad entry
        if self.trusted_proxies is not None:
            entries = (
                (self.trusted_proxies,) if isinstance(self.trusted_proxies, str) else self.trusted_proxies
            )
            self.trusted_proxies = tuple(str(e) if not isinstance(e, str) else e for e in entries)
            source_networks(self.trusted_proxies, "trusted_proxies")
        if self.alerting_timeout is not None and not self.alerting_timeout > 0:
            raise ValueError(f"alerting_timeout must be > 0 seconds or None, got {self.alerting_timeout}")
        if not 1024 <= self.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(
                f"max_message_bytes must be 1024..{MAX_MESSAGE_BYTES}, got {self.max_message_bytes}"
            )
        if self.max_calls < 0:
            raise ValueError(f"max_calls must be >= 0, got {self.max_calls}")
        if not self.codecs or any(c not in ("PCMU", "PCMA") for c in self.codecs):
            raise ValueError(f"codecs must be a non-empty subset of ('PCMU', 'PCMA'), got {self.codecs}")
        if not 96 <= self.dtmf_payload_type <= 127:
            raise ValueError(f"dtmf_payload_type must be dynamic (96..127), got {self.dtmf_payload_type}")
        self.auth_algorithms = tuple(str(a).upper() for a in self.auth_algorithms)
        if not self.auth_algorithms or any(a not in ALGORITHMS for a in self.auth_algorithms):
            raise ValueError(f"sip_auth_algorithms must be some of {ALGORITHMS}, got {self.auth_algorithms}")
        if self.auth_users is not None:
            DigestVerifier(
                self.auth_users, self.auth_realm, algorithms=self.auth_algorithms
            )  # validates: ValueError naming sip_auth
        self.rate_exempt = tuple(self.rate_exempt)
        source_networks(self.rate_exempt, "rate_exempt")
        if self.rate_limit is not None:
            RateLimiter(self.rate_limit, self.rate_burst)
        if self.invite_timeout <= 0:
            raise ValueError(f"invite_timeout must be > 0, got {self.invite_timeout}")


Network = IPv4Network | IPv6Network


def source_networks(entries: Iterable[str], name: str = "allow_sources") -> tuple[Network, ...]:
    """Parse ``allow_sources`` (or ``name``) entries (IPs or CIDRs). Raises ValueError naming the
    setting and the bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"{name}: {entry!r} is not an IP address or CIDR network (e.g. 203.0.113.7, "
                "198.51.100.0/24, 2001:db8::/32)"
            ) from None
    return tuple(networks)
