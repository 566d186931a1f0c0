"""Settings of the carrier endpoints (``CarrierConfig``) and the admission callback's type (``Admit``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from ..audio import FRAME_MS

__all__ = ["Admit", "CarrierConfig", "TwimlParameters"]

TwimlParameters = Callable[[Mapping[str, str]], Mapping[str, str]]
Admit = Callable[[], str | None]
"""Asked before each media socket is upgraded: None admits it; a short reason ("busy", "draining")
refuses it with 503 and ``Retry-After``, counted as ``refused_<reason>``."""


@dataclass(slots=True)
class CarrierConfig:
    """Settings of the carrier endpoints.

    ``token``: shared secret a media connection must present (``?token=`` or ``Authorization:
    Bearer``). ``twilio_auth_token``: the Twilio account's auth token; when set, the voice webhook
    requires a valid ``X-Twilio-Signature`` and the Twilio stream endpoint accepts one in place of
    the token. ``public_url``: the base URL as the carrier sees it (``https://voice.example.com``),
    needed for signatures behind a proxy; otherwise the request's own scheme and Host are used.
    ``trusted_proxies``: addresses or networks (CIDR) of reverse proxies whose ``X-Forwarded-Proto``
    and ``X-Forwarded-Host`` give that scheme and Host instead (default none: the headers are
    ignored, since anyone can send them).
    ``stream_url``: the ``wss://`` URL put into the TwiML (default: public base + ``twilio_path``).
    ``twiml_parameters``: maps the webhook's form fields to the stream's custom parameters
    (default: ``From`` and ``To``). ``start_timeout_s``: a socket that sends no ``start`` in this
    time is closed with 1008 (None: wait forever). ``max_streams``: sockets over this are refused
    with 503 before the upgrade. ``chunk_ms``: outbound message size of VoxEngine-format sockets.
    ``twilio_batch_ms``: model audio goes to Twilio in media messages of up to this many ms (a
    multiple of 20), paced one batch ahead of Twilio's player, which buffers and plays them back to
    back; marks report what was played, ``clear`` drops the rest; 20 sends one 20 ms message per
    frame, each when the one before it has played. ``mark_interval_ms``: Twilio mark spacing (see
    ``voxline.carriers.twilio``).
    ``max_tags_per_socket``: VoxEngine-format streams running at once on one socket (a ``start``
    beyond it closes the socket with 1008).
    """

    token: str | None = None
    twilio_auth_token: str | None = None
    public_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    twilio_path: str = "/twilio"
    media_path: str = "/media"
    voice_path: str = "/twilio/voice"
    stream_url: str | None = None
    twiml_parameters: TwimlParameters | None = None
    max_message_bytes: int = 64 * 1024
    max_streams: int | None = None
    start_timeout_s: float | None = 10.0
    chunk_ms: int = 20
    twilio_batch_ms: int = 100
    mark_interval_ms: int = 100
    heartbeat_s: float | None = None
    max_tags_per_socket: int = 16
    proxy_networks: tuple[IPv4Network | IPv6Network, ...] = field(init=False, default=(), repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.trusted_proxies, str):
            raise ValueError(f"trusted_proxies must be a sequence of IPs/CIDRs, not {self.trusted_proxies!r}")
        networks = []
        for entry in self.trusted_proxies:
            try:
                networks.append(ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (CIDR)"
                ) from None
        self.trusted_proxies = tuple(str(n) for n in networks)
        self.proxy_networks = tuple(networks)
        for name in ("token", "twilio_auth_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None")
        for name in ("twilio_path", "media_path", "voice_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/"):
                raise ValueError(f"{name} must be a path starting with '/', got {value!r}")
        if not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be an int >= 1024, got {self.max_message_bytes!r}")
        if self.max_streams is not None and (not isinstance(self.max_streams, int) or self.max_streams < 1):
            raise ValueError(f"max_streams must be an int >= 1 or None, got {self.max_streams!r}")
        interval = self.mark_interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
            raise ValueError(f"mark_interval_ms must be an int >= 0, got {interval!r}")
        batch = self.twilio_batch_ms
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < FRAME_MS or batch % FRAME_MS:
            raise ValueError(f"twilio_batch_ms must be a positive multiple of {FRAME_MS}, got {batch!r}")
        if not isinstance(self.max_tags_per_socket, int) or self.max_tags_per_socket < 1:
            raise ValueError(f"max_tags_per_socket must be an int >= 1, got {self.max_tags_per_socket!r}")
        if self.start_timeout_s is not None and not self.start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be > 0 or None, got {self.start_timeout_s!r}")
        if self.public_url is not None and urlsplit(self.public_url).scheme not in ("http", "https"):
            raise ValueError(f"public_url must be an http(s) URL, got {self.public_url!r}")
        if self.stream_url is not None and urlsplit(self.stream_url).scheme not in ("ws", "wss"):
            raise ValueError(f"stream_url must be a ws(s) URL, got {self.stream_url!r}")

    def trusts(self, remote: str | None) -> bool:
        """Whether a request from ``remote`` (the peer's IP) comes through a trusted proxy."""
        if remote is None or not self.proxy_networks:
            return False
        try:
            address = ip_address(remote.partition("%")[0])  # an IPv6 scope (fe80::1%eth0) aside
        except ValueError:
            return False
        # A dual-stack listener sees an IPv4 proxy as ::ffff:10.0.0.1.
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.proxy_networks)
