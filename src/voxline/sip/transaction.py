"""RFC 3261 §17 transactions, sans-I/O: time is passed in, bytes go out through a send callback.

Each transaction has ``deadline()`` (the next timer, or None) and ``tick(now)``. Over a reliable
transport (TCP) nothing is retransmitted and the wait timers D, I, J, K are zero (§17.1.1.2, §17.2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .message import SipRequest, SipResponse

__all__ = [
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "State",
    "Timers",
]


@dataclass(frozen=True, slots=True)
class Timers:
    """T1 (RTT estimate), T2 (max retransmit interval for non-INVITE), T4 (max network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def b(self) -> float:  # also F, H, J, L, M: 64*T1
        return 64 * self.t1


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


Send = Callable[[bytes], None]


class _Transaction:
    def __init__(self, send: Send, reliable: bool, timers: Timers) -> None:
        self._send = send
        self.reliable = reliable
        self.timers = timers
        self.state = State.TRYING
        self._timers: dict[str, float] = {}

    def deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    def _due(self, now: float) -> list[str]:
        due = sorted((when, name) for name, when in self._timers.items() if when <= now)
        for _, name in due:
            del self._timers[name]
        return [name for _, name in due]

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._timers.clear()


class ServerInviteTransaction(_Transaction):
    """INVITE server transaction (§17.2.1 with RFC 6026's Accepted state).

    After a 2xx it stays Accepted for 64*T1 and absorbs retransmitted INVITEs; the 2xx itself is
    retransmitted by the user agent core until the ACK (a new transaction) arrives. After a non-2xx
    final response: Timer G retransmits it (T1, doubling up to T2) until ACK or Timer H (64*T1).
    """

    def __init__(self, request: SipRequest, send: Send, reliable: bool, timers: Timers) -> None:
        super().__init__(send, reliable, timers)
        self.request = request
        self.state = State.PROCEEDING
        self.last_response: bytes | None = None
        self.final_status: int | None = None
        self.ack_timed_out = False
        self._g_interval = timers.t1

    def respond(self, response: SipResponse, now: float) -> None:
        if self.state not in (State.PROCEEDING,):
            return
        data = bytes(response)
        self.last_response = data
        self._send(data)
        if response.status < 200:
            return
        self.final_status = response.status
        if response.status < 300:
            self.state = State.ACCEPTED
            self._timers = {"L": now + self.timers.b}
        else:
            self.state = State.COMPLETED
            self._timers = {"H": now + self.timers.b}
            if not self.reliable:
                self._timers["G"] = now + self._g_interval

    def on_retransmission(self) -> None:
        """The same INVITE again: resend the last provisional or final response, absorb in Accepted."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def on_ack(self, now: float) -> None:
        if self.state is State.COMPLETED:
            self.state = State.CONFIRMED
            self._timers = {"I": now + (0.0 if self.reliable else self.timers.t4)}

    def tick(self, now: float) -> None:
        for name in self._due(now):
            if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
                self._send(self.last_response)
                self._g_interval = min(2 * self._g_interval, self.timers.t2)
                self._timers["G"] = now + self._g_interval
            elif name == "H" and self.state is State.COMPLETED:
                self.ack_timed_out = True
                self._terminate()
            elif name in ("I", "L"):
                self._terminate()


class ServerNonInviteTransaction(_Transaction):
    """Non-INVITE server transaction (§17.2.2): retransmitted requests get the last response again."""

    def __init__(self, request: SipRequest, send: Send, reliable: bool, timers: Timers) -> None:
        super().__init__(send, reliable, timers)
        self.request = request
        self.last_response: bytes | None = None

    def respond(self, response: SipResponse, now: float) -> None:
        if self.state in (State.COMPLETED, State.TERMINATED):
            return
        data = bytes(response)
        self.last_response = data
        self._send(data)
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._timers = {"J": now + (0.0 if self.reliable else self.timers.b)}

    def on_retransmission(self) -> None:
        if self.last_response is not None:
            self._send(self.last_response)

    def tick(self, now: float) -> None:
        if "J" in self._due(now):
            self._terminate()


OnResponse = Callable[[SipResponse, float], None]


class ClientInviteTransaction(_Transaction):
    """INVITE client transaction (§17.1.1): Timer A retransmits (T1 doubling) while Calling, Timer B
    (64*T1) times out. A non-2xx final response is ACKed here (same branch) and Timer D absorbs its
    retransmissions; 2xx responses (also retransmitted ones) all go to the core, which ACKs them."""

    def __init__(
        self,
        request: SipRequest,
        send: Send,
        reliable: bool,
        timers: Timers,
        now: float,
        on_response: OnResponse,
    ) -> None:
        super().__init__(send, reliable, timers)
        self.request = request
        self.state = State.CALLING
        self._data = bytes(request)
        self._on_response = on_response
        self._a_interval = timers.t1
        self._ack: bytes | None = None
        self._send(self._data)
        self._timers["B"] = now + timers.b
        if not reliable:
            self._timers["A"] = now + self._a_interval

    def receive(self, response: SipResponse, now: float) -> None:
        if self.state in (State.CALLING, State.PROCEEDING):
            if response.status < 200:
                self.state = State.PROCEEDING
                self._timers.pop("A", None)
                self._timers.pop("B", None)
            elif response.status < 300:
                self.state = State.ACCEPTED
                self._timers = {"M": now + self.timers.b}
            else:
                self.state = State.COMPLETED
                self._ack = bytes(self._build_ack(response))
                self._send(self._ack)
                self._timers = {"D": now + (0.0 if self.reliable else 32.0)}
            self._on_response(response, now)
        elif self.state is State.ACCEPTED and 200 <= response.status < 300:
            self._on_response(response, now)  # retransmitted 2xx: the core re-sends its ACK
        elif self.state is State.COMPLETED and response.status >= 300 and self._ack is not None:
            self._send(self._ack)

    def _build_ack(self, response: SipResponse) -> SipRequest:
        # §17.1.1.3: same Request-URI, Call-ID, From, top Via and Route; To from the response.
        req = self.request
        ack = SipRequest(method="ACK", uri=req.uri)
        ack.headers.add("Via", req.headers.get_all("Via")[0])
        for name in ("Route",):
            for value in req.headers.get_all(name):
                ack.headers.add(name, value)
        ack.headers.add("Max-Forwards", "70")
        ack.headers.add("From", req.headers.get("From") or "")
        ack.headers.add("To", response.headers.get("To") or "")
        ack.headers.add("Call-ID", req.call_id)
        ack.headers.add("CSeq", f"{req.cseq[0]} ACK")
        return ack

    def tick(self, now: float) -> None:
        for name in self._due(now):
            if name == "A" and self.state is State.CALLING:
                self._send(self._data)
                self._a_interval *= 2
                self._timers["A"] = now + self._a_interval
            elif name == "B" and self.state is State.CALLING:
                self._terminate()
                self._on_response(_timeout(self.request), now)
            elif name in ("D", "M"):
                self._terminate()


class ClientNonInviteTransaction(_Transaction):
    """Non-INVITE client transaction (§17.1.2): Timer E retransmits (T1 doubling up to T2; T2 once a
    provisional arrived), Timer F (64*T1) times out with a synthetic 408, Timer K absorbs."""

    def __init__(
        self,
        request: SipRequest,
        send: Send,
        reliable: bool,
        timers: Timers,
        now: float,
        on_response: OnResponse,
    ) -> None:
        super().__init__(send, reliable, timers)
        self.request = request
        self._data = bytes(request)
        self._on_response = on_response
        self._e_interval = timers.t1
        self._send(self._data)
        self._timers["F"] = now + timers.b
        if not reliable:
            self._timers["E"] = now + self._e_interval

    def receive(self, response: SipResponse, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        if response.status < 200:
            self.state = State.PROCEEDING
            if "E" in self._timers:
                self._e_interval = self.timers.t2
                self._timers["E"] = now + self._e_interval
            self._on_response(response, now)
            return
        self.state = State.COMPLETED
        self._timers = {"K": now + (0.0 if self.reliable else self.timers.t4)}
        self._on_response(response, now)

    def tick(self, now: float) -> None:
        for name in self._due(now):
            if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
                self._send(self._data)
                if self.state is State.TRYING:
                    self._e_interval = min(2 * self._e_interval, self.timers.t2)
                self._timers["E"] = now + self._e_interval
            elif name == "F" and self.state in (State.TRYING, State.PROCEEDING):
                self._terminate()
                self._on_response(_timeout(self.request), now)
            elif name == "K":
                self._terminate()


def _timeout(request: SipRequest) -> SipResponse:
    """The 408 a transaction reports to its user when the peer never answered (§8.1.3.1)."""
    resp = SipResponse(status=408, reason="Request Timeout")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.get_all(name):
            resp.headers.add(name, value)
    return resp
