"""What makes worker ``i`` of ``voxline run --workers N``: its command line, and its announcement.

Worker ``i`` runs ``python -m voxline <the supervisor's own arguments> --workers 1 --worker-index i``
plus what is its own (later flags win over earlier ones, flags over the environment and the config
file, so every other setting is the supervisor's):

- SIP on ``127.0.0.1:0`` over UDP (the front forwards to it; only this machine may send), RTP on
  the configured ``rtp_host`` or the public SIP host (the caller's RTP goes straight to the worker);
- HTTP on the configured address with ``SO_REUSEPORT`` (port 0 is resolved once, by the supervisor,
  so all workers share one port);
- ``/metrics`` on a listener of its own: ``--metrics HOST:PORT`` gives worker ``i`` ``PORT + i``
  (port 0: one the system picks), the default (``on``) one on the HTTP host at a port the system
  picks; each is announced;
- slice ``i`` of ``--rtp-ports`` (the range cut in N, never overlapping); without a range every
  RTP socket gets a port of the system's, which no other socket has either.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence

from .supervisor import ANNOUNCE, SipFrontSpec, WorkerSpec, split_port_range

__all__ = ["announce_line", "worker_spec"]


def worker_spec(
    *,
    argv: Sequence[str],
    count: int,
    sip: tuple[str, int] | None,
    sip_transports: tuple[str, ...],
    sip_allow: Sequence[str] | None,
    rtp_host: str | None,
    http: tuple[str, int] | None,
    metrics: str,
    metrics_listen: tuple[str, int] | None,
    rtp_ports: tuple[int, int] | None,
) -> tuple[WorkerSpec, socket.socket | None]:
    """The spec of the workers, and the socket that holds the HTTP port (when it was 0) while the
    supervisor runs. Raises ValueError for a setting that cannot be split (``rtp_ports``)."""
    slices = split_port_range(*rtp_ports, count) if rtp_ports is not None else None
    holder: socket.socket | None = None
    http_arg: str | None = None
    if http is not None:
        host, port = http
        if port == 0:
            # One port for all: a socket bound (not listening) with SO_REUSEPORT holds it; the
            # kernel hands connections only to the workers' listening sockets.
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            holder = socket.socket(family, socket.SOCK_STREAM)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((host, 0))
            port = holder.getsockname()[1]
        http_arg = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    base = list(argv)

    def command(index: int) -> list[str]:
        extra = ["--workers", "1", "--worker-index", str(index)]
        if sip is not None:
            extra += ["--sip", "127.0.0.1:0", "--sip-allow", "127.0.0.1/32", "--rtp-host", rtp_host or sip[0]]
        if http_arg is not None:
            extra += ["--http", http_arg]
        if metrics == "off":
            extra += ["--metrics", "off"]
        elif metrics_listen is not None:
            mhost, mport = metrics_listen
            extra += ["--metrics", f"{mhost}:{mport + index if mport else 0}"]
        elif http is not None:
            extra += ["--metrics", f"{http[0]}:0"]
        if slices is not None:
            low, high = slices[index]
            extra += ["--rtp-ports", f"{low}-{high}"]
        return [sys.executable, "-m", "voxline", *base, *extra]

    env = dict(os.environ)
    env["VOXLINE_HTTP_REUSE_PORT"] = "1"
    env["VOXLINE_SIP_TRANSPORTS"] = "udp"  # the front talks to its workers over loopback UDP
    front = None
    if sip is not None:
        front = SipFrontSpec(sip[0], sip[1], sip_transports, sip_allow)
    spec = WorkerSpec(count=count, command=command, env=env, sip=front)
    spec.http_port = int(http_arg.rpartition(":")[2]) if http_arg else None
    return spec, holder


def announce_line(
    index: int,
    *,
    sip: tuple[str, int] | None,
    http_port: int | None,
    metrics: tuple[str, int] | None,
    rtp_ports: tuple[int, int] | None,
) -> str:
    """The line a worker prints once it listens: the supervisor reads it (``ANNOUNCE`` + JSON)."""
    info = {
        "index": index,
        "pid": os.getpid(),
        "sip": list(sip) if sip else None,
        "http": http_port,
        "metrics": list(metrics) if metrics else None,
        "rtp_ports": f"{rtp_ports[0]}-{rtp_ports[1]}" if rtp_ports else None,
    }
    return ANNOUNCE + json.dumps(info)
