"""``SipTls``: the settings of SIP over TLS (RFC 3261 §26.3.1, §18): our listener's certificate and
key, and how the servers we connect to are verified.

The listener speaks TLS 1.2 or later and asks no client certificate (trunks authenticate by address,
digest or the certificate they check of ours). Outbound connections (``sips:`` and
``;transport=tls`` URIs) verify the server's certificate and name by default: against the system's
trust store, or ``ca_file`` (a PEM bundle: a private CA, a test's self-signed certificate);
``verify=False`` turns verification off (a lab only: anyone on the path can then read the call's
SDES keys). ``ssl`` is the standard library's; the contexts are built once, when the endpoint starts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_TLS_PORT", "SipTls"]

DEFAULT_TLS_PORT = 5061


@dataclass(frozen=True, slots=True)
class SipTls:
    """``host``/``port``: where the TLS listener binds (``host`` None: the endpoint's; ``port`` None:
    no listener, outbound TLS only; 0: any free port). ``cert``/``key``: PEM files of the listener
    (the certificate file may hold the chain). ``ca_file``: what outbound connections trust instead of
    the system store. ``verify``: check the server's certificate and name (the default)."""

    host: str | None = None
    port: int | None = DEFAULT_TLS_PORT
    cert: str | None = None
    key: str | None = None
    ca_file: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"tls port must be 0..65535 or None, got {self.port}")
        if self.port is not None and (not self.cert or not self.key):
            raise ValueError("a SIP TLS listener needs a certificate and its key (sip_cert and sip_key)")
        for name in ("cert", "key", "ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"sip TLS {name}: {path!r} is not a readable file")

    def server_context(self) -> ssl.SSLContext:
        """The listener's context. Raises ``ValueError`` naming the file that does not load."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.cert is not None and self.key is not None
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"sip TLS certificate {self.cert!r} / key {self.key!r}: {exc}") from None
        return context

    def client_context(self) -> ssl.SSLContext:
        """The context of our outbound connections: verifying, unless ``verify`` is False."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"sip TLS ca_file {self.ca_file!r}: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
