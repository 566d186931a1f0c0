"""``voxline run``: the runtime that answers calls with a scenario.

Inbound SIP calls (UDP and TCP) and carrier WebSocket streams (Twilio Media Streams, the VoxEngine
WebSocket format) each start a call session: the scenario file runs with fresh globals and gets
``AppEvents.CallAlerting`` with the call. Sessions are isolated: a scenario error ends its own
session only. Over ``max_calls`` concurrent sessions, SIP calls get 503 and carrier streams are
refused. On SIGTERM the runtime stops taking calls, lets running sessions finish within
``grace_s``, then terminates the rest.

Health (docs/observability.md "Health"): ``GET /livez`` is 200 while the process serves HTTP;
``GET /readyz`` (and ``/health``, the same) is 200 when the node should get calls and 503 with the
reasons and ``Retry-After`` when it is draining, at ``max_calls`` or its Realtime connects keep
failing (:mod:`voxline.runtime.readiness`); SIP ``OPTIONS`` answers 200 or 503 the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._tasks import background
from ..carriers.endpoint import CarrierConfig, CarrierEndpoints
from ..carriers.http_guard import GuardedSite, HttpGuard, HttpListener, guard_middleware, start_http_site
from ..carriers.stream import CarrierStream
from ..logs import log_ids, mask_secret, parse_log_format, parse_log_level
from ..media.clock import AsyncioMediaClock
from ..openai.events import RealtimeAPIEvents
from ..openai.realtime import RealtimeAPIClient
from ..sip.config import SipConfig
from ..sip.crypto import parse_policy
from ..sip.endpoint import SipCallLeg, SipEndpoint
from ..sip.events import CallDisconnected, CallFailed
from ..sip.register import RegistrationEvent, RegistrationFailed, RegistrationSucceeded
from ..sip.registrations import Registrations, resolve_registrar
from ..sip.tls import SipTls
from ..telemetry import TELEMETRY
from .accounting import Accounting, otel_requested
from .call import Call
from .context import current_session
from .events import AppEvents, CallEvents
from .legs import CarrierLeg, SipLeg, WebRtcLeg
from .readiness import Readiness
from .session import Scenario, Secrets, Session
from .sip_options import parse_rate, parse_register, parse_sip_auth, resolve_passwords
from .webrtc_watch import WebRtcWatch

if TYPE_CHECKING:
    from ..observability.otel import CallTracing
    from ..openai.calls import OpenAICall
    from ..webrtc.endpoint import WebRtcEndpoint
    from ..webrtc.peer import WebRtcPeer
    from .openai_sip import OpenAIWebhookEndpoint

log = logging.getLogger("voxline.runtime")


LOOPBACK_SOURCES = ("127.0.0.0/8", "::1")
"""Who may send INVITEs by default: this machine only (``--sip-allow`` opens it)."""

OPEN_RATE_LIMIT = 5.0
"""New INVITEs a second per source when ``sip_allow`` is ``any`` and no ``sip_rate_limit`` is given."""


def parse_hostport(value: str, name: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``); the host an IP address or a name this machine resolves."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{name} must be HOST:PORT, not {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ip_address(host)
    except ValueError:
        if all(part.isdigit() for part in host.split(".")):
            raise ValueError(f"{name}: {host!r} is not a valid IPv4 address") from None
        try:
            socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ValueError(f"{name}: cannot resolve host {host!r}: {reason}") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) only ever means this machine."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {number}")
    return number


def _number(name: str, value: Any, minimum: float | None = None, *, exclusive: bool = False) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if minimum is not None and (number <= minimum if exclusive else number < minimum):
        raise ValueError(f"{name} must be {'>' if exclusive else '>='} {minimum:g}, not {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def parse_sources(value: Any, name: str = "sip_allow") -> tuple[str, ...] | None:
    """An allowlist of IPs/CIDRs (comma-separated text or a list); ``any`` means no allowlist."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    entries = tuple(str(item).strip() for item in items if str(item).strip())
    if [e.lower() for e in entries] == ["any"]:
        return None
    if not entries:
        raise ValueError(f"{name} must list IP addresses or networks (CIDR), or be 'any'")
    for entry in entries:
        try:
            ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{name}: {entry!r} is not an IP address or network (CIDR)") from None
    return entries


def parse_proxies(value: Any, name: str = "sip_trusted_proxy") -> tuple[str, ...] | None:
    """Trusted proxies' IPs/CIDRs (comma-separated text or a list); empty or ``none``: none. Never
    ``any``: believing everyone's Via would let any caller choose the address it is checked by."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    entries = [str(item).strip() for item in items if str(item).strip()]
    if not entries or [e.lower() for e in entries] in (["none"], ["off"]):
        return None
    if any(entry.lower() == "any" for entry in entries):
        raise ValueError(f"{name} must list the proxies' IP addresses or networks (CIDR), not 'any'")
    return parse_sources(entries, name)


def parse_workers(value: Any) -> int:
    """``workers``: a number >= 1, or ``auto`` (the cores this process may run on)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return _integer("workers", value, 1)


def parse_port_range(value: Any) -> tuple[int, int] | None:
    """``rtp_ports``: ``LOW-HIGH`` (or a pair), 1024 <= LOW < HIGH <= 65535; None/off: any port."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "any")):
        return None
    if isinstance(value, str):
        low_text, sep, high_text = value.strip().partition("-")
        if not sep or not low_text.strip().isdigit() or not high_text.strip().isdigit():
            raise ValueError(f"rtp_ports must be LOW-HIGH (e.g. 20000-29999), not {value!r}")
        low, high = int(low_text), int(high_text)
    else:
        try:
            low, high = (_integer("rtp_ports", v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"rtp_ports must be LOW-HIGH (e.g. 20000-29999), not {value!r}") from None
    if not 1024 <= low < high <= 65535:
        raise ValueError(f"rtp_ports must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535, not {value!r}")
    return (low, high)


@dataclass
class RuntimeConfig:
    """Where to listen, who may call, the limits. Precedence: flags, then ``VOXLINE_*`` environment
    variables, then the ``[run]`` table of a TOML config file, then these defaults.

    The defaults are safe for a laptop: both listeners on 127.0.0.1, SIP INVITEs only from this
    machine. A listener on another address needs access control: ``sip_allow`` (the trunk's or
    PBX's addresses, or ``any``) for SIP, ``token`` or ``twilio_auth_token`` (or an explicit
    ``open_media``) for the media WebSockets; without it ``voxline run`` refuses to start.
    """

    scenario: str = ""
    backend: str = "openai"  # where Realtime clients without a base_url connect: OpenAI or "local"
    event_loop: str = "asyncio"  # or "uvloop" (the voxline[uvloop] extra)
    sip: str | None = "127.0.0.1:5060"
    http: str | None = "127.0.0.1:8080"
    sip_transports: tuple[str, ...] = ("udp", "tcp")
    sip_allow: tuple[str, ...] | None = LOOPBACK_SOURCES
    # SIP proxies in front (Kamailio): their callers' addresses come from their Via headers, and
    # sip_allow checks those (see voxline.sip.core). None: no proxy is trusted.
    sip_trusted_proxy: tuple[str, ...] | None = None
    # SIP over TLS (docs/sip.md "TLS and SRTP"): HOST:PORT of the TLS listener (None: none), its PEM
    # certificate and key, the CA file outbound TLS calls trust (None: the system's), and the SRTP
    # policy of calls: off / offer / require (None: offer on TLS, off on UDP and TCP).
    sip_tls: str | None = None
    sip_cert: str | None = None
    sip_key: str | None = None
    sip_tls_ca: str | None = None
    srtp: str | None = None
    rtp_host: str | None = None
    max_calls: int = 100
    grace_s: float = 30.0
    idle_session_s: float = 5.0
    rtp_timeout_s: float | None = 30.0
    secrets_file: str | None = None
    token: str | None = None
    twilio_auth_token: str | None = None
    public_url: str | None = None
    # Reverse proxies (IPs/CIDRs) whose X-Forwarded-Proto/-Host are believed (Twilio signatures).
    http_trusted_proxies: tuple[str, ...] = ()
    open_media: bool = False  # media WebSockets without a token on a non-loopback address
    twilio_path: str = "/twilio"
    media_path: str = "/media"
    # WebRTC signaling (docs/webrtc.md): the WHIP-style endpoint and /playground on the HTTP listener.
    webrtc_path: str = "/webrtc"
    webrtc_ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs for calls from other networks
    mark_interval_ms: int = 100  # how often Twilio is asked to confirm playout (mark messages)
    twilio_batch_ms: int = 100  # model audio per Twilio media message (sent as the previous one ends)
    trace: bool = False
    log_format: str = "text"  # or "json": one object per line
    log_level: str | None = None  # debug/info/warning/error; None: from -v (warning without)
    # Not ready (/readyz, OPTIONS 503) after this many Realtime connects failed in a row (0: never),
    # ready again for a try this many seconds after the last failure.
    ready_model_failures: int = 3
    ready_model_retry_s: float = 30.0
    # Prometheus /metrics: "on" (the HTTP listener), "off", or HOST:PORT (a listener of its own).
    # None: on when the HTTP listener is set and on loopback (or open_metrics), else off.
    metrics: str | None = None
    open_metrics: bool = False  # /metrics on a non-loopback address (it tells call volumes and errors)
    call_log: str | None = None  # a directory: one JSON quality record per call
    otel: bool = False  # OpenTelemetry traces (the voxline[otel] extra), exported as OTEL_* says
    # Worker processes (docs/deploy.md "One machine, every core"): 1 runs here; N > 1 a supervisor,
    # its SIP front and N workers; "auto" one per usable core.
    workers: int = 1
    rtp_ports: tuple[int, int] | None = None  # "LOW-HIGH": where RTP sockets bind (None: any port)
    http_reuse_port: bool = False  # SO_REUSEPORT on the HTTP listener (the supervisor sets it for workers)
    # OpenAI-hosted SIP calls (docs/openai-sip.md): the project's webhook secret (whsec_...) turns the
    # webhook endpoint on, at this path of the HTTP listener. None: off.
    openai_webhook_secret: str | None = None
    openai_webhook_path: str = "/openai/webhook"
    # Registration (voxline.sip.register): accounts, the password of those without one of their own
    # (best from VOXLINE_REGISTER_PASSWORD or the secrets file), the first retry's delay.
    register: Any = ()
    register_password: str | None = None
    register_retry_s: float = 30.0
    # Inbound access control (voxline.sip.access): digest users for new INVITEs, their realm, and
    # new INVITEs a second per source (auto: OPEN_RATE_LIMIT when sip_allow is any, else off).
    sip_auth: Any = None
    sip_auth_realm: str = "voxline"
    sip_auth_algorithms: Any = ("SHA-256", "MD5")  # offered in this order (sipp 3.6 reads only the first)
    sip_rate_limit: Any = None
    sip_rate_burst: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls, flags: Mapping[str, Any], env: Mapping[str, str] | None = None, config_file: str | None = None
    ) -> RuntimeConfig:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if config_file:
            try:
                data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"config file {config_file}: {exc}") from None
            table = data.get("run", data)
            if not isinstance(table, dict):
                raise ValueError(f"config file {config_file}: [run] must be a table")
            values.update(table)
        names = {f.name for f in fields(cls)} - {"extra"}
        for name in names:
            key = f"VOXLINE_{name.upper()}"
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in flags.items() if v is not None})
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        config = cls(**values)
        config._normalize()
        return config

    def _normalize(self) -> None:
        self.backend = str(self.backend).strip().lower()
        if self.backend not in ("openai", "local"):
            raise ValueError(f"backend must be 'openai' or 'local', not {self.backend!r}")
        self.event_loop = str(self.event_loop).strip().lower()
        if self.event_loop not in ("asyncio", "uvloop"):
            raise ValueError(f"event_loop must be 'asyncio' or 'uvloop', not {self.event_loop!r}")
        for name in ("sip", "http"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "no"):
                setattr(self, name, None)
            elif value is not None:
                parse_hostport(str(value), name)
        if self.sip is None and self.http is None:
            raise ValueError("nothing to listen on: sip and http are both off")
        self.trace = _flag("trace", self.trace)
        self.log_format = parse_log_format(self.log_format)
        if self.log_level is not None:
            self.log_level = parse_log_level(self.log_level)
        self.otel = _flag("otel", self.otel)
        if self.call_log is not None:
            text = str(self.call_log).strip()
            self.call_log = None if text.lower() in ("", "off", "none") else text
        self.open_media = _flag("open_media", self.open_media)
        self.max_calls = _integer("max_calls", self.max_calls, 1)
        self.ready_model_failures = _integer("ready_model_failures", self.ready_model_failures, 0)
        self.ready_model_retry_s = _number("ready_model_retry_s", self.ready_model_retry_s, 0, exclusive=True)
        self.mark_interval_ms = _integer("mark_interval_ms", self.mark_interval_ms)
        self.twilio_batch_ms = _integer("twilio_batch_ms", self.twilio_batch_ms)
        # Their ranges are the carrier endpoints' to check; check them now, not at the first call.
        CarrierConfig(mark_interval_ms=self.mark_interval_ms, twilio_batch_ms=self.twilio_batch_ms)
        self.grace_s = _number("grace_s", self.grace_s, 0)
        self.idle_session_s = _number("idle_session_s", self.idle_session_s, 0)
        if self.rtp_timeout_s is not None and str(self.rtp_timeout_s).strip().lower() not in ("off", "none"):
            self.rtp_timeout_s = _number("rtp_timeout_s", self.rtp_timeout_s, 0, exclusive=True)
        else:
            self.rtp_timeout_s = None
        if isinstance(self.sip_transports, str):
            self.sip_transports = tuple(t.strip() for t in self.sip_transports.split(",") if t.strip())
        self.sip_transports = tuple(self.sip_transports)
        if not self.sip_transports or any(t not in ("udp", "tcp") for t in self.sip_transports):
            raise ValueError(f"sip_transports must be udp, tcp or both, not {self.sip_transports!r}")
        self.sip_allow = parse_sources(self.sip_allow)
        self.sip_trusted_proxy = parse_proxies(self.sip_trusted_proxy)
        self._normalize_tls()
        # The same rule for HTTP proxies (X-Forwarded-* for Twilio signatures); none: ().
        self.http_trusted_proxies = parse_proxies(self.http_trusted_proxies, "http_trusted_proxies") or ()
        if self.rtp_host is not None:
            parse_hostport(f"{self.rtp_host}:0", "rtp_host")
        self.open_metrics = _flag("open_metrics", self.open_metrics)
        self.workers = parse_workers(self.workers)
        self.rtp_ports = parse_port_range(self.rtp_ports)
        self.http_reuse_port = _flag("http_reuse_port", self.http_reuse_port)
        self._normalize_sip_access()
        if self.sip_tls is not None and self.workers > 1:
            raise ValueError(
                "sip_tls: SIP over TLS runs in one process; it does not work with workers > 1 yet"
            )
        self._normalize_openai_webhook()
        if isinstance(self.webrtc_ice_servers, str):
            urls = self.webrtc_ice_servers.split(",")
            self.webrtc_ice_servers = tuple(u.strip() for u in urls if u.strip())
        self.webrtc_ice_servers = tuple(self.webrtc_ice_servers)
        path = str(self.webrtc_path)
        if not path.startswith("/") or path.endswith("/") or len(path) < 2:
            raise ValueError(f"webrtc_path must start with / and not end with one, not {path!r}")
        self.webrtc_path = path
        for url in self.webrtc_ice_servers:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"webrtc_ice_servers: {url!r} is not a stun:, turn: or turns: URL")
        self._check_exposure()
        self._normalize_metrics()

    def _normalize_tls(self) -> None:
        if isinstance(self.sip_tls, str) and self.sip_tls.strip().lower() in ("", "off", "none", "no"):
            self.sip_tls = None
        if self.srtp is not None:
            self.srtp = parse_policy(self.srtp)
        if self.sip_tls is None:
            if self.sip_cert or self.sip_key:
                raise ValueError("sip_cert / sip_key are for the TLS listener: give sip_tls HOST:PORT too")
            self.sip_tls_settings()  # sip_tls_ca exists, or a ValueError names it
            return
        if self.sip is None:
            raise ValueError("sip_tls needs the SIP listener (sip HOST:PORT) it runs beside")
        parse_hostport(str(self.sip_tls), "sip_tls")
        self.sip_tls_settings()  # the files exist, or a ValueError names the one that does not

    def sip_tls_settings(self) -> SipTls:
        """The ``SipTls`` of ``sip_tls`` / ``sip_cert`` / ``sip_key`` / ``sip_tls_ca``. Without
        ``sip_tls`` there is no listener, but outbound ``sips:`` calls still work (verified)."""
        if self.sip_tls is None:
            return SipTls(port=None, ca_file=self.sip_tls_ca)
        host, port = parse_hostport(self.sip_tls, "sip_tls")
        return SipTls(host=host, port=port, cert=self.sip_cert, key=self.sip_key, ca_file=self.sip_tls_ca)

    def _normalize_openai_webhook(self) -> None:
        secret = self.openai_webhook_secret
        if secret is not None and str(secret).strip().lower() in ("", "off", "none"):
            secret = None
        if secret is not None:
            from ..openai.webhooks import decode_secret

            mask_secret(str(secret))
            try:
                decode_secret(str(secret))
            except ValueError:
                raise ValueError("openai_webhook_secret must be the webhook's whsec_... secret") from None
            if self.http is None:
                raise ValueError("openai_webhook_secret: the webhook needs the HTTP listener, which is off")
        self.openai_webhook_secret = None if secret is None else str(secret)
        path = str(self.openai_webhook_path)
        if not path.startswith("/"):
            raise ValueError(f"openai_webhook_path must start with '/', not {path!r}")
        self.openai_webhook_path = path

    def _normalize_sip_access(self) -> None:
        self.register = parse_register(self.register)
        self.register_retry_s = _number("register_retry_s", self.register_retry_s, 0, exclusive=True)
        self.sip_auth = parse_sip_auth(self.sip_auth)
        self.sip_auth_realm = str(self.sip_auth_realm).strip()
        algorithms = self.sip_auth_algorithms
        items = algorithms.split(",") if isinstance(algorithms, str) else list(algorithms)
        self.sip_auth_algorithms = tuple(str(a).strip().upper() for a in items if str(a).strip())
        parsed = parse_rate(self.sip_rate_limit)
        rate: float | None
        if isinstance(parsed, str):  # auto
            rate = OPEN_RATE_LIMIT if self.sip_allow is None and self.workers == 1 else None
        else:
            rate = parsed
        self.sip_rate_limit = rate
        if self.sip_rate_burst is not None:
            self.sip_rate_burst = _number("sip_rate_burst", self.sip_rate_burst, 1)
        SipConfig(  # checks them now, not at start()
            auth_users=self.sip_auth,
            auth_realm=self.sip_auth_realm,
            auth_algorithms=self.sip_auth_algorithms,
            rate_limit=rate,
            rate_burst=self.sip_rate_burst,
        )
        for account in self.register:
            if account.transport not in self.sip_transports:
                raise ValueError(
                    f"register: {account.aor} uses {account.transport}, which sip_transports does not enable"
                )
        used = [n for n, v in (("register", self.register), ("sip_auth", self.sip_auth)) if v]
        if used and self.sip is None:
            raise ValueError(f"{', '.join(used)}: SIP is off (--sip off)")
        if used and self.workers > 1:
            raise ValueError(f"{', '.join(used)}: not available with --workers > 1 yet (run one process)")

    def _normalize_metrics(self) -> None:
        value = None if self.metrics is None else str(self.metrics).strip().lower()
        http_public = self.http is not None and not is_loopback(parse_hostport(self.http, "http")[0])
        if value in (None, "", "auto"):
            # By default /metrics is where the carriers' HTTP listener is, unless that is public.
            self.metrics = "on" if self.http is not None and (not http_public or self.open_metrics) else "off"
            return
        if value in ("on", "true", "yes", "1"):
            if self.http is None:
                raise ValueError(
                    "metrics: 'on' serves /metrics on the HTTP listener, which is off: "
                    "give --metrics HOST:PORT for a listener of its own"
                )
            if http_public and not self.open_metrics:
                raise ValueError(
                    f"metrics: /metrics on the HTTP listener ({self.http}) would be open to the network: "
                    "give --metrics 127.0.0.1:PORT, or --open-metrics to allow it"
                )
            self.metrics = "on"
            return
        if value in ("off", "false", "no", "0", "none"):
            self.metrics = "off"
            return
        host, _ = parse_hostport(str(self.metrics), "metrics")
        if not is_loopback(host) and not self.open_metrics:
            raise ValueError(
                f"metrics: listening on {host} shows call volumes and errors to the network: "
                "use a loopback address (127.0.0.1:PORT), or --open-metrics to allow it"
            )
        self.metrics = str(self.metrics).strip()

    @property
    def metrics_listen(self) -> str | None:
        """HOST:PORT of a listener of /metrics' own, or None."""
        return self.metrics if self.metrics not in (None, "on", "off") else None

    def _check_exposure(self) -> None:
        """A listener reachable from other machines needs access control (it starts paid sessions)."""
        if self.sip is not None:
            host, _ = parse_hostport(self.sip, "sip")
            if not is_loopback(host) and self.sip_allow == LOOPBACK_SOURCES:
                raise ValueError(
                    f"sip: listening on {host} takes calls from the network, but only this machine may "
                    "call (the default sip_allow): give --sip-allow with your trunk's or PBX's addresses "
                    "(IPs or CIDRs), or --sip-allow any to take calls from anyone"
                )
        if self.sip_tls is not None:
            host, _ = parse_hostport(self.sip_tls, "sip_tls")
            if not is_loopback(host) and self.sip_allow == LOOPBACK_SOURCES:
                raise ValueError(
                    f"sip_tls: listening on {host} takes calls from the network, but only this machine "
                    "may call (the default sip_allow): give --sip-allow with your trunk's or PBX's "
                    "addresses (IPs or CIDRs), or --sip-allow any to take calls from anyone"
                )
        if self.http is not None:
            host, _ = parse_hostport(self.http, "http")
            secured = self.token is not None or self.twilio_auth_token is not None
            if not is_loopback(host) and not secured and not self.open_media:
                raise ValueError(
                    f"http: listening on {host} lets anyone on the network open media streams (and model "
                    "sessions): set --token (and/or --twilio-auth-token), or --open-media to allow it"
                )


class ListenError(OSError):
    """A listener cannot be opened; the message names the setting and the address."""


async def _start_shared_http_site(app: web.Application, host: str, port: int) -> HttpListener:
    """``start_http_site`` with ``SO_REUSEPORT``: the workers of ``--workers`` listen on one port and
    the kernel spreads the connections (the same guard, middleware and runner, by their public API)."""
    guard = HttpGuard()
    app.middlewares.insert(0, guard_middleware)
    runner = web.AppRunner(app, access_log=None, logger=guard.server_logger())
    await runner.setup()
    site = GuardedSite(runner, host, port, guard, reuse_port=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return HttpListener(runner, site, guard)


def _reason(exc: OSError) -> str:
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)


class Runtime:
    """Runs one scenario for every call it receives."""

    def __init__(
        self,
        config: RuntimeConfig,
        secrets: Secrets | None = None,
        *,
        tracer_provider: Any = None,
        realtime_base_url: str | None = None,
    ) -> None:
        """``tracer_provider``: an OpenTelemetry tracer provider for the call spans (tests, embedding
        applications); implies tracing. ``realtime_base_url``: where Realtime clients connect when the
        scenario gives no ``base_url`` (a fake server in tests, the embedded backend).
        Raises ValueError naming the setting when ``call_log``
        cannot be created or tracing is asked for without the ``otel`` extra."""
        self.config = config
        self.scenario = Scenario(config.scenario)
        self.secrets = secrets or Secrets(config.secrets_file)
        # No log line shows these, at any level, wherever they appear (DESIGN §4).
        self.accounts = resolve_passwords(
            config.register, config.register_password or self.secrets.get("VOXLINE_REGISTER_PASSWORD")
        )
        self.sip_auth = config.sip_auth or parse_sip_auth(self.secrets.get("VOXLINE_SIP_AUTH"))
        if self.sip_auth and config.workers > 1:
            raise ValueError("sip_auth: not available with --workers > 1 yet (run one process)")
        extra_secrets = [a.password for a in self.accounts] + list((self.sip_auth or {}).values())
        for secret in (config.token, config.twilio_auth_token, *self.secrets.values(), *extra_secrets):
            mask_secret(secret)
        self.sessions: set[Session] = set()
        self.sip: SipEndpoint | None = None
        self.registrations: Registrations | None = None
        # Called with every RegistrationEvent (tests, embedding applications); sessions get AppEvents.
        self.registration_listeners: list[Callable[[RegistrationEvent], Any]] = []
        self.carriers: CarrierEndpoints | None = None
        self.openai_webhook: OpenAIWebhookEndpoint | None = None  # openai_webhook_secret set
        # An OpenAI SIP call's session ends if its scenario has not accepted or rejected it by then.
        self.openai_answer_timeout_s = 30.0
        self.webrtc: WebRtcEndpoint | None = None
        self._http_runner: web.AppRunner | None = None
        self.http_guard: HttpGuard | None = None
        self.http_port: int | None = None
        self._winding_down: set[Session] = set()  # sessions whose call has ended
        # /readyz and SIP OPTIONS; sessions report their Realtime connects to it.
        self.readiness = Readiness(
            max_calls=config.max_calls,
            active_calls=self._active_calls,
            model_failures=config.ready_model_failures,
            model_retry_s=config.ready_model_retry_s,
        )
        self._stopped = asyncio.Event()
        # Where Realtime clients connect when the scenario gives no base_url (the embedded backend).
        self.realtime_base_url: str | None = realtime_base_url
        # Trace every Realtime client of every session (the scenario's own `trace` still wins).
        self.trace = config.trace
        # Called with (session, resource) for every call, client, player... a session adopts:
        # how tools (the demo's live view, recorders) watch calls without touching scenarios.
        self.observers: list[Callable[[Session, Any], None]] = []
        self._calls: dict[Session, _CallRecord] = {}
        self._metrics_runner: web.AppRunner | None = None
        self.metrics_port: int | None = None
        self._probe: asyncio.Task[None] | None = None
        self._counted: dict[str, int] = {}  # refusals counted elsewhere, as added to the metrics
        # Every call's figures: the start/end log lines, metrics, the quality record, the spans.
        self.accounting = Accounting(call_log=self._call_log_dir(), tracing=self._tracing(tracer_provider))
        self.observers.append(self.accounting.observe)

    def _call_log_dir(self) -> Path | None:
        if self.config.call_log is None:
            return None
        directory = Path(self.config.call_log)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"call_log: cannot create the directory {directory}: {_reason(exc)}") from None
        return directory

    def _tracing(self, provider: Any) -> CallTracing | None:
        explicit = self.config.otel or provider is not None
        if not explicit and not otel_requested(os.environ):
            return None  # opentelemetry is never imported
        try:
            from ..observability.otel import CallTracing
        except ImportError:
            if explicit:
                raise ValueError("otel: traces need OpenTelemetry: pip install 'voxline[otel]'") from None
            log.warning("OTEL_TRACES_EXPORTER is set but OpenTelemetry is not installed: no traces")
            return None
        return CallTracing(provider)

    # -- lifecycle --------------------------------------------------------------------------------

    def check_scenario(self) -> None:
        """Run the scenario's top level once, now, so an ImportError or a missing name stops
        ``voxline run`` at start-up instead of failing every call (raises ``ScenarioError``)."""
        self.scenario.check(self.secrets)

    async def start(self) -> None:
        cfg = self.config
        if cfg.metrics != "off":
            self._start_telemetry()
        if cfg.sip:
            host, port = parse_hostport(cfg.sip, "sip")
            allow = cfg.sip_allow
            # Resolved before anything listens: a registrar that does not resolve stops the start.
            registrars = [(await resolve_registrar(a))[0] for a in self.accounts]
            if registrars and allow is not None:
                # The registrars deliver the calls to what we register: they may send INVITEs.
                log.info("sip_allow: adding the registrars %s", ", ".join(sorted(set(registrars))))
                allow = (*allow, *registrars)
            self.sip = SipEndpoint(
                host,
                port,
                transports=cfg.sip_transports,  # type: ignore[arg-type]
                max_calls=cfg.max_calls,
                config=SipConfig(
                    max_calls=cfg.max_calls,
                    auth_users=self.sip_auth,
                    auth_realm=cfg.sip_auth_realm,
                    auth_algorithms=cfg.sip_auth_algorithms,
                    rate_limit=cfg.sip_rate_limit,
                    rate_burst=cfg.sip_rate_burst,
                    rate_exempt=tuple(registrars),  # one source for all the calls they deliver
                ),
                allow_sources=allow,
                trusted_proxies=cfg.sip_trusted_proxy,
                rtp_host=cfg.rtp_host,
                rtp_inactivity_timeout_ms=cfg.rtp_timeout_s * 1000 if cfg.rtp_timeout_s else None,
                # RTP goes out on the clock of the playouts that feed it, right after them.
                clock=AsyncioMediaClock.for_loop(),
                on_incoming_call=self._on_sip_call,
                readiness=self.readiness.reason,  # OPTIONS: 200, or 503 with the reason
                rtp_ports=cfg.rtp_ports,
                tls=cfg.sip_tls_settings(),
                srtp=parse_policy(cfg.srtp) if cfg.srtp is not None else None,
            )
            try:
                await self.sip.start()
            except OSError as exc:
                transports = "+".join(cfg.sip_transports)
                where = f"{cfg.sip}" + (f" / TLS {cfg.sip_tls}" if cfg.sip_tls else "")
                raise ListenError(
                    f"cannot listen for SIP ({transports}) on {where}: {_reason(exc)}"
                ) from None
            log.info("SIP on %s:%d (%s)", host, self.sip.port, "+".join(cfg.sip_transports))
            if self.accounts:
                self.registrations = Registrations(
                    self.sip, self.accounts, on_event=self._on_registration, retry_base_s=cfg.register_retry_s
                )
                await self.registrations.start()
            if self.sip.tls_port is not None:
                log.info(
                    "SIP TLS on %s:%d", parse_hostport(cfg.sip_tls or "", "sip_tls")[0], self.sip.tls_port
                )
        if cfg.http:
            host, port = parse_hostport(cfg.http, "http")
            self.carriers = CarrierEndpoints(
                self._on_stream,
                CarrierConfig(
                    token=cfg.token,
                    twilio_auth_token=cfg.twilio_auth_token,
                    public_url=cfg.public_url,
                    trusted_proxies=cfg.http_trusted_proxies,
                    twilio_path=cfg.twilio_path,
                    media_path=cfg.media_path,
                    max_streams=cfg.max_calls,
                    mark_interval_ms=cfg.mark_interval_ms,
                    twilio_batch_ms=cfg.twilio_batch_ms,
                ),
                admit=self._admit,
            )
            app = web.Application()
            self.carriers.add_to(app)
            self._add_webrtc(app, host)
            app.router.add_get("/livez", self._livez)
            app.router.add_get("/readyz", self._readyz)
            app.router.add_get("/health", self._readyz)  # the old name: the same honest answer
            if cfg.metrics == "on":
                app.router.add_get("/metrics", self._metrics)
            if cfg.openai_webhook_secret is not None:
                from .openai_sip import OpenAIWebhookEndpoint

                self.openai_webhook = OpenAIWebhookEndpoint(
                    cfg.openai_webhook_secret, admit=self._admit, on_call=self._on_openai_call
                )
                self.openai_webhook.add_to(app, cfg.openai_webhook_path)
            # Header and idle timeouts on every connection; counts in self.http_guard.stats.
            try:
                if cfg.http_reuse_port:
                    http = await _start_shared_http_site(app, host, port)
                else:
                    http = await start_http_site(app, host, port, access_log=None)
            except OSError as exc:
                if self.sip is not None:
                    await self.sip.close()
                raise ListenError(f"cannot listen for HTTP on {cfg.http}: {_reason(exc)}") from None
            self._http_runner, self.http_guard = http.runner, http.guard
            self.http_port = http.port
            log.info(
                "HTTP on %s:%d (Twilio %s, media %s)", host, self.http_port, cfg.twilio_path, cfg.media_path
            )
        if cfg.metrics_listen is not None:
            await self._start_metrics_listener(cfg.metrics_listen)

    def _add_webrtc(self, app: web.Application, host: str) -> None:
        """WebRTC signaling and /playground (docs/webrtc.md); aiortc loads with the first offer."""
        from ..webrtc.endpoint import LOOPBACK_NETWORKS, WebRtcEndpoint

        cfg = self.config
        loopback = is_loopback(host)
        self.webrtc = WebRtcEndpoint(
            self._on_webrtc,
            access=self.carriers.access if self.carriers is not None else None,
            path=cfg.webrtc_path,
            ice_servers=cfg.webrtc_ice_servers,
            # On loopback, ICE stays there (aioice leaves 127.0.0.1 out by itself).
            candidate_networks=LOOPBACK_NETWORKS if loopback else None,
            host_addresses=("127.0.0.1",) if loopback else None,
        )
        self.webrtc.add_to(app)
        self.observers.append(WebRtcWatch())

    def _start_telemetry(self) -> None:
        TELEMETRY.enable()
        TELEMETRY.on_scrape(self._catch_up_counters)
        from ..observability.probes import watch_loop_lag

        self._probe = background(watch_loop_lag(), name="loop-lag-probe")
        self.observers.append(self._observe)

    async def _start_metrics_listener(self, listen: str) -> None:
        host, port = parse_hostport(listen, "metrics")
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        try:
            site = await start_http_site(app, host, port, access_log=None)
        except OSError as exc:
            if self._http_runner is not None:
                await self._http_runner.cleanup()
            if self.sip is not None:
                await self.sip.close()
            raise ListenError(f"cannot listen for metrics on {listen}: {_reason(exc)}") from None
        self._metrics_runner, self.metrics_port = site.runner, site.port
        log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)

    async def _metrics(self, request: web.Request) -> web.Response:
        from ..observability.prometheus import CONTENT_TYPE, exposition

        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})

    def _catch_up_counters(self) -> None:
        """Refusals counted by the SIP core and the carrier endpoints, added to the Prometheus
        counters at each scrape (nothing on their paths)."""
        sources: list[tuple[str, str, int]] = []
        if self.sip is not None:
            stats = self.sip.stats
            sources += [
                ("sip", "draining", stats.get("rejected_draining", 0)),
                ("sip", "limit", stats.get("rejected_over_limit", 0)),
                ("sip", "allowlist", stats.get("rejected_source", 0)),
                ("sip", "rate", stats.get("rejected_rate", 0)),
                ("sip", "auth", stats.get("rejected_auth", 0)),
                ("sip", "challenge", stats.get("auth_challenges", 0)),
            ]
        if self.carriers is not None:
            stats = self.carriers.stats
            refused = sum(stats.get(k, 0) for k in ("refused_unauthenticated", "refused_forbidden"))
            sources += [("http", "auth", refused + stats.get("webhook_refused", 0))]
        for transport, reason, total in sources:
            key = f"{transport}:{reason}"
            TELEMETRY.call_rejected(transport, reason, total - self._counted.get(key, 0))
            self._counted[key] = total
        TELEMETRY.readiness(self.readiness.ready)

    def _on_registration(self, event: RegistrationEvent) -> None:
        """A registration's news: to the listeners, and as an AppEvent to every running session."""
        for listener in tuple(self.registration_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("registration listener raised")
        if isinstance(event, RegistrationSucceeded):
            name, fields_ = (
                AppEvents.RegistrationSucceeded,
                {"expires": event.expires, "contact": event.contact},
            )
        elif isinstance(event, RegistrationFailed):
            name = AppEvents.RegistrationFailed
            fields_ = {"status": event.status, "reason": event.reason, "retry_in": event.retry_in}
        else:
            name, fields_ = AppEvents.Unregistered, {"status": event.status}
        for session in list(self.sessions):
            if session.terminating:
                continue
            token = current_session.set(session)
            try:
                session.emit(name, aor=event.aor, **fields_)
            finally:
                current_session.reset(token)

    def _observe(self, session: Session, resource: Any) -> None:
        """Setup time to the model session: the first ``session.created`` of a call's session."""
        record = self._calls.get(session)
        if record is None or not isinstance(resource, RealtimeAPIClient):
            return

        def created(event: Any) -> None:
            if not record.model_ready:
                record.model_ready = True
                TELEMETRY.call_setup_done(record.transport, "model_ready", time.monotonic() - record.started)

        resource.add_event_listener(RealtimeAPIEvents.SessionCreated, created)

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, lambda: background(self.shutdown(), name="shutdown"))
            except (NotImplementedError, RuntimeError):
                pass
        await self._stopped.wait()

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Stop taking calls, let running sessions end within the grace period, then end them."""
        if self.readiness.draining:
            return
        self.readiness.start_draining()
        grace = self.config.grace_s if grace_s is None else grace_s
        log.info("shutting down: %d sessions running, grace %.0f s", len(self.sessions), grace)
        if self.sip is not None and self.sip.core is not None:
            self.sip.stop_accepting()  # new INVITEs get 503
        if self.registrations is not None:
            await self.registrations.stop()  # the registrars stop sending calls here
        waits = [s.terminated.wait() for s in self.sessions]
        if waits:
            _, pending = await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=grace)
            for task in pending:
                task.cancel()
        for session in list(self.sessions):
            session.terminate()
        if self.carriers is not None:
            await self.carriers.close()
        if self.webrtc is not None:
            await self.webrtc.close()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        if self.sip is not None:
            await self.sip.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        if self._probe is not None:
            self._probe.cancel()
        await self.accounting.close()
        self._stopped.set()

    async def _livez(self, request: web.Request) -> web.Response:
        # The process serves: nothing else is checked (a restart would not cure the others).
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        readiness = self.readiness
        body = {**readiness.status(), "sessions": len(self.sessions)}
        if body["ready"]:
            return web.json_response(body)
        headers = {"Retry-After": str(readiness.retry_after())}
        return web.json_response(body, status=503, headers=headers)

    # -- calls ------------------------------------------------------------------------------------

    def _full(self) -> bool:
        return self._admit() is not None

    def _admit(self) -> str | None:
        """Why no call is taken now (carrier sockets get it in their 503), or None."""
        if self.readiness.draining:
            return "draining"
        if self._active_calls() >= self.config.max_calls:
            return "busy"
        # Model connects failing is advice to balancers, not a refusal: a call that comes anyway
        # is tried (and its connect tells whether the model is back).
        return None

    def _active_calls(self) -> int:
        # A session whose call has ended no longer holds a call slot while it winds down
        # (idle_session_s): a caller who never ACKed frees the slot when the dialog fails.
        return len(self.sessions) - len(self._winding_down)

    async def _on_sip_call(self, leg: SipCallLeg) -> None:
        refused = self._admit()
        if refused is not None:
            TELEMETRY.call_rejected("sip", "draining" if refused == "draining" else "limit")
            leg.reject(503, "Service Unavailable")
            return
        call = Call(
            SipLeg(leg),
            caller_id=leg.caller_id,
            destination=leg.destination,
            display_name=leg.display_name or "",
            headers=dict(leg.headers.items()),
        )
        self._start_session(call)

    async def _on_stream(self, stream: CarrierStream) -> None:
        refused = self._admit()
        if refused is not None:
            TELEMETRY.call_rejected(stream.kind, "draining" if refused == "draining" else "limit")
            await stream.close(1013, "too many calls")
            return
        custom = stream.custom_parameters
        call = Call(
            CarrierLeg(stream),
            caller_id=custom.get("From", custom.get("from", "")),
            destination=custom.get("To", custom.get("to", "")),
            headers={},
            custom_data={**custom, "stream_id": stream.stream_id, "call_id": stream.call_id or ""},
        )
        self._start_session(call)

    def _on_openai_call(self, call: OpenAICall) -> None:
        """A verified OpenAI SIP call: its own session, ``AppEvents.OpenAICallIncoming``; the session
        winds down like any other once the call ends (rejected, hung up, its sideband closed)."""
        session = Session(self.scenario, self.secrets, services=self, on_terminated=self._session_ended)
        self.sessions.add(session)
        session.call_id = call.call_id
        session.adopt(call)
        call.on_ended(lambda c: self._call_ended(session))
        with log_ids(session_id=session.id, call_id=call.call_id):
            if not session.start():
                return
            background(self._openai_call_unanswered(session, call), name=f"answer-{session.id}")
            token = current_session.set(session)
            try:
                session.emit(
                    AppEvents.OpenAICallIncoming,
                    call=call,
                    call_id=call.call_id,
                    callerid=call.caller_id(),
                    destination=call.destination(),
                    headers=call.headers(),
                )
            finally:
                current_session.reset(token)

    async def _openai_call_unanswered(self, session: Session, call: OpenAICall) -> None:
        """A call the scenario neither accepted nor rejected in time ends its session (nothing else
        would: no media, no sideband)."""
        await asyncio.sleep(self.openai_answer_timeout_s)
        if not (call.accepted or call.ended or session.terminating):
            log.warning(
                "%s: OpenAI call %s not accepted or rejected within %.0f s; ending its session",
                session.id,
                call.call_id,
                self.openai_answer_timeout_s,
            )
            session.terminate()

    async def _on_webrtc(self, peer: WebRtcPeer) -> None:
        refused = self._admit()
        if refused is not None:
            TELEMETRY.call_rejected("webrtc", "draining" if refused == "draining" else "limit")
            await peer.close("too many calls")
            return
        call = Call(
            WebRtcLeg(peer),
            caller_id="webrtc",
            destination=self.config.webrtc_path,
            custom_data={"peer_id": peer.id, "remote": peer.remote or ""},
        )
        self._start_session(call)

    def start_session(self) -> Session:
        """A session with no inbound call (outbound scenarios dial from ``AppEvents.Started``)."""
        session = Session(self.scenario, self.secrets, services=self, on_terminated=self._session_ended)
        self.sessions.add(session)
        session.start()
        return session

    def _start_session(self, call: Call) -> Session:
        session = Session(self.scenario, self.secrets, services=self, on_terminated=self._session_ended)
        self.sessions.add(session)
        if TELEMETRY.enabled:
            self._count_call(session, call)
        session.adopt(call)
        with log_ids(session_id=session.id, call_id=call.id()):
            call.add_event_listener("Call.Disconnected", lambda e: self._call_ended(session))
            call.add_event_listener("Call.Failed", lambda e: self._call_ended(session))
            if not session.start():
                return session
            token = current_session.set(session)
            try:
                session.emit(
                    AppEvents.CallAlerting,
                    call=call,
                    callerid=call.caller_id(),
                    destination=call.destination(),
                    headers=call.headers(),
                )
            finally:
                current_session.reset(token)
        return session

    def _count_call(self, session: Session, call: Call) -> None:
        """The call in the metrics: active from now, its meters bound, setup and end timed."""
        transport = call.transport
        record = _CallRecord(transport, time.monotonic())
        self._calls[session] = record
        call.meters = TELEMETRY.call_started(transport)

        def connected(event: Any) -> None:
            record.connected = True
            TELEMETRY.call_setup_done(transport, "answered", time.monotonic() - record.started)

        def ended(event: Any) -> None:
            # The outcomes of the call's quality record (runtime/accounting.py).
            if event.name == CallEvents.Disconnected:
                self._call_counted(session, "completed" if record.connected else "abandoned")
            else:
                rejected = event.extra.get("reason") == "rejected"
                self._call_counted(session, "rejected" if rejected else "failed")

        call.add_event_listener(CallEvents.Connected, connected)
        call.add_event_listener(CallEvents.Disconnected, ended)
        call.add_event_listener(CallEvents.Failed, ended)

    def _call_ended(self, session: Session) -> None:
        """A session whose call ended and that does not terminate itself is ended after a pause."""
        if session.terminating:
            return
        self._winding_down.add(session)

        async def later() -> None:
            await asyncio.sleep(self.config.idle_session_s)
            if not session.terminating:
                log.info("%s: its call ended %.0f s ago; terminating", session.id, self.config.idle_session_s)
                session.terminate()

        background(later(), name=f"idle-{session.id}")

    def _call_counted(self, session: Session, outcome: str) -> None:
        record = self._calls.pop(session, None)
        if record is not None:
            TELEMETRY.call_finished(record.transport, outcome, time.monotonic() - record.started)

    def _session_ended(self, session: Session) -> None:
        self.sessions.discard(session)
        self._winding_down.discard(session)
        self._call_counted(session, "terminated")  # a call whose end was never reported


@dataclass
class _CallRecord:
    """What the metrics keep of a running call."""

    transport: str
    started: float
    model_ready: bool = False
    connected: bool = False


__all__ = ["CallDisconnected", "CallFailed", "ListenError", "Runtime", "RuntimeConfig"]
