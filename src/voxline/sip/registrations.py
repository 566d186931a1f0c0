"""asyncio I/O for registrations: ``Registrations`` drives one sans-I/O ``Registration`` per account
(``voxline.sip.register``) over a running ``SipEndpoint`` (its sockets and client transactions), with
one ``call_at`` timer for all their refreshes and retries.

Calls the registrar sends us (to the Contact we registered) come in on the endpoint like any other:
the scenario sees them as direct calls.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import Any

from ..telemetry import TELEMETRY
from .endpoint import SipEndpoint
from .message import SipResponse
from .register import (
    Account,
    Registration,
    RegistrationEnded,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationState,
    RegistrationSucceeded,
)

__all__ = ["Registrations", "resolve_registrar"]

log = logging.getLogger("voxline.sip")


async def resolve_registrar(account: Account) -> tuple[str, int]:
    """The registrar's (IP, port). Raises ValueError naming the account when the name does not resolve."""
    host, port = account.target
    try:
        ip_address(host)
        return host, port
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"register: cannot resolve the registrar {host!r} of {account.aor}: {exc}") from None
    return str(infos[0][4][0]), port


class Registrations:
    """The accounts' registrations on ``endpoint``. ``on_event`` gets every ``RegistrationEvent``.
    ``retry_base_s`` / ``retry_max_s``: the backoff after a failure (see ``Registration``)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        accounts: Iterable[Account],
        *,
        on_event: Callable[[RegistrationEvent], Any] | None = None,
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
    ) -> None:
        self.endpoint = endpoint
        self.accounts = tuple(accounts)
        self.on_event = on_event
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.registrations: list[Registration] = []
        self._targets: dict[int, tuple[str, int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Resolve the registrars and send the first REGISTERs (the answers come later: events)."""
        endpoint = self.endpoint
        for account in self.accounts:
            target = await resolve_registrar(account)
            reg = Registration(
                account,
                local_host=endpoint.local_host_for(target[0]),
                local_port=endpoint.port,
                user_agent=endpoint.config.user_agent,
                retry_base_s=self.retry_base_s,
                retry_max_s=self.retry_max_s,
            )
            self._targets[id(reg)] = target
            self.registrations.append(reg)
            reg.start(self._now())
        self._flush()

    async def stop(self, timeout: float = 5.0) -> None:
        """Unregister (Expires: 0) every binding we have, waiting up to ``timeout`` seconds for the
        answers; the endpoint must still be open."""
        now = self._now()
        pending = [reg for reg in self.registrations if reg.stop(now)]
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            async with asyncio.timeout(timeout):
                while any(reg.state is RegistrationState.UNREGISTERING for reg in pending):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            log.info("unregister: no answer from the registrar within %g s", timeout)

    def states(self) -> dict[str, str]:
        """Each account's state, by AOR."""
        return {reg.account.aor: reg.state.value for reg in self.registrations}

    # ---------------------------------------------------------------------------------- internals

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _flush(self) -> None:
        for reg in self.registrations:
            target = self._targets[id(reg)]
            for req in reg.requests_to_send():

                def on_response(resp: SipResponse, now: float, reg: Registration = reg) -> None:
                    reg.receive(resp, now)
                    # Not from inside the core's receive: the endpoint flushes again after it.
                    asyncio.get_running_loop().call_soon(self._flush)

                try:
                    self.endpoint.send_request(req, target, on_response, reg.account.transport)
                except (RuntimeError, ValueError) as exc:  # the endpoint closed, or no such transport
                    log.info("cannot send REGISTER for %s: %s", reg.account.aor, exc)
            for event in reg.events_received():
                self._report(event)
        self._changed.set()
        self._publish()
        self._rearm()

    def _report(self, event: RegistrationEvent) -> None:
        if isinstance(event, RegistrationSucceeded):
            log.info("registered %s (Contact %s, %d s)", event.aor, event.contact, event.expires)
        elif isinstance(event, RegistrationFailed):
            log.warning(
                "registration of %s failed: %d %s; next try in %.0f s",
                event.aor,
                event.status,
                event.reason,
                event.retry_in or 0,
            )
        elif isinstance(event, RegistrationEnded):
            log.info("unregistered %s (%d)", event.aor, event.status)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("registration listener raised on %s", type(event).__name__)

    def _publish(self) -> None:
        counts = Counter(reg.state.value for reg in self.registrations)
        TELEMETRY.sip_registrations({state.value: counts.get(state.value, 0) for state in RegistrationState})

    def _rearm(self) -> None:
        deadlines = [d for d in (reg.next_deadline() for reg in self.registrations) if d is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadlines:
            self._timer = asyncio.get_running_loop().call_at(min(deadlines), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._now()
        for reg in self.registrations:
            reg.tick(now)
        self._flush()
