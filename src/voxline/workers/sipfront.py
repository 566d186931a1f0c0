"""The SIP front of ``voxline run --workers N``: a stateless proxy (RFC 3261 §16.11), sans-I/O.

The supervisor listens on the configured SIP address and hands every request to the worker that
owns its Call-ID; each worker listens on a loopback port of its own. One trunk sending every INVITE
from one address still spreads evenly (a 4-tuple hash would not), and every in-dialog request (ACK,
BYE, re-INVITE, INFO, CANCEL) reaches the worker that has the dialog:

- **Requests from outside** (``receive_outside``): refused here when their source is not in
  ``allow_sources`` (403, OPTIONS outside a dialog excepted; the workers see only the front, so
  the front applies ``--sip-allow``, in and outside dialogs), when
  Max-Forwards is 0 (483, OPTIONS answered by the front), when unparseable (400/505/513 when a Via
  can be answered, dropped otherwise). Otherwise the top Via gets ``received``/``rport`` (§18.2.1,
  RFC 3581), Max-Forwards is decremented (70 added when absent), our own Route entries are removed,
  our Via goes on top with a branch derived per §16.11 (a hash of the received branch, or of the
  transaction's fields for pre-3261 peers, plus the target: a retransmission, its CANCEL and its
  non-2xx ACK get the same one) and, on dialog-creating requests, two Record-Route entries (RFC 5658
  double record-routing: the inner address the worker sends to, the public one the caller sends
  to), each naming the worker (``vxw=N``). The worker is the one named by our Route entry, else the
  one the Call-ID hashes to (the next live one while it is down); none alive: 503.
- **Responses from a worker** (``receive_inside``): our Via is popped, the response goes where the
  request came from: over TCP back on the caller's connection (kept in our Via's ``vxsrc``), over UDP
  to the next Via's ``received``/``rport`` or sent-by (§18.2.2).
- **Requests from a worker** (its BYE, re-INVITE, INFO to the caller): our Route entries are popped,
  our Via (public address) goes on top, and the request goes to the next Route or the Request-URI
  (IP addresses only: the front does no DNS; a name gets 502). Their responses come back to the
  public address, our Via is checked (an HMAC over the branch: nobody else can make the front send
  to a worker) and popped, and the response goes to the worker our Via names.
- **OPTIONS outside a dialog** are answered by the front itself: 200 while any worker answers its
  probe OPTIONS with 200, else 503 with Retry-After (draining, all at ``max_calls``, none alive).

Anything that comes to the inner address from someone who is not a worker is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..sip.config import Network, source_networks
from ..sip.dialog import source_ip
from ..sip.message import (
    SipHeaders,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    parse_message,
    parse_name_addr,
    parse_via,
    reason_phrase,
)

__all__ = ["FrontConfig", "Outgoing", "SipFront"]

Address = tuple[str, int]
Transport = Literal["udp", "tcp"]

MAGIC = "z9hG4bK"
_PROBE = MAGIC + "vxp"  # the branches of our own OPTIONS probes to the workers
_MAX_FORWARDS = 70
# Requests that create a dialog (the ones a Record-Route is for).
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: ``side`` "outside" (the public socket: callers) or "inside" (the inner
    socket, to a worker)."""

    data: bytes
    addr: Address
    transport: Transport
    side: Literal["outside", "inside"]


@dataclass(slots=True)
class FrontConfig:
    """``public``: the address callers send to (what our Via and Record-Route say to them; a host of
    0.0.0.0 is replaced by the Request-URI's host of each request). ``inner``: the loopback UDP
    address workers send to. ``allow_sources``: who may send requests (None: anyone). ``secret``:
    key of the branch HMAC (random per supervisor)."""

    public: Address
    inner: Address
    workers: int
    secret: bytes
    allow_sources: Sequence[str] | None = None
    public_transports: tuple[Transport, ...] = ("udp", "tcp")
    probe_interval_s: float = 1.0
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if len(self.secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        if not self.probe_interval_s > 0:
            raise ValueError(f"probe_interval_s must be > 0, got {self.probe_interval_s}")


@dataclass(slots=True)
class _Worker:
    addr: Address | None = None  # None: down (not started, restarting)
    ready: bool = False
    probed_at: float | None = None  # when the last probe went out
    answered_at: float | None = None  # when the last probe answer came


@dataclass(slots=True)
class FrontStats:
    forwarded_requests: int = 0
    forwarded_responses: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # status -> count
    dropped: int = 0
    answered_options: int = 0


class SipFront:
    """The stateless proxy core: messages in (with the time), messages out; ``tick`` sends probes."""

    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self._networks: tuple[Network, ...] | None = (
            None if config.allow_sources is None else source_networks(config.allow_sources)
        )
        self._workers = [_Worker() for _ in range(config.workers)]
        self._probe_seq = 0
        self.draining = False
        self.stats = FrontStats()

    # -- workers ----------------------------------------------------------------------------------

    def set_worker(self, index: int, addr: Address | None) -> None:
        """Worker ``index`` is up at ``addr`` (its loopback SIP port), or down (None)."""
        self._workers[index] = _Worker(addr=addr)

    def worker_addr(self, index: int) -> Address | None:
        return self._workers[index].addr

    def worker_ready(self, index: int) -> bool:
        return self._workers[index].ready

    @property
    def ready(self) -> bool:
        """Whether the front should get calls: not draining, some worker answers its probe 200."""
        return not self.draining and any(w.addr is not None and w.ready for w in self._workers)

    def owner(self, call_id: str) -> int | None:
        """The worker a Call-ID goes to: its hash modulo N, the next live one while that is down."""
        n = len(self._workers)
        start = zlib.crc32(call_id.encode("utf-8", "surrogateescape")) % n
        for step in range(n):
            index = (start + step) % n
            if self._workers[index].addr is not None:
                return index
        return None

    # -- probes -----------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        times = [
            (w.probed_at or 0.0) + self.config.probe_interval_s for w in self._workers if w.addr is not None
        ]
        return min(times) if times else None

    def tick(self, now: float) -> list[Outgoing]:
        """OPTIONS probes to the workers that are due; a worker silent for 3 intervals is not ready."""
        out: list[Outgoing] = []
        interval = self.config.probe_interval_s
        for index, worker in enumerate(self._workers):
            if worker.addr is None:
                continue
            if worker.answered_at is not None and now - worker.answered_at > 3 * interval:
                worker.ready = False
            if worker.probed_at is not None and now < worker.probed_at + interval:
                continue
            worker.probed_at = now
            self._probe_seq += 1
            host, port = self.config.inner
            req = SipRequest(method="OPTIONS", uri=f"sip:{worker.addr[0]}:{worker.addr[1]}")
            req.headers.add("Via", f"SIP/2.0/UDP {host}:{port};branch={_PROBE}{index}.{self._probe_seq}")
            req.headers.add("Max-Forwards", "1")
            req.headers.add("From", f"<sip:front@{host}:{port}>;tag=vxfront")
            req.headers.add("To", f"<sip:{worker.addr[0]}:{worker.addr[1]}>")
            req.headers.add("Call-ID", f"vxprobe-{index}-{self._probe_seq}@{host}")
            req.headers.add("CSeq", f"{self._probe_seq} OPTIONS")
            out.append(Outgoing(bytes(req), worker.addr, "udp", "inside"))
        return out

    # -- from callers -----------------------------------------------------------------------------

    def receive_outside(
        self, data: bytes, source: Address, transport: Transport, now: float
    ) -> list[Outgoing]:
        """A datagram (or a framed TCP message) from ``source`` on the public address."""
        try:
            message = parse_message(data, stream=transport == "tcp")
        except SipParseError as exc:
            if exc.request is not None and exc.request.method != "ACK":
                return self._refuse(exc.request, exc.status, source, transport, reason=exc.reason)
            self.stats.dropped += 1
            return []
        if isinstance(message, SipResponse):
            return self._response_from_outside(message)
        return self._request_from_outside(message, source, transport, now)

    def _allowed(self, source: Address) -> bool:
        if self._networks is None:
            return True
        ip = source_ip(source[0])
        return ip is not None and any(ip in net for net in self._networks)

    def _request_from_outside(
        self, req: SipRequest, source: Address, transport: Transport, now: float
    ) -> list[Outgoing]:
        missing = [h for h in ("Via", "From", "To", "Call-ID", "CSeq") if req.headers.get(h) is None]
        if missing:
            return self._refuse(req, 400, source, transport, reason=f"Missing {', '.join(missing)}")
        try:
            top = parse_via(req.headers.get_all("Via")[0])
            to_tag = req.to.tag
            req.cseq  # noqa: B018 - parsed for its check
        except SipParseError as exc:
            return self._refuse(req, 400, source, transport, reason=exc.reason[:60])
        forwards = self._max_forwards(req)
        if forwards is None:
            return self._refuse(req, 400, source, transport, reason="Bad Max-Forwards")
        routed_to, _ = self._pop_own_routes(req)
        in_dialog = to_tag is not None or routed_to is not None
        if req.method == "OPTIONS" and not in_dialog:
            # Answered to anyone, as a worker does (health checks come from elsewhere than trunks).
            return self._answer_options(req, source, transport)
        if not self._allowed(source):
            # Every other request: the workers only ever see the front, so the front decides.
            return self._refuse(req, 403, source, transport)
        if forwards == 0:
            return self._refuse(req, 483, source, transport)
        if routed_to is not None:
            index: int | None = routed_to if self._workers[routed_to].addr is not None else None
            if index is None:
                # The worker that had the dialog is gone (its calls with it).
                return self._refuse(req, 481, source, transport)
        else:
            index = self.owner(req.call_id)
        if index is None:
            return self._refuse(req, 503, source, transport, retry_after=True)
        worker_addr = self._workers[index].addr
        assert worker_addr is not None
        self._stamp_received(req, top, source)
        req.headers.set("Max-Forwards", str(forwards - 1))
        if req.method in _DIALOG_CREATING and to_tag is None:
            public = self._public_uri(req, transport)
            inner = f"<sip:{self.config.inner[0]}:{self.config.inner[1]};lr;vxw={index}>"
            _insert_top(req, "Record-Route", [inner, f"<{public};lr;vxw={index}>"])
        branch = self._branch(_first_component(req, top), f"w{index}")
        origin = f"{transport}/{source[0]}/{source[1]}".encode().hex()
        via = f"SIP/2.0/UDP {self.config.inner[0]}:{self.config.inner[1]};branch={branch};vxsrc={origin}"
        via += f";vxsig={self._sign(branch, origin)}"
        _insert_top(req, "Via", [via])
        self.stats.forwarded_requests += 1
        return [Outgoing(bytes(req), worker_addr, "udp", "inside")]

    def _response_from_outside(self, resp: SipResponse) -> list[Outgoing]:
        """A caller's answer to a worker's request: to the worker our (signed) Via names."""
        vias = resp.headers.get_all("Via")
        try:
            ours = parse_via(vias[0]) if vias else None
        except SipParseError:
            ours = None
        if ours is None or len(vias) < 2 or not self._verify(ours):
            self.stats.dropped += 1
            return []
        origin = _unhex(ours.params.get("vxsrc"))
        worker = origin[1:] if origin is not None and origin.startswith("w") else ""
        if not worker.isdigit() or int(worker) >= len(self._workers):
            self.stats.dropped += 1
            return []
        addr = self._workers[int(worker)].addr
        if addr is None:
            self.stats.dropped += 1
            return []
        _drop_top(resp, "Via")
        self.stats.forwarded_responses += 1
        return [Outgoing(bytes(resp), addr, "udp", "inside")]

    # -- from workers -----------------------------------------------------------------------------

    def receive_inside(self, data: bytes, source: Address, now: float) -> list[Outgoing]:
        """A datagram on the inner address; only the workers' are taken."""
        index = next((i for i, w in enumerate(self._workers) if w.addr == source), None)
        if index is None:
            self.stats.dropped += 1
            return []
        try:
            message = parse_message(data)
        except SipParseError:
            self.stats.dropped += 1
            return []
        if isinstance(message, SipResponse):
            return self._response_from_worker(index, message, now)
        return self._request_from_worker(index, message, source)

    def _response_from_worker(self, index: int, resp: SipResponse, now: float) -> list[Outgoing]:
        vias = resp.headers.get_all("Via")
        try:
            ours = parse_via(vias[0]) if vias else None
        except SipParseError:
            ours = None
        if ours is not None and (ours.branch or "").startswith(_PROBE):
            worker = self._workers[index]
            worker.ready = resp.status == 200
            worker.answered_at = now
            return []
        if ours is None or len(vias) < 2 or not self._verify(ours):
            self.stats.dropped += 1
            return []
        origin = _unhex(ours.params.get("vxsrc"))
        _drop_top(resp, "Via")
        parts = (origin or "").split("/")
        if len(parts) == 3 and parts[0] == "tcp" and parts[2].isdigit():
            # §18.2.2: over TCP, back on the connection the request came on.
            self.stats.forwarded_responses += 1
            return [Outgoing(bytes(resp), (parts[1], int(parts[2])), "tcp", "outside")]
        try:
            nxt = parse_via(resp.headers.get_all("Via")[0])
        except SipParseError:
            self.stats.dropped += 1
            return []
        self.stats.forwarded_responses += 1
        return [Outgoing(bytes(resp), _via_target(nxt), "udp", "outside")]

    def _request_from_worker(self, index: int, req: SipRequest, source: Address) -> list[Outgoing]:
        forwards = self._max_forwards(req)
        if forwards is None or forwards == 0:
            return self._refuse(req, 483 if forwards == 0 else 400, source, "udp", side="inside")
        _, public_host = self._pop_own_routes(req)
        routes = req.headers.get_all("Route")
        try:
            target = parse_name_addr(routes[0]).uri if routes else parse_name_addr(f"<{req.uri}>").uri
        except SipParseError:
            return self._refuse(req, 400, source, "udp", side="inside", reason="Bad Request-URI")
        if source_ip(target.host) is None:
            return self._refuse(req, 502, source, "udp", side="inside", reason="Not an IP address")
        tparam = (target.params.get("transport") or "udp").lower()
        transport: Transport = "tcp" if tparam == "tcp" else "udp"
        if transport not in self.config.public_transports:
            transport = self.config.public_transports[0]
        req.headers.set("Max-Forwards", str(forwards - 1))
        try:
            top = parse_via(req.headers.get_all("Via")[0])
        except (SipParseError, IndexError):
            return []
        branch = self._branch(_first_component(req, top), "out")
        origin = f"w{index}".encode().hex()
        host = self.config.public[0]
        if host in ("0.0.0.0", "::"):
            # Bound to every address: the one our Record-Route gave the caller.
            host = public_host or "127.0.0.1"
        via = f"SIP/2.0/{transport.upper()} {_bracket(host)}:{self.config.public[1]};branch={branch}"
        via += f";rport;vxsrc={origin};vxsig={self._sign(branch, origin)}"
        _insert_top(req, "Via", [via])
        self.stats.forwarded_requests += 1
        return [Outgoing(bytes(req), (target.host, target.port or 5060), transport, "outside")]

    # -- helpers ----------------------------------------------------------------------------------

    def _max_forwards(self, req: SipRequest) -> int | None:
        text = req.headers.get("Max-Forwards")
        if text is None:
            return _MAX_FORWARDS + 1  # absent: forwarded with 70
        text = text.strip()
        if not text.isdigit() or len(text) > 3:
            return None
        return int(text)

    def _is_ours(self, host: str, port: int | None) -> bool:
        for own_host, own_port in (self.config.public, self.config.inner):
            if (port or 5060) != own_port:
                continue
            if host.lower() == own_host.lower() or own_host in ("0.0.0.0", "::"):
                return True
        return False

    def _pop_own_routes(self, req: SipRequest) -> tuple[int | None, str | None]:
        """Remove the top Route entries that are ours: the worker they name (``vxw``), if any, and
        the host of our public one."""
        routes = req.headers.get_all("Route")
        worker: int | None = None
        public_host: str | None = None
        kept = 0
        for value in routes:
            try:
                uri = parse_name_addr(value).uri
            except SipParseError:
                break
            if not self._is_ours(uri.host, uri.port):
                break
            kept += 1
            if (uri.host, uri.port) != self.config.inner:
                public_host = uri.host
            named = uri.params.get("vxw")
            if named is not None and named.isdigit() and int(named) < len(self._workers):
                worker = int(named)
        if kept:
            items = req.headers.items()
            out: list[tuple[str, str]] = []
            dropped = 0
            for name, value in items:
                if name == "Route" and dropped < kept:
                    dropped += 1
                    continue
                out.append((name, value))
            req.headers = SipHeaders(out)
        return worker, public_host

    def _public_uri(self, req: SipRequest, transport: Transport) -> str:
        host, port = self.config.public
        if host in ("0.0.0.0", "::"):
            try:
                host = parse_name_addr(f"<{req.uri}>").uri.host
            except SipParseError:
                host = "127.0.0.1"
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"sip:{_bracket(host)}:{port}{suffix}"

    def _stamp_received(self, req: SipRequest, top: Via, source: Address) -> None:
        """§18.2.1: ``received`` when the sent-by host is not the source; RFC 3581 ``rport``."""
        if top.stamp_received(source):
            items = req.headers.items()
            first = next(i for i, (n, _) in enumerate(items) if n == "Via")
            items[first] = ("Via", str(top))
            req.headers = SipHeaders(items)

    def _branch(self, first: str, target: str) -> str:
        # §16.11: the same for a retransmission (and its CANCEL, its non-2xx ACK), different across
        # transactions (the first component) and across targets (the second).
        second = hashlib.sha1(target.encode()).hexdigest()[:8]
        return f"{MAGIC}vx{first}.{second}"

    def _sign(self, branch: str, origin: str) -> str:
        return hmac.new(self.config.secret, f"{branch}|{origin}".encode(), hashlib.sha256).hexdigest()[:16]

    def _verify(self, via: Via) -> bool:
        branch, origin, sig = via.branch, via.params.get("vxsrc"), via.params.get("vxsig")
        if not branch or not origin or not sig:
            return False
        return hmac.compare_digest(self._sign(branch, origin), sig)

    def _answer_options(self, req: SipRequest, source: Address, transport: Transport) -> list[Outgoing]:
        self.stats.answered_options += 1
        if self.ready:
            allow = [("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")]
            return self._respond(req, 200, source, transport, extra=allow)
        return self._refuse(req, 503, source, transport, retry_after=True)

    def _refuse(
        self,
        req: SipRequest,
        status: int,
        source: Address,
        transport: Transport,
        *,
        reason: str | None = None,
        retry_after: bool = False,
        side: Literal["outside", "inside"] = "outside",
    ) -> list[Outgoing]:
        if req.method == "ACK":  # never answered (§17.2.1)
            self.stats.dropped += 1
            return []
        self.stats.refused[status] = self.stats.refused.get(status, 0) + 1
        extra = [("Retry-After", str(self.config.retry_after_s))] if retry_after else []
        return self._respond(req, status, source, transport, reason=reason, extra=extra, side=side)

    def _respond(
        self,
        req: SipRequest,
        status: int,
        source: Address,
        transport: Transport,
        *,
        reason: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        side: Literal["outside", "inside"] = "outside",
    ) -> list[Outgoing]:
        """A response of the front's own (§8.2.6), sent back the way the request came (§18.2.2)."""
        vias = req.headers.get_all("Via")
        if not vias:
            self.stats.dropped += 1
            return []
        try:
            top = parse_via(vias[0])
        except SipParseError:
            self.stats.dropped += 1
            return []
        if top.host != source[0]:
            top.params["received"] = source[0]
        if "rport" in top.params:
            top.params["rport"] = str(source[1])
        resp = SipResponse(status=status, reason=reason or reason_phrase(status))
        resp.headers.add("Via", str(top))
        for via in vias[1:]:
            resp.headers.add("Via", via)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = req.headers.get(name)
            if value is None:
                continue
            if name == "To" and ";tag=" not in value.replace(" ", "").lower():
                # Deterministic, so a retransmission gets the same answer.
                value += ";tag=vx" + hashlib.sha1(req.call_id.encode()).hexdigest()[:10]
            resp.headers.add(name, value)
        for name, value in extra:
            resp.headers.add(name, value)
        resp.headers.add("Server", "voxline-front")
        target = source if transport == "tcp" or side == "inside" else _via_target(top)
        return [Outgoing(bytes(resp), target, transport, side)]


def _first_component(req: SipRequest, top: Via) -> str:
    branch = top.branch or ""
    if branch.startswith(MAGIC):
        key = f"{branch}|{top.sent_by}"
    else:
        # A pre-3261 peer: what varies across its transactions (not the CSeq method: the CANCEL
        # and the ACK of a non-2xx must match their INVITE).
        try:
            to_tag, from_tag, cseq = req.to.tag or "", req.from_.tag or "", str(req.cseq[0])
        except SipParseError:
            to_tag = from_tag = cseq = ""
        key = f"{top}|{to_tag}|{from_tag}|{req.call_id}|{cseq}|{req.uri}"
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _via_target(via: Via) -> Address:
    """Where a response goes over UDP (§18.2.2, RFC 3581): received/rport, else sent-by."""
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    if rport is not None and rport.isdigit():
        return (host, int(rport))
    return (host, via.port or 5060)


def _insert_top(message: SipMessage, name: str, values: list[str]) -> None:
    """Put ``values`` before the first ``name`` field (or at the end when there is none)."""
    items = message.headers.items()
    at = next((i for i, (n, _) in enumerate(items) if n == name), len(items))
    items[at:at] = [(name, v) for v in values]
    message.headers = SipHeaders(items)


def _drop_top(message: SipMessage, name: str) -> None:
    items = message.headers.items()
    at = next((i for i, (n, _) in enumerate(items) if n == name), None)
    if at is not None:
        del items[at]
    message.headers = SipHeaders(items)


def _unhex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return bytes.fromhex(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
