"""asyncio I/O for SIP: UDP and TCP transports, one ``UserAgentCore``, one timer, call legs with RTP.

``SipEndpoint`` listens (default 0.0.0.0:5060), feeds every datagram / framed stream message to the
core and writes what the core returns. All SIP timers of all calls are served by ONE ``call_at``
handle, re-armed to ``core.next_deadline()`` after every interaction. Each call is a ``SipCallLeg``
with its own RTP socket; RTP is sent on the ticks of the endpoint's media clock (by default the loop's
shared ``AsyncioMediaClock``, the one that paces the playouts feeding the calls).

TCP connections (accepted and our own) are closed when a message stays incomplete for
``tcp_message_timeout`` after its first byte (a stalled or slow-drip header) and when they carry
no traffic for ``tcp_idle_timeout`` while no call uses them; RFC 5626 CRLF keep-alives are traffic
and their pings get a pong. Both are counted in ``stats`` (``tcp_message_timeouts``,
``tcp_idle_closed``); a message that cannot be framed is answered (400 / 513) and its connection
closed (``tcp_framing_errors``); a peer that leaves 1 MB of our answers unread is cut off
(``tcp_backlog_closed``).

TLS (``tls=SipTls(...)``): a listener of its own (``tls_port``) carrying the same framed streams as
TCP, and outbound connections for ``sips:`` / ``;transport=tls`` calls, verified as ``SipTls`` says.
Connections are reused both ways (RFC 3261 §18): responses, and our in-dialog requests, go back on
the connection the dialog came on (a peer's own TLS listener would need a certificate we trust).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import inspect
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import ip_address
from typing import Any, Literal

from ..audio import AudioFormat, Frame
from ..media.clock import AsyncioMediaClock, MediaClock
from ..rtp import DtmfDigit, RtpEndpoint, RtpSession, RtpTimeout
from ..rtp.session import RtpEvent
from ..telemetry import TELEMETRY
from .core import CallStateError, SipConfig, UserAgentCore
from .crypto import SrtpKeys, SrtpPolicy
from .dialog import DialogState, transition
from .events import (
    Address,
    CallConnected,
    CallDisconnected,
    CallFailed,
    CallProgress,
    CallReinvite,
    DtmfInfo,
    IncomingCall,
    Outgoing,
    ReferAccepted,
    ReferEnded,
    ReferProgress,
    ReferReceived,
    SipEvent,
    Transport,
)
from .message import (
    MAX_MESSAGE_BYTES,
    SipHeaders,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_uri,
)
from .sdp import NegotiatedMedia, SessionDescription
from .tls import DEFAULT_TLS_PORT, SipTls

__all__ = ["CallFailedError", "SipCallLeg", "SipEndpoint"]

log = logging.getLogger("voxline.sip")

LegEvent = (
    CallProgress
    | CallConnected
    | CallReinvite
    | CallDisconnected
    | CallFailed
    | DtmfInfo
    | DtmfDigit
    | ReferAccepted
    | ReferProgress
    | ReferEnded
    | ReferReceived
)
Listener = Callable[[LegEvent], Any]


class CallFailedError(RuntimeError):
    """``wait_connected`` on a call that failed or ended before connecting."""

    def __init__(self, event: CallFailed | CallDisconnected) -> None:
        status = getattr(event, "status", None)
        super().__init__(
            f"call {event.call_id} {'failed' if status else 'ended'}: {status or ''} {event.reason}"
        )
        self.event = event
        self.status = status
        self.reason = event.reason


class SipCallLeg:
    """One call (inbound or outbound) and its RTP stream.

    Listeners (``add_listener``) get ``CallProgress``, ``CallConnected``, ``CallReinvite``,
    ``CallDisconnected``, ``CallFailed``, ``DtmfDigit`` (RFC 4733) and ``DtmfInfo`` (SIP INFO), and
    for transfers ``ReferAccepted``, ``ReferProgress``, ``ReferEnded`` and ``ReferReceived``.
    Received audio frames go to ``on_audio`` (the 20 ms path: a plain callback, no event objects).
    ``state`` is a ``DialogState`` (the core's vocabulary), as the leg's commands and events move it.
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        call_id: str,
        direction: Literal["inbound", "outbound"],
        *,
        caller_id: str = "",
        display_name: str | None = None,
        destination: str = "",
        headers: SipHeaders | None = None,
        remote_sdp: SessionDescription | None = None,
        media: NegotiatedMedia | None = None,
        remote_addr: Address | None = None,
        caller_addr: Address | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.call_id = call_id
        self.direction = direction
        self.caller_id = caller_id
        self.display_name = display_name
        self.destination = destination
        self.headers = headers or SipHeaders()
        self.remote_sdp = remote_sdp
        self.media = media
        self.remote_addr = remote_addr
        #: Who called (inbound): ``remote_addr``, or behind a trusted proxy the caller's own address.
        self.caller_addr = caller_addr or remote_addr
        self._state = DialogState.INCOMING if direction == "inbound" else DialogState.CALLING
        self.rtp: RtpEndpoint | None = None
        self._srtp_keys: SrtpKeys | None = None
        self.on_audio: Callable[[Frame], Any] | None = None
        self.end_event: CallDisconnected | CallFailed | None = None
        self._listeners: list[Listener] = []
        self._connected = asyncio.get_running_loop().create_future()
        self._ended = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<SipCallLeg {self.direction} {self.call_id} {self.state}>"

    # ---------------------------------------------------------------------------------- info

    @property
    def state(self) -> DialogState:
        return self._state

    def _move_to(self, new: DialogState) -> None:
        self._state = transition(self._state, new)  # DialogTransitionError unless in TRANSITIONS

    @property
    def codec(self) -> str | None:
        """ "PCMU" or "PCMA" once negotiated."""
        return self.media.codec.name if self.media else None

    @property
    def audio_format(self) -> AudioFormat | None:
        """``PCMU_8K`` or ``PCMA_8K``: the format of ``on_audio`` frames and of ``send_audio``."""
        return self.media.codec.format if self.media is not None else None

    @property
    def clock(self) -> MediaClock:
        """The media clock the call's RTP is sent on (the endpoint's)."""
        return self._endpoint.clock

    @property
    def sent_ms(self) -> int:
        """Milliseconds of audio given to ``send_audio`` that have left the RTP socket."""
        return self.rtp.session.sent_ms if self.rtp else 0

    @property
    def played_ms(self) -> int | None:
        """Where the audio that has actually left the RTP socket ends, on its source's timeline (the
        ``end_ms`` given to ``send_audio``), or None before any."""
        return self.rtp.session.played_ms if self.rtp else None

    @property
    def queued_ms(self) -> int:
        return self.rtp.session.queued_ms if self.rtp else 0

    # ---------------------------------------------------------------------------------- events

    def add_listener(self, callback: Listener) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _emit(self, event: LegEvent) -> None:
        for callback in tuple(self._listeners):
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    self._endpoint._spawn(result)
            except Exception:
                log.exception("listener of call %s raised on %s", self.call_id, type(event).__name__)

    async def wait_connected(self) -> None:
        """Return once connected; raise ``CallFailedError`` if the call failed or ended first."""
        await asyncio.shield(self._connected)

    async def wait_ended(self) -> CallDisconnected | CallFailed:
        return await asyncio.shield(self._ended)

    # ---------------------------------------------------------------------------------- commands

    def ringing(self) -> None:
        """Send 180 Ringing (inbound calls)."""
        self._endpoint._command(lambda core, now: core.ringing(self.call_id, now))
        self._move_to(DialogState.EARLY)

    async def answer(self) -> None:
        """Send 200 OK with our SDP answer; returns once it is sent. ``CallConnected`` follows on ACK."""
        if self.direction != "inbound":
            raise CallStateError(f"call {self.call_id} is outbound: only inbound calls are answered")
        if self.state not in (DialogState.INCOMING, DialogState.EARLY):
            raise CallStateError(f"call {self.call_id} is {self.state}: cannot answer")
        await self._open_rtp()
        if self.state not in (DialogState.INCOMING, DialogState.EARLY):  # cancelled meanwhile
            raise CallStateError(f"call {self.call_id} is {self.state}: cannot answer")
        assert self.rtp is not None
        port = self.rtp.local_addr[1]
        self._endpoint._command(lambda core, now: core.answer(self.call_id, now, port))
        if self.state in (DialogState.INCOMING, DialogState.EARLY):  # not ended by the command
            self._move_to(DialogState.ANSWERING)

    def reject(self, code: int = 486, reason: str | None = None) -> None:
        """Reject an inbound call with a final failure response (300..699)."""
        self._endpoint._command(lambda core, now: core.reject(self.call_id, now, code, reason))

    def hangup(self, reason: str = "hangup") -> None:
        """End the call in any state (BYE, CANCEL, or 603 when not answered). Idempotent."""
        if self.state is DialogState.ENDED:
            return
        self._endpoint._command(lambda core, now: core.hangup(self.call_id, now, reason))

    def send_audio(self, payload: bytes, end_ms: int | None = None) -> None:
        """Send encoded audio in the call's codec (``leg.codec``), normally one 20 ms frame from a
        source paced on the endpoint's clock: a talkspurt's first frame leaves at once, the rest in
        their slots. ``end_ms`` is where it ends on its source's timeline (see ``played_ms``)."""
        if self.rtp is None:
            raise CallStateError(f"call {self.call_id} has no media yet: answer it first")
        self.rtp.push_audio(payload, end_ms)

    def clear_audio(self) -> int:
        """Drop audio not yet sent at once (barge-in); returns the milliseconds dropped."""
        return self.rtp.session.clear_audio() if self.rtp else 0

    def transfer(
        self,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Blind transfer (REFER, see ``UserAgentCore.transfer``): ``ReferAccepted``,
        ``ReferProgress`` and ``ReferEnded`` follow as events; the call stays up until hung up."""
        self._endpoint._command(
            lambda core, now: core.transfer(self.call_id, now, target, headers=headers, timeout=timeout)
        )

    def accept_refer(self) -> None:
        """Accept the peer's REFER (``ReferReceived``): 202 and NOTIFY ``100 Trying``; report the
        call to the target with ``notify_refer``."""
        self._endpoint._command(lambda core, now: core.accept_refer(self.call_id, now))

    def reject_refer(self, code: int = 603, reason: str | None = None) -> None:
        self._endpoint._command(lambda core, now: core.reject_refer(self.call_id, now, code, reason))

    def notify_refer(self, code: int, reason: str | None = None) -> None:
        """A NOTIFY to the referrer with the sipfrag status ``code`` (final: the subscription ends)."""
        self._endpoint._command(lambda core, now: core.notify_refer(self.call_id, now, code, reason))

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        if self.rtp is None:
            raise CallStateError(f"call {self.call_id} has no media yet")
        self.rtp.session.send_dtmf(digits, duration_ms)

    # ---------------------------------------------------------------------------------- internals

    async def _open_rtp(self) -> None:
        if self.rtp is not None:
            return
        ep = self._endpoint
        media = self.media
        session = RtpSession(
            payload_type=media.codec.payload_type if media else 0,
            remote_addr=self._media_addr(media),
            dtmf_payload_type=media.dtmf_payload_type if media else ep.config.dtmf_payload_type,
            inactivity_timeout_ms=ep.rtp_inactivity_timeout_ms,
            now_ms=ep.clock.now_ms(),
        )
        if ep.rtp_ports is None:
            self.rtp = await RtpEndpoint.create(session, ep.rtp_host, 0, self._on_rtp_event, clock=ep.clock)
            self._apply_srtp(media)
            return
        # A port of the range (even, as RTP's are), starting after the last one handed out.
        low, high = ep.rtp_ports
        count = (high - low + 1) // 2
        for _ in range(count):
            port = low + 2 * (ep.next_rtp_slot % count)
            ep.next_rtp_slot += 1
            try:
                self.rtp = await RtpEndpoint.create(
                    session, ep.rtp_host, port, self._on_rtp_event, clock=ep.clock
                )
                self._apply_srtp(media)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free RTP port in {low}-{high}")

    @staticmethod
    def _media_addr(media: NegotiatedMedia | None) -> Address | None:
        if media is None or media.remote_port == 0 or media.remote_host in ("0.0.0.0", "::"):
            return None
        if not _is_ip(media.remote_host):
            return None  # never a name: sendto() would resolve it, blocking, for every packet
        return media.remote_addr

    def _apply_media(self, media: NegotiatedMedia | None) -> None:
        if media is None:
            return
        self.media = media
        if self.rtp is None:
            return
        self._apply_srtp(media)
        addr = self._media_addr(media)
        self.rtp.session.set_media(
            payload_type=media.codec.payload_type,
            dtmf_payload_type=media.dtmf_payload_type,
            remote_addr=addr,
            sending=media.direction in ("sendrecv", "sendonly") and addr is not None,
            # A held peer may stop sending: no inactivity timeout while held.
            inactivity_timeout_ms=None if media.on_hold else self._endpoint.rtp_inactivity_timeout_ms,
            now_ms=self.rtp.now_ms(),
        )

    def _apply_srtp(self, media: NegotiatedMedia | None) -> None:
        """SRTP on the RTP socket as negotiated (new keys: new libsrtp sessions; none: plain RTP)."""
        if self.rtp is None or media is None or media.srtp == self._srtp_keys:
            return
        keys = self._srtp_keys = media.srtp
        if keys is None:
            self.rtp.set_srtp(None)
        else:
            self.rtp.set_srtp(keys.suite, keys.local_key, keys.remote_key)

    @property
    def srtp(self) -> str | None:
        """The SRTP suite protecting the call's RTP, or None for plain RTP."""
        return self._srtp_keys.suite if self._srtp_keys is not None else None

    def _on_rtp_event(self, event: RtpEvent) -> None:
        if isinstance(event, Frame):
            if self.on_audio is not None:
                self.on_audio(event)
        elif isinstance(event, DtmfDigit):
            self._emit(event)
        elif isinstance(event, RtpTimeout) and self.state in (DialogState.ANSWERING, DialogState.CONNECTED):
            log.info("call %s: no RTP for %.0f ms, hanging up", self.call_id, event.idle_ms)
            reason = f"no RTP for {event.idle_ms / 1000:.0f} s"
            self._endpoint._command(lambda core, now: core.hangup(self.call_id, now, reason, "timeout"))

    def _on_sip_event(self, event: SipEvent) -> None:
        if isinstance(event, CallConnected):
            self._move_to(DialogState.CONNECTED)
            self._apply_media(event.media)
            if self.rtp is not None:
                self.rtp.start()
            if not self._connected.done():
                self._connected.set_result(None)
        elif isinstance(event, CallReinvite):
            self._apply_media(event.media)
        elif isinstance(event, CallProgress):
            self._move_to(DialogState.PROCEEDING)
        elif isinstance(event, (CallDisconnected, CallFailed)):
            self._move_to(DialogState.ENDED)
            self.end_event = event
            self._close_media()
            if not self._connected.done():
                self._connected.set_exception(CallFailedError(event))
                self._connected.exception()  # retrieved: nobody may be waiting for it
            if not self._ended.done():
                self._ended.set_result(event)
        if not isinstance(event, IncomingCall):
            self._emit(event)
        if isinstance(event, (CallDisconnected, CallFailed)):
            self._listeners.clear()

    def _close_media(self) -> None:
        if self.rtp is not None:
            if not self.rtp.closed:
                session = self.rtp.session
                TELEMETRY.rtp_stream_finished(
                    session.stats["received"],
                    session.jitter.lost,
                    session.jitter.late,
                    session.jitter_ms / 1000,
                )
            self.rtp.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.endpoint._on_message(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket error: %s", str(exc))


class SipEndpoint:
    """SIP over UDP and TCP on one listen address, with the calls it carries.

    Inbound calls go to ``on_incoming_call(leg)`` (sync or async) or, without one, to ``accept()``.
    Limits: ``max_calls`` concurrent calls (503 beyond), ``max_message_bytes`` per message (513
    beyond), ``rtp_inactivity_timeout_ms`` (a call without RTP that long is hung up; None disables).
    ``allow_sources``: IPs / CIDR networks that may call in (403 to others, see ``SipConfig``; None:
    anyone). ``trusted_proxies``: IPs / CIDRs of SIP proxies in front, whose callers' addresses are
    read from their Via headers (see ``SipConfig``). ``tcp_message_timeout`` / ``tcp_idle_timeout``:
    seconds, see the module docstring (None disables). ``allow_sources``, ``trusted_proxies`` and
    ``max_message_bytes``, when given, override those of ``config``.
    ``readiness``: asked on each OPTIONS outside a dialog (None: ready, else the reason for a 503; see
    ``voxline.sip.core``). ``rtp_ports``: (low, high), the range RTP sockets bind in (even ports,
    taken in turn; None: any port the system gives; ``voxline run --workers`` splits one range).
    Every call's RTP is sent on ``clock`` (default: ``AsyncioMediaClock.for_loop()``, the clock of the
    playouts), from when the call connects until its media closes. ``tls``: SIP over TLS (see the
    module docstring). ``srtp``: the SRTP policy of calls (``SipConfig.srtp``; overrides ``config``'s).
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 5060,
        *,
        advertise_host: str | None = None,
        transports: Iterable[Transport] = ("udp", "tcp"),
        max_calls: int = 100,
        rtp_host: str | None = None,
        rtp_inactivity_timeout_ms: float | None = 30_000,
        clock: MediaClock | None = None,
        config: SipConfig | None = None,
        on_incoming_call: Callable[[SipCallLeg], Any] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        allow_sources: Sequence[str] | None = None,
        trusted_proxies: Sequence[str] | None = None,
        tcp_message_timeout: float | None = 10.0,
        tcp_idle_timeout: float | None = 300.0,
        readiness: Callable[[], str | None] | None = None,
        rtp_ports: tuple[int, int] | None = None,
        tls: SipTls | None = None,
        srtp: SrtpPolicy | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.tls_port: int | None = None
        self._tls_server: asyncio.Server | None = None
        self._tls_client: ssl.SSLContext | None = None
        self._tls_writers: dict[Address, asyncio.StreamWriter] = {}
        self._tls_pending: dict[Address, list[bytes]] = {}
        self._tls_names: dict[Address, str] = {}  # the name to verify for a target we resolved
        if rtp_ports is not None and not (1024 <= rtp_ports[0] < rtp_ports[1] <= 65535):
            raise ValueError(
                f"rtp_ports must be (low, high) with 1024 <= low < high <= 65535, got {rtp_ports}"
            )
        self.rtp_ports = rtp_ports
        self.next_rtp_slot = 0
        self.requested_port = port
        self.transports = tuple(transports)
        if not self.transports or any(t not in ("udp", "tcp") for t in self.transports):
            raise ValueError(
                f"transports must be a non-empty subset of ('udp', 'tcp'), got {self.transports}"
            )
        timeouts = {"tcp_message_timeout": tcp_message_timeout, "tcp_idle_timeout": tcp_idle_timeout}
        for name, value in timeouts.items():
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, got {value}")
        if config is None:
            # SipConfig validates allow_sources (ValueError naming the bad entry) and the size.
            config = SipConfig(
                max_calls=max_calls,
                allow_sources=allow_sources,
                trusted_proxies=trusted_proxies,
                max_message_bytes=max_message_bytes,
                srtp=srtp,
            )
        else:
            overrides: dict[str, Any] = {}
            if allow_sources is not None:
                overrides["allow_sources"] = allow_sources
            if trusted_proxies is not None:
                overrides["trusted_proxies"] = trusted_proxies
            if max_message_bytes != MAX_MESSAGE_BYTES:
                overrides["max_message_bytes"] = max_message_bytes
            if srtp is not None:
                overrides["srtp"] = srtp
            if overrides:
                config = dataclasses.replace(config, **overrides)
        self.config = config
        self.tcp_message_timeout = tcp_message_timeout
        self.tcp_idle_timeout = tcp_idle_timeout
        self.advertise_host = advertise_host
        self.rtp_host = rtp_host or host
        self.rtp_inactivity_timeout_ms = rtp_inactivity_timeout_ms
        self._clock = clock
        self.on_incoming_call = on_incoming_call
        self.readiness = readiness
        self.core: UserAgentCore | None = None
        self.legs: dict[str, SipCallLeg] = {}
        self._incoming: asyncio.Queue[SipCallLeg] = asyncio.Queue()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp_writers: dict[Address, asyncio.StreamWriter] = {}
        self._tcp_pending: dict[Address, list[bytes]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_tasks: set[asyncio.Task[Any]] = set()  # readers of accepted connections
        self._local_ips: dict[str, str] = {}
        self._io_stats = {
            "tcp_message_timeouts": 0,
            "tcp_idle_closed": 0,
            "tcp_framing_errors": 0,
            "tcp_backlog_closed": 0,
            "tls_accepted": 0,  # TLS connections accepted (handshake done)
            "tls_connected": 0,  # our own TLS connections (handshake done, certificate verified)
            "tls_connect_failed": 0,  # ours that failed: refused, timed out, or a certificate not trusted
        }
        self.port = 0

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> SipEndpoint:
        loop = asyncio.get_running_loop()
        port = self.requested_port
        for attempt in range(20):
            try:
                if "udp" in self.transports:
                    udp, _ = await loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(self), local_addr=(self.host, port)
                    )
                    self._udp = udp
                    port = udp.get_extra_info("sockname")[1]
                if "tcp" in self.transports:
                    self._tcp_server = await asyncio.start_server(self._on_tcp_client, self.host, port)
                    port = self._tcp_server.sockets[0].getsockname()[1]
                break
            except OSError:
                # Port 0: the UDP port we got may be taken for TCP; try another pair.
                if self._udp is not None:
                    self._udp.close()
                    self._udp = None
                if self.requested_port != 0 or attempt == 19:
                    raise
                port = 0
        self.port = port
        if self.tls is not None:
            await self._start_tls(self.tls)
        # The core's own config, with the port we got and the address we advertise: the SipConfig
        # given to the endpoint is not written to, and nothing changes the core's after this.
        advertised = self.advertise_host or (self.host if not _unspecified(self.host) else "127.0.0.1")
        self.config = dataclasses.replace(self.config, port=port, host=advertised, tls_port=self.tls_port)
        self.core = UserAgentCore(self.config, readiness=self.readiness)
        return self

    async def close(self) -> None:
        """Hang up every call, send what is pending, close sockets."""
        for leg in list(self.legs.values()):
            with contextlib.suppress(CallStateError):
                leg.hangup("endpoint closing")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._udp is not None:
            self._udp.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        for writer in [*self._tcp_writers.values(), *self._tls_writers.values()]:
            writer.close()
        self._tcp_writers.clear()
        self._tls_writers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tcp_tasks:
            # Let the accepted connections' readers see their close and end, rather than be
            # cancelled whenever the loop stops.
            await asyncio.wait(list(self._tcp_tasks), timeout=1.0)

    async def __aenter__(self) -> SipEndpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def clock(self) -> MediaClock:
        """The media clock RTP is sent on; default the running loop's shared clock."""
        if self._clock is None:
            self._clock = AsyncioMediaClock.for_loop()
        return self._clock

    @property
    def max_message_bytes(self) -> int:
        return self.config.max_message_bytes

    @property
    def stats(self) -> dict[str, int]:
        """The core's counters (see ``UserAgentCore.stats``) and the TCP transport's."""
        return {**self.core.stats, **self._io_stats} if self.core else {}

    def stop_accepting(self) -> None:
        """New calls get ``503`` with ``Retry-After`` from now on (``stats['rejected_draining']``);
        calls in progress go on. For draining before ``close()``; see ``UserAgentCore.stop_accepting``."""
        self._command(lambda core, now: core.stop_accepting(now))

    async def accept(self) -> SipCallLeg:
        """The next inbound call (when no ``on_incoming_call`` callback is set)."""
        return await self._incoming.get()

    # ---------------------------------------------------------------------------------- outbound

    async def call(
        self,
        uri: str,
        *,
        caller_id: str | None = None,
        display_name: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        auth: tuple[str, str] | None = None,
        transport: Transport | None = None,
        target: Address | None = None,
    ) -> SipCallLeg:
        """Place a call; returns the leg at once (INVITE sent). ``await leg.wait_connected()``.
        ``transport`` None: TLS for a ``sips:`` or ``;transport=tls`` URI, else UDP."""
        core = self._core()
        try:
            parsed = parse_uri(uri)
        except SipParseError as exc:
            raise ValueError(f"uri: {exc}") from None
        if transport is None:
            secure = parsed.scheme == "sips" or (parsed.params.get("transport") or "").lower() == "tls"
            transport = "tls" if secure else "udp"
        if transport == "tls" and self.tls is None:
            raise ValueError(f"uri {uri!r} needs TLS, which this endpoint has not (tls=SipTls(...))")
        if transport != "tls" and transport not in self.transports:
            raise ValueError(f"transport {transport!r} is not enabled on this endpoint ({self.transports})")
        if target is None and parsed.scheme != "tel":
            host = parsed.host
            if not _is_ip(host):
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
                host = str(infos[0][4][0])
            target = (host, parsed.port or (DEFAULT_TLS_PORT if transport == "tls" else 5060))
            if transport == "tls":
                self._tls_names[target] = parsed.host  # the name its certificate must carry
        local_host = self._local_host_for(target[0]) if target else None
        leg = SipCallLeg(self, "", "outbound", destination=parsed.user or "")
        await leg._open_rtp()
        assert leg.rtp is not None
        rtp_port = leg.rtp.local_addr[1]
        now = self._now()
        call_id = core.call(
            uri,
            now,
            rtp_port=rtp_port,
            caller_id=caller_id,
            display_name=display_name,
            headers=headers,
            auth=auth,
            target=target,
            transport=transport,
            local_host=local_host,
        )
        leg.call_id = call_id
        leg.caller_id = caller_id or self.config.user
        leg.display_name = display_name
        leg.remote_addr = target
        self.legs[call_id] = leg
        self._flush()
        return leg

    def send_request(
        self,
        req: SipRequest,
        target: Address,
        on_response: Callable[[SipResponse, float], Any],
        transport: Transport = "udp",
    ) -> None:
        """Send a non-INVITE request outside any dialog (a REGISTER) in a client transaction of the
        core; its responses (or the transaction's 408) go to ``on_response(response, now)``."""
        if transport not in self.transports:
            raise ValueError(f"transport {transport!r} is not enabled on this endpoint ({self.transports})")
        self._command(lambda core, now: core.send_request(req, target, now, on_response, transport))

    def local_host_for(self, peer_ip: str) -> str:
        """The address we advertise (Via, Contact) towards ``peer_ip``."""
        return self._local_host_for(peer_ip)

    # ---------------------------------------------------------------------------------- internals

    def _core(self) -> UserAgentCore:
        if self.core is None:
            raise RuntimeError("SipEndpoint is not started: await endpoint.start() first")
        return self.core

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _spawn(self, awaitable: Any) -> None:
        async def run() -> None:
            try:
                await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SIP callback raised")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _local_host_for(self, peer_ip: str) -> str:
        """The address to advertise towards ``peer_ip`` (for a wildcard listen address)."""
        if self.advertise_host:
            return self.advertise_host
        if not _unspecified(self.host):
            return self.host
        cached = self._local_ips.get(peer_ip)
        if cached is None:
            family = socket.AF_INET6 if ":" in peer_ip else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.connect((peer_ip, 9))  # no packet is sent: this only asks the routing table
                    cached = s.getsockname()[0]
            except OSError:
                cached = "127.0.0.1"
            self._local_ips[peer_ip] = cached
        return cached

    def _command(self, fn: Callable[[UserAgentCore, float], Any]) -> Any:
        result = fn(self._core(), self._now())
        self._flush()
        return result

    def _on_message(self, data: bytes, addr: Address, transport: Transport) -> None:
        # The core refuses what is too large (513) after a look at the header section only.
        self._core().receive(data, addr, self._now(), transport, self._local_host_for(addr[0]))
        self._flush()

    def _flush(self) -> None:
        if self._flushing:
            return  # the outer flush loop picks it up
        self._flushing = True
        try:
            core = self._core()
            while True:
                out = core.data_to_send()
                events = core.events_received()
                if not out and not events:
                    break
                for item in out:
                    try:
                        self._write(item)
                    except (OSError, ValueError, TypeError) as exc:  # e.g. an IPv6 target on an IPv4 socket
                        log.info("cannot send SIP to %s:%s over %s: %s", *item.addr, item.transport, str(exc))
                for event in events:
                    try:
                        self._handle(event)
                    except Exception:
                        log.exception("handling %s raised", type(event).__name__)
        finally:
            self._flushing = False
        self._rearm()

    def _rearm(self) -> None:
        deadline = self._core().next_deadline()
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._core().tick(self._now())
        self._flush()

    def _write(self, item: Outgoing) -> None:
        if item.transport == "udp":
            if self._udp is not None and not self._udp.is_closing():
                self._udp.sendto(item.data, item.addr)
            return
        tls = item.transport == "tls"
        writers = self._tls_writers if tls else self._tcp_writers
        writer = writers.get(item.addr)
        if writer is not None and not writer.is_closing():
            writer.write(item.data)
            if writer.transport.get_write_buffer_size() > _TCP_BACKLOG:
                # A peer that sends requests but never reads its answers must not grow our buffer.
                self._io_stats["tcp_backlog_closed"] += 1
                log.info("closing SIP TCP connection to %s:%s: it does not read what we send", *item.addr)
                writer.transport.abort()  # close() would wait for the unread buffer to drain
            return
        pendings = self._tls_pending if tls else self._tcp_pending
        pending = pendings.get(item.addr)
        if pending is not None:
            pending.append(item.data)
            return
        pendings[item.addr] = [item.data]
        self._spawn(self._tcp_connect(item.addr, item.transport))

    def _handle(self, event: SipEvent) -> None:
        if isinstance(event, IncomingCall):
            leg = SipCallLeg(
                self,
                event.call_id,
                "inbound",
                caller_id=event.caller_id,
                display_name=event.display_name,
                destination=event.destination,
                headers=event.headers,
                remote_sdp=event.offer,
                media=event.media,
                remote_addr=event.source,
                caller_addr=event.caller_address,
            )
            if event.caller_address is not None and event.caller_address != event.source:
                log.info(
                    "call %s from %s:%s via proxy %s:%s",
                    event.call_id,
                    *event.caller_address,
                    *event.source,
                )
            self.legs[event.call_id] = leg
            if self.on_incoming_call is not None:
                try:
                    result = self.on_incoming_call(leg)
                    if inspect.isawaitable(result):
                        self._spawn(result)
                except Exception:
                    log.exception("on_incoming_call raised; rejecting %s", event.call_id)
                    with contextlib.suppress(CallStateError):
                        self._core().reject(event.call_id, self._now(), 500)
            else:
                self._incoming.put_nowait(leg)
            return
        existing = self.legs.get(event.call_id)
        if existing is None:
            return
        existing._on_sip_event(event)
        if isinstance(event, (CallDisconnected, CallFailed)):
            self.legs.pop(event.call_id, None)

    # ---------------------------------------------------------------------------------- TCP

    async def _start_tls(self, tls: SipTls) -> None:
        """The TLS client context, and the listener when ``tls.port`` is set (ValueError: bad files)."""
        self._tls_client = tls.client_context()
        if tls.port is None:
            return
        server_context = tls.server_context()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._on_tcp_client(reader, writer, "tls")

        self._tls_server = await asyncio.start_server(
            on_client,
            tls.host or self.host,
            tls.port,
            ssl=server_context,
            # A peer that never finishes its handshake is cut off like a stalled message.
            ssl_handshake_timeout=self.tcp_message_timeout or 10.0,
        )
        self.tls_port = self._tls_server.sockets[0].getsockname()[1]

    async def _on_tcp_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: Transport = "tcp"
    ) -> None:
        peer = writer.get_extra_info("peername")
        if transport == "tls":
            self._io_stats["tls_accepted"] += 1
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        try:
            await self._tcp_read_loop((peer[0], peer[1]), reader, writer, transport)
        except asyncio.CancelledError:
            # The loop is going away. Python 3.11's StreamReaderProtocol logs a cancelled handler
            # task as an error (task.exception() raises): end quietly instead.
            pass
        finally:
            if task is not None:
                self._tcp_tasks.discard(task)

    async def _tcp_connect(self, addr: Address, transport: Transport = "tcp") -> None:
        pendings = self._tls_pending if transport == "tls" else self._tcp_pending
        tls: dict[str, Any] = {}
        if transport == "tls":
            # Verified (unless SipTls says otherwise) against the name the call's URI gave.
            tls = {"ssl": self._tls_client, "server_hostname": self._tls_names.get(addr, addr[0])}
        try:
            # Bounded like a message: a black-holed peer must not keep the pending data forever.
            async with asyncio.timeout(self.tcp_message_timeout):
                reader, writer = await asyncio.open_connection(addr[0], addr[1], **tls)
        except (OSError, ssl.SSLError) as exc:  # TimeoutError and certificate errors included
            log.info("SIP %s connect to %s:%s failed: %s", transport.upper(), *addr, str(exc) or "timed out")
            pendings.pop(addr, None)
            if transport == "tls":
                self._io_stats["tls_connect_failed"] += 1
            return
        if transport == "tls":
            self._io_stats["tls_connected"] += 1
        for data in pendings.pop(addr, []):
            writer.write(data)
        await self._tcp_read_loop(addr, reader, writer, transport)

    def _tcp_deadline(self, last_traffic: float, message_started: float | None) -> tuple[float | None, bool]:
        """(when to give up waiting for bytes, whether that is the idle timeout)."""
        if message_started is not None and self.tcp_message_timeout is not None:
            return message_started + self.tcp_message_timeout, False
        if self.tcp_idle_timeout is not None:
            return last_traffic + self.tcp_idle_timeout, True
        return None, True

    async def _tcp_read_loop(
        self,
        addr: Address,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transport: Transport = "tcp",
    ) -> None:
        writers = self._tls_writers if transport == "tls" else self._tcp_writers
        writers[addr] = writer
        core = self._core()
        framer = StreamFramer(self.max_message_bytes)
        loop = asyncio.get_running_loop()
        last_traffic = loop.time()
        message_started: float | None = None  # when the first byte of the unfinished message came
        try:
            while True:
                deadline, idle = self._tcp_deadline(last_traffic, message_started)
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(8192)  # a few ms of parsing at most per turn
                except TimeoutError:
                    if not idle:
                        self._io_stats["tcp_message_timeouts"] += 1
                        log.info(
                            "closing SIP TCP connection from %s:%s: message incomplete after %g s",
                            addr[0],
                            addr[1],
                            self.tcp_message_timeout,
                        )
                        break
                    if core.has_calls_on(addr, transport):
                        last_traffic = loop.time()  # a call's BYE may still come this way
                        continue
                    self._io_stats["tcp_idle_closed"] += 1
                    log.info(
                        "closing idle SIP TCP connection from %s:%s (%g s without traffic)",
                        addr[0],
                        addr[1],
                        self.tcp_idle_timeout,
                    )
                    break
                if not data:
                    break
                now = last_traffic = loop.time()
                was_partial = framer.partial
                messages = framer.feed(data)
                if framer.pings:
                    writer.write(b"\r\n" * framer.pings)  # RFC 5626 §4.4.1: each ping gets a pong
                    framer.pings = 0
                for message in messages:
                    self._on_message(message, addr, transport)
                if framer.error:
                    self._io_stats["tcp_framing_errors"] += 1
                    if framer.error_head is not None:
                        # Answered (400 / 513) before the close: the peer learns why.
                        core.refuse_message(
                            framer.error_head, addr, self._now(), transport, framer.error_status, framer.error
                        )
                        self._flush()
                    log.info("closing SIP TCP connection from %s:%s: %s", addr[0], addr[1], framer.error)
                    break
                if not framer.partial:
                    message_started = None
                elif messages or not was_partial:
                    message_started = now
                # Many messages in one read: let RTP sending and timers run before the next chunk.
                await asyncio.sleep(0)
        except OSError:  # ConnectionError included
            pass
        finally:
            if writers.get(addr) is writer:
                del writers[addr]
            writer.close()


_TCP_BACKLOG = 1 << 20  # bytes of answers a TCP peer may leave unread before it is cut off


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")
