"""Session recycle and reconnect of the Realtime client: the asyncio part.

:class:`SessionSwitching` is a mixin of :class:`~voxline.openai.realtime.RealtimeAPIClient`; what to
carry and when a switch is safe are decided by :class:`~voxline.openai.session_carry.SessionCarry`
(sans-I/O). A switch, in order:

1. From its first moment, every text frame the client would write (caller audio appends, the
   scenario's commands) is held, in order.
2. A new WebSocket is opened (same URL, key and options).
3. On it go: every ``session.update`` sent so far (in order), the conversation as
   ``conversation.item.create`` items (a summary first when it was folded), then the held frames.
   The new session's answers to that replay are kept from listeners.
4. The client reads the new socket from then on (``client.id()`` and listeners stay), closes the old
   one (its close is not reported) and emits ``Events.SessionRecycled``.

A planned recycle (``max_session_duration_s``) waits for a safe moment, checked on the media clock's
ticks: no response active, no model audio left to play, the caller not speaking, no function call
without output. ``session_expired`` switches at once, whatever is in flight. If the new session
cannot be opened during a planned recycle, the old one goes on and the recycle is tried again 30 s
later; if the old one is gone, the reconnect policy decides (or the close is reported).

Reconnect (``reconnect=``): after a close with a code in ``RECONNECT_CLOSE_CODES`` that the client
did not ask for, ``Events.Reconnecting`` per attempt (``{attempt, max_attempts, delay_s, code,
reason}``), a wait, a switch as above; then ``Events.Reconnected`` (``{attempts, session_id}``) after
the ``SessionRecycled`` of the new session, or ``Events.ReconnectFailed`` (``{attempts, error}``)
followed by ``on_web_socket_close`` with the original close, as without a policy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from .._tasks import background
from ..media.clock import AsyncioMediaClock, ClockSubscription, MediaClock
from .events import Events, RealtimeAPIClientType
from .params import DEFAULT_SUMMARY_PROMPT, RealtimeAPIClientParameters
from .session_carry import RECONNECT_CLOSE_CODES, ReconnectPolicy, SessionCarry

if TYPE_CHECKING:
    from ..media.playout import Playout
    from ._common import MessageLog, Tracer
    from .events import RealtimeAPIEvents
    from .realtime_protocol import RealtimeProtocol
    from .websocket import WebSocketClient

__all__ = ["MAX_HELD_CHARS", "RECYCLE_RETRY_S", "SessionSwitching"]

log = logging.getLogger("voxline.openai.realtime")

RECYCLE_RETRY_S = 30.0
# Frames held while a switch is under way: about a minute of 24 kHz PCM in base64 JSON. A reconnect
# that takes longer drops the oldest caller audio beyond that (commands are always kept).
MAX_HELD_CHARS = 4 * 2**20
_APPEND_PREFIX = '{"type":"input_audio_buffer.append"'


class SessionSwitching:
    """Mixin: moves a Realtime client to a new session (see the module docstring)."""

    if TYPE_CHECKING:
        _params: RealtimeAPIClientParameters
        _core: RealtimeProtocol
        _ws: WebSocketClient | None
        _clock: MediaClock | None
        _id: str
        _closed: bool
        _closed_here: bool
        _delivering: bool
        _playout: Playout | None
        _finished: asyncio.Task[None] | None
        _tracer: Tracer | None
        _msglog: MessageLog

        def _emit(self, name: RealtimeAPIEvents | Events, data: Any, **fields: Any) -> None: ...
        async def _connect_ws(self) -> WebSocketClient: ...
        def _start_reading(self, ws: WebSocketClient) -> None: ...
        def _socket_closed(self, closed: asyncio.Future[tuple[int, str]]) -> None: ...
        def _end(self) -> None: ...

    def _init_switching(self) -> None:
        params = self._params
        self._carry = SessionCarry(
            params.carry_over_budget_chars, conversation=params.type is RealtimeAPIClientType.REALTIME
        )
        policy = params.reconnect
        self._reconnect_policy = policy if isinstance(policy, ReconnectPolicy) else None
        self._held: list[str] | None = None
        self._held_chars = 0
        self._held_dropped = 0
        self._switch_task: asyncio.Task[None] | None = None
        self._session_started_ms = 0
        self._recycle_subscription: ClockSubscription | None = None
        self._recycle_timer = 0  # which session's "old enough" timer counts (older ones are stale)
        self._recycle_not_before_ms = 0
        self._summary_task: asyncio.Task[None] | None = None
        self._summary_off = params.summary_model is None
        self._expiry_seen = False  # this session sent session_expired: its close is no surprise
        self.sessions_opened = 1  # how many Realtime sessions this client has had

    @property
    def carry_over_summary(self) -> str | None:
        """The rolling summary of the oldest turns a new session would get (None until the carried
        conversation first exceeds ``carry_over_budget_chars``)."""
        return self._carry.summary

    # -- hooks the client calls -----------------------------------------------------------------------

    def _session_clock(self) -> MediaClock:
        clock = self._clock
        if clock is None:  # the running loop's, looked up once: every server event asks for the time
            clock = self._clock = AsyncioMediaClock.for_loop()
        return clock

    def _session_opened(self) -> None:
        """A session (the first or a new one) is the client's now: its age counts from here. The
        safe moment is looked for on each tick only once the session is old enough (a timer until
        then: nothing on the 20 ms path of a young session)."""
        clock = self._session_clock()
        self._session_started_ms = clock.now_ms()
        self._stop_recycle_ticks()
        limit = self._params.max_session_duration_s
        if limit is not None:
            self._recycle_timer += 1
            timer = self._recycle_timer
            # A tick early, so the tick at which the session is old enough already looks.
            due = self._session_started_ms + max(0, round(limit * 1000) - clock.tick_ms)
            clock.call_at(due, lambda: self._recycle_due(timer))

    def _recycle_due(self, timer: int) -> None:
        if timer == self._recycle_timer and not self._closed and self._recycle_subscription is None:
            # Before the tick's media (order -1): a switch begun on this tick holds its frames too.
            self._recycle_subscription = self._session_clock().subscribe(self._recycle_tick, order=-1)

    def _stop_recycle_ticks(self) -> None:
        if self._recycle_subscription is not None:
            self._session_clock().unsubscribe(self._recycle_subscription)
            self._recycle_subscription = None

    def _hold(self, text: str) -> bool:
        """True when a switch is under way: the frame waits for the new session."""
        held = self._held
        if held is None:
            return False
        held.append(text)
        self._held_chars += len(text)
        while self._held_chars > MAX_HELD_CHARS:
            index = next((i for i, t in enumerate(held) if t.startswith(_APPEND_PREFIX)), None)
            if index is None:
                break
            self._held_chars -= len(held.pop(index))
            self._held_dropped += 1
        return True

    def _observe(self, event_type: str, data: dict[str, Any]) -> bool:
        """A server event: noted for the carry-over; True when it answers a replay (not for listeners)."""
        if self._carry.is_echo(event_type, data):
            return True
        self._carry.note_received(event_type, data, self._session_clock().now_ms() / 1000)
        if event_type == "response.done":
            self._maybe_summarize()
        return False

    def _expired(self) -> bool:
        """``session_expired``: True when the client moves to a new session (so the error is not a
        listener's business); False without recycle or reconnect (the reference's behaviour)."""
        if self._params.max_session_duration_s is None and self._reconnect_policy is None:
            return False
        if self._closed:
            return False
        self._expiry_seen = True
        if self._switch_task is None:
            self._start_switch("session_expired")
        return True

    def _close_handled(self, ws: WebSocketClient) -> bool:
        """The current socket closed: True when a switch or a reconnect takes over from here."""
        if self._closed_here or self._closed:
            return False
        if self._switch_task is not None:
            return True  # the switch under way sees the old socket gone and acts
        code, _ = ws.closed.result()
        if self._reconnect_policy is not None and (code in RECONNECT_CLOSE_CODES or self._expiry_seen):
            self._start_reconnect(ws)
            return True
        return False

    def _stop_switching(self) -> None:
        """The client closes: no switch, no timer, no summary any more."""
        self._recycle_timer += 1  # a pending timer finds itself stale
        self._stop_recycle_ticks()
        for task in (self._switch_task, self._summary_task):
            if task is not None:
                task.cancel()
        self._switch_task = None
        self._held = None
        ws = self._ws
        # Closed by the scenario during a reconnect: the old socket's close was held back; report it.
        if ws is not None and ws.closed.done() and self._finished is None and self._delivering:
            self._end()

    # -- planned recycle ------------------------------------------------------------------------------

    def _model_speaking(self) -> bool:
        playout = self._playout
        return playout is not None and (playout.playing or playout.buffer.buffered_ms > 0)

    def _recycle_tick(self, tick_ms: int) -> None:
        limit = self._params.max_session_duration_s
        if limit is None or self._switch_task is not None or self._closed:
            return
        if tick_ms - self._session_started_ms < limit * 1000 or tick_ms < self._recycle_not_before_ms:
            return
        if self._model_speaking() or self._carry.unsafe_reason(tick_ms / 1000) is not None:
            return
        self._start_switch("max_session_duration")

    def _start_switch(self, reason: str) -> None:
        if self._held is None:
            self._held, self._held_chars, self._held_dropped = [], 0, 0
        self._switch_task = background(self._switch(reason), name=f"voxline-realtime-switch-{self._id}")

    async def _switch(self, reason: str) -> None:
        old = self._ws
        try:
            if reason == "session_expired":
                self._carry.session_ended()
                self._core.active_response_id = None  # the old session ended it
            try:
                ws = await self._connect_ws()
            except Exception as exc:  # RealtimeAPIError: refused, unreachable
                log.warning("Realtime client %s: cannot open a new session (%s): %s", self._id, reason, exc)
                self._switch_failed(old, expired=reason == "session_expired")
                return
            if self._closed:
                ws.close()
                return
            self._adopt(ws, reason)
        finally:
            if self._switch_task is asyncio.current_task():
                self._switch_task = None

    def _switch_failed(self, old: WebSocketClient | None, *, expired: bool) -> None:
        if old is not None and old.open and not expired:
            # The old session goes on: what was held goes to it, the recycle is tried again later.
            self._release_held(old)
            retry_ms = int(RECYCLE_RETRY_S * 1000)
            self._recycle_not_before_ms = self._session_clock().now_ms() + retry_ms
            return
        self._switch_task = None
        # Gone meanwhile (session_expired, then its close): as for any other close.
        if old is not None and old.closed.done() and not self._close_handled(old):
            self._held = None
            self._end()
        # else: the close is on its way; _socket_closed handles it then

    def _release_held(self, ws: WebSocketClient) -> None:
        held, self._held = self._held or [], None
        for text in held:
            if ws.open:
                ws.send_text(text)

    # -- the switch -----------------------------------------------------------------------------------

    def _adopt(self, ws: WebSocketClient, reason: str) -> None:
        """Make ``ws`` the client's session: replay, carried items, held frames, then read it."""
        old = self._ws
        carry = self._carry
        folded = carry.fold_locally()
        if folded:
            log.info("Realtime client %s: %d oldest items carried as abridged lines", self._id, folded)
        items = carry.carry_items()
        carry.expect_echoes(len(carry.updates), items)
        core = self._core
        now = self._session_clock().now_ms() / 1000
        for body, by_scenario in carry.updates:
            core.send("session.update", body, now, by_scenario=by_scenario)
        for item in items:
            core.send("conversation.item.create", {"item": item}, now)
        replay = core.data_to_send()
        self._ws = ws
        for text in replay:
            ws.send_text(text)
            kind = "carry-over " + (
                "session.update" if text.startswith('{"type":"session.update"') else "item"
            )
            self._msglog.message("out", kind, len(text), text)
            if self._tracer is not None:
                self._tracer.record("out", kind, len(text), json.loads(text))
        held, self._held = self._held or [], None
        for text in held:
            ws.send_text(text)
        ws.closed.add_done_callback(self._socket_closed)
        self._start_reading(ws)
        self.sessions_opened += 1
        self._session_opened()
        self._recycle_not_before_ms = 0
        self._expiry_seen = False
        if self._held_dropped:
            log.warning(
                "Realtime client %s: %d caller audio frames dropped during the switch",
                self._id,
                self._held_dropped,
            )
        log.info(
            "Realtime client %s: new Realtime session (%s): %d updates, %d items, %d held frames replayed",
            self._id,
            reason,
            len(carry.updates),
            len(items),
            len(held),
        )
        self._emit(
            Events.SessionRecycled,
            {
                "reason": reason,
                "sessions": self.sessions_opened,
                "session_updates": len(carry.updates),
                "items": len(items),
                "summary": carry.summary is not None,
                "held_messages": len(held),
                "dropped_audio_messages": self._held_dropped,
            },
        )
        if old is not None and old is not ws and not old.closed.done():
            old.close()

    # -- reconnect ------------------------------------------------------------------------------------

    def _start_reconnect(self, dead: WebSocketClient) -> None:
        if self._held is None:
            self._held, self._held_chars, self._held_dropped = [], 0, 0
        self._switch_task = background(self._reconnect(dead), name=f"voxline-realtime-reconnect-{self._id}")

    async def _reconnect(self, dead: WebSocketClient) -> None:
        policy = self._reconnect_policy
        assert policy is not None
        code, reason = dead.closed.result()
        self._carry.session_ended()
        self._core.active_response_id = None  # its response.done will never come
        error = f"closed with code {code}"
        log.warning("Realtime client %s: the connection closed (code %s): reconnecting", self._id, code)
        try:
            for attempt in range(1, policy.max_attempts + 1):
                delay = policy.delay_s(attempt)
                self._emit(
                    Events.Reconnecting,
                    {
                        "attempt": attempt,
                        "max_attempts": policy.max_attempts,
                        "delay_s": delay,
                        "code": code,
                        "reason": reason,
                    },
                )
                await asyncio.sleep(delay)
                if self._closed:
                    return
                try:
                    ws = await self._connect_ws()
                except Exception as exc:  # RealtimeAPIError: refused, unreachable
                    error = str(exc)
                    log.warning("Realtime client %s: reconnect attempt %d failed: %s", self._id, attempt, exc)
                    continue
                if self._closed:
                    ws.close()
                    return
                self._adopt(ws, "reconnect")
                session = self._core.session.get("id") if isinstance(self._core.session, dict) else None
                self._emit(Events.Reconnected, {"attempts": attempt, "session_id": session})
                return
            log.warning("Realtime client %s: gave up reconnecting after %d attempts", self._id, attempt)
            self._emit(Events.ReconnectFailed, {"attempts": policy.max_attempts, "error": error})
            self._held = None
            self._switch_task = None
            self._end()
        finally:
            if self._switch_task is asyncio.current_task():
                self._switch_task = None

    # -- the rolling summary --------------------------------------------------------------------------

    def _maybe_summarize(self) -> None:
        if self._summary_off or self._summary_task is not None or self._closed:
            return
        request = self._carry.fold_request(DEFAULT_SUMMARY_PROMPT)
        if request is None:
            return
        messages, item_ids = request
        self._summary_task = background(
            self._summarize(messages, item_ids), name=f"voxline-realtime-summary-{self._id}"
        )

    async def _summarize(self, messages: list[dict[str, str]], item_ids: list[str]) -> None:
        """One Chat Completions request, as the Chat Completions client's stored context makes."""
        from .chat import create_chat_completions_api_client  # httpx: only when a summary is due

        params = self._params
        try:
            client = await create_chat_completions_api_client(
                api_key=params.api_key, base_url=params.base_url
            )
            try:
                handle = client.create_chat_completions({"model": params.summary_model, "messages": messages})
                result = await handle
            finally:
                client.close()
            text = result["choices"][0]["message"]["content"] if isinstance(result, dict) else None
            if not isinstance(text, str) or not text.strip():
                error = handle.error.get("message") if handle.error else "no text in the reply"
                raise ValueError(error)
            if not self._carry.apply_summary(item_ids, text):
                log.debug("Realtime client %s: the conversation changed during its summary", self._id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not retried: the carry-over then keeps the oldest turns as abridged lines.
            self._summary_off = True
            log.warning("Realtime client %s: the carry-over summary failed: %s", self._id, exc)
        finally:
            self._summary_task = None
