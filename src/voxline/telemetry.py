"""The process-wide catalogue of metrics: ``TELEMETRY``, switched on by ``voxline run``.

Every part of voxline reports through the hooks of one :class:`Telemetry` object. Off (the default,
and what a library user gets), every hook is a no-op on shared do-nothing objects and
``prometheus_client`` is not even imported; ``enable()`` builds the Prometheus metrics in a
registry of their own (``registry``), which ``voxline.observability.prometheus`` exposes.

The 20 ms media path never looks a label up: a call binds its labelled children once
(:meth:`Telemetry.call_started` returns its :class:`CallMeters`) and the path does only
``observe``/``inc`` on them. Every label value from outside (a transport, an outcome, an error code,
a close code) goes through a :class:`BoundedLabel`, so a misbehaving peer cannot grow the series
without end: unknown values become ``other``.

The names, types and labels are listed in docs/observability.md ("## Metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["NO_METERS", "TELEMETRY", "BoundedLabel", "CallMeters", "Telemetry"]


class Counting(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observing(Protocol):
    def observe(self, amount: float) -> None: ...


class _Off:
    """A metric that does nothing (telemetry off): the one shared object behind every hook."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def labels(self, *values: object) -> _Off:
        return self


OFF = _Off()

# Seconds. Added latency is sub-millisecond to tens of ms in voxline (docs/benchmarks.md).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
TURN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
SETUP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
JITTER_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)

# "http": the carriers' listener, before a stream says which carrier it is (refusals).
TRANSPORTS = frozenset({"sip", "twilio", "voxengine", "webrtc", "local", "http", "none"})
STAGES = frozenset({"answered", "model_ready"})
# SIP's "rate": over --sip-rate-limit (503); "auth": digest refused (403/400); "challenge": a 401 sent.
REJECT_REASONS = frozenset({"limit", "auth", "draining", "allowlist", "rate", "challenge"})
SIP_REJECT_REASONS = ("limit", "draining", "allowlist", "rate", "auth", "challenge")
PEERS = frozenset({"realtime", "twilio", "voxengine"})
TOKEN_KINDS = ("input_text", "input_audio", "input_cached", "output_text", "output_audio")
SIP_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")


class BoundedLabel:
    """Label values from outside, bounded: ``known`` ones (when given) pass, else the first ``cap``
    distinct values seen pass; anything else is ``other``. Values are cut to 64 characters."""

    __slots__ = ("_cap", "_known", "_seen")

    def __init__(self, known: Iterable[str] | None = None, cap: int = 20) -> None:
        if cap < 0:
            raise ValueError(f"cap must be >= 0, not {cap!r}")
        self._known = frozenset(known) if known is not None else None
        self._cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        text = str(value)[:64] if value is not None else "none"
        if self._known is not None:
            return text if text in self._known else "other"
        if text in self._seen:
            return text
        if len(self._seen) < self._cap:
            self._seen.add(text)
            return text
        return "other"


class CallMeters:
    """One call's bound metric children, for the 20 ms path: ``observe`` only, no label lookups.

    ``inbound_at`` is when (``time.monotonic()``) the caller frame now being delivered entered
    voxline (set by the leg); ``model_audio_at`` when the first audio delta of the model's current
    answer arrived (set by the Realtime client, cleared once its first frame is given to the leg).
    """

    __slots__ = ("caller_to_model", "inbound_at", "model_audio_at", "model_to_caller", "on", "transport")

    def __init__(
        self, transport: str, on: bool, caller_to_model: Observing, model_to_caller: Observing
    ) -> None:
        self.transport = transport
        self.on = on
        self.caller_to_model = caller_to_model
        self.model_to_caller = model_to_caller
        self.inbound_at = 0.0
        self.model_audio_at = 0.0


NO_METERS = CallMeters("none", False, OFF, OFF)
"""The meters of a media unit that is not a call, and of every call while telemetry is off."""


class Telemetry:
    """The metric catalogue and its hooks. ``enable()`` switches it on (idempotent)."""

    def __init__(self) -> None:
        self.enabled = False
        self.registry: CollectorRegistry | None = None
        self._transport = BoundedLabel(TRANSPORTS)
        self._outcome = BoundedLabel(cap=10)
        self._error_code = BoundedLabel(cap=40)
        self._close_code = BoundedLabel(cap=20)
        self._scrape_hooks: list[Callable[[], None]] = []
        self._off()

    def _off(self) -> None:
        off: Any = OFF
        self.calls_active = off
        self.calls = off
        self.call_duration = off
        self.call_setup = off
        self.caller_to_model = off
        self.model_to_caller = off
        self.turn_response = off
        self.barge_ins = off
        self.barge_in_to_silence = off
        self.truncations = off
        self.truncation_errors = off
        self.realtime_errors = off
        self.websocket_closes = off
        self.session_recycles = off
        self.tokens = off
        self.rtp_received = off
        self.rtp_lost = off
        self.rtp_late = off
        self.rtp_jitter = off
        self.carrier_late_frames = off
        self.playout_dropped = off
        self.sip_responses = off
        self.rejected = off
        self.loop_lag = off
        self.ready = off
        self.registrations = off
        self._sip_classes: tuple[Counting, ...] = (off,) * len(SIP_CLASSES)
        self._tokens: dict[str, Counting] = dict.fromkeys(TOKEN_KINDS, off)

    # -- the switch ---------------------------------------------------------------------------------

    def enable(self) -> None:
        """Build the Prometheus metrics (imports ``prometheus_client``). Idempotent. It turns off
        ``prometheus_client``'s ``*_created`` series for the whole process (its switch is global)."""
        if self.enabled:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
        from prometheus_client.process_collector import ProcessCollector

        # No *_created series: they double what a scrape carries and no dashboard here reads them.
        cast(Callable[[], None], disable_created_metrics)()  # untyped in prometheus_client

        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, open fds

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()) -> Any:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        self.calls_active = Gauge("voxline_calls_active", "Calls up now.", ("transport",), registry=registry)
        self.calls = counter("voxline_calls_total", "Calls ended, by outcome.", ("transport", "outcome"))
        self.call_duration = histogram(
            "voxline_call_duration_seconds", "Call duration.", DURATION_BUCKETS, ("transport",)
        )
        self.call_setup = histogram(
            "voxline_call_setup_seconds",
            "From the INVITE or the stream start to the call answered (stage=answered) and to the "
            "model session ready (stage=model_ready).",
            SETUP_BUCKETS,
            ("transport", "stage"),
        )
        self.caller_to_model = histogram(
            "voxline_caller_to_model_latency_seconds",
            "Added latency caller -> model: a caller frame entering voxline to its audio written to the "
            "Realtime socket.",
            LATENCY_BUCKETS,
            ("transport",),
        )
        self.model_to_caller = histogram(
            "voxline_model_to_caller_latency_seconds",
            "Added latency model -> caller, first audio: an answer's first audio delta read from the "
            "Realtime socket to its first frame given to the caller's leg.",
            LATENCY_BUCKETS,
            ("transport",),
        )
        self.turn_response = histogram(
            "voxline_turn_response_seconds",
            "Speech stopped -> first audio of the answer at the caller.",
            TURN_BUCKETS,
            ("transport",),
        )
        self.barge_ins = counter(
            "voxline_barge_ins_total", "Answers interrupted by the caller.", ("transport",)
        )
        self.barge_in_to_silence = histogram(
            "voxline_barge_in_to_silence_seconds",
            "speech_started received -> the answer's audio stopped towards the caller.",
            LATENCY_BUCKETS,
            ("transport",),
        )
        self.truncations = counter(
            "voxline_truncations_total", "conversation.item.truncate sent after a barge-in."
        )
        self.truncation_errors = counter(
            "voxline_truncation_errors_total", "Realtime errors answering a conversation.item.truncate."
        )
        self.realtime_errors = counter(
            "voxline_realtime_errors_total", "Realtime server error events.", ("code", "class")
        )
        self.websocket_closes = counter(
            "voxline_websocket_closes_total", "WebSocket closes by close code.", ("peer", "code")
        )
        self.session_recycles = counter(
            "voxline_session_recycles_total", "Realtime sessions replaced by a fresh one during a call."
        )
        self.tokens = counter("voxline_tokens_total", "Tokens from response.done usage.", ("kind",))
        self.rtp_received = counter("voxline_rtp_packets_received_total", "RTP packets received.")
        self.rtp_lost = counter("voxline_rtp_packets_lost_total", "RTP packets lost (sequence gaps).")
        self.rtp_late = counter(
            "voxline_rtp_packets_late_total", "RTP packets that came too late for the reorder buffer."
        )
        self.rtp_jitter = histogram(
            "voxline_rtp_jitter_seconds",
            "Interarrival jitter (RFC 3550) of a call's RTP stream at its end.",
            JITTER_BUCKETS,
        )
        self.carrier_late_frames = counter(
            "voxline_carrier_late_frames_total", "Frames to a carrier that left late.", ("transport",)
        )
        self.playout_dropped = counter(
            "voxline_playout_dropped_seconds_total", "Model audio dropped by full playout buffers."
        )
        self.sip_responses = counter("voxline_sip_responses_total", "SIP responses sent.", ("class",))
        self.rejected = counter(
            "voxline_calls_rejected_total", "Calls refused, by reason.", ("transport", "reason")
        )
        self.loop_lag = histogram(
            "voxline_event_loop_lag_seconds", "How late the event loop ran a periodic probe.", LAG_BUCKETS
        )
        self.ready = Gauge(
            "voxline_ready", "1 when the node takes new calls (/readyz 200), else 0.", registry=registry
        )
        self.registrations = Gauge(
            "voxline_sip_registrations",
            "SIP accounts (--register) by registration state: registered, registering, failed, ...",
            ("state",),
            registry=registry,
        )
        self._sip_classes = tuple(self.sip_responses.labels(c) for c in SIP_CLASSES)
        self._tokens = {kind: self.tokens.labels(kind) for kind in TOKEN_KINDS}
        # Every label set that exists shows at 0 from the first scrape (rate() needs the zero).
        for transport in ("sip", "twilio", "voxengine"):
            self.calls_active.labels(transport)
            self.barge_ins.labels(transport)
            for reason in SIP_REJECT_REASONS if transport == "sip" else ("limit", "draining"):
                self.rejected.labels(transport, reason)
        self.rejected.labels("http", "auth")
        self.registry = registry
        self.enabled = True

    def disable(self) -> None:
        """Back to no-ops (meters already bound keep counting into the old registry)."""
        self.enabled = False
        self.registry = None
        self._scrape_hooks.clear()
        self._off()

    def on_scrape(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before each exposition: counters kept elsewhere (SIP, carriers) catch up."""
        self._scrape_hooks.append(hook)

    def before_scrape(self) -> None:
        for hook in tuple(self._scrape_hooks):
            hook()

    # -- calls --------------------------------------------------------------------------------------

    def call_started(self, transport: str) -> CallMeters:
        """A call is up: counted in ``voxline_calls_active``; its meters for the media path."""
        if not self.enabled:
            return NO_METERS
        transport = self._transport(transport)
        self.calls_active.labels(transport).inc()
        return CallMeters(
            transport, True, self.caller_to_model.labels(transport), self.model_to_caller.labels(transport)
        )

    def call_finished(self, transport: str, outcome: str, duration_s: float) -> None:
        """A call has ended (pairs with ``call_started``)."""
        if not self.enabled:
            return
        transport = self._transport(transport)
        self.calls_active.labels(transport).dec()
        self.calls.labels(transport, self._outcome(outcome)).inc()
        self.call_duration.labels(transport).observe(max(0.0, duration_s))

    def call_setup_done(self, transport: str, stage: str, seconds: float) -> None:
        if self.enabled and stage in STAGES:
            self.call_setup.labels(self._transport(transport), stage).observe(max(0.0, seconds))

    def turn_finished(self, transport: str, response_ms: float | None) -> None:
        """A model turn: speech stopped -> the answer's first audio at the caller (None: no audio)."""
        if self.enabled and response_ms is not None:
            self.turn_response.labels(self._transport(transport)).observe(max(0.0, response_ms) / 1000)

    def barge_in(self, transport: str, to_silence_ms: float | None) -> None:
        """The caller spoke over an answer; ``to_silence_ms``: until its audio stopped (None: unknown)."""
        if not self.enabled:
            return
        transport = self._transport(transport)
        self.barge_ins.labels(transport).inc()
        if to_silence_ms is not None:
            self.barge_in_to_silence.labels(transport).observe(max(0.0, to_silence_ms) / 1000)

    def call_rejected(self, transport: str, reason: str, count: int = 1) -> None:
        if self.enabled and reason in REJECT_REASONS and count > 0:
            self.rejected.labels(self._transport(transport), reason).inc(count)

    # -- the model ----------------------------------------------------------------------------------

    def truncation_sent(self) -> None:
        self.truncations.inc()

    def truncation_failed(self) -> None:
        self.truncation_errors.inc()

    def realtime_error(self, code: object, error_class: str) -> None:
        if self.enabled:
            self.realtime_errors.labels(self._error_code(code), error_class).inc()

    def websocket_closed(self, peer: str, code: int | None) -> None:
        if self.enabled and peer in PEERS:
            self.websocket_closes.labels(peer, self._close_code(code)).inc()

    def session_recycled(self) -> None:
        self.session_recycles.inc()

    def response_usage(self, usage: object) -> None:
        """Tokens of a ``response.done``'s ``response.usage`` by kind (absent fields count nothing)."""
        if not self.enabled or not isinstance(usage, Mapping):
            return
        tokens = self._tokens
        for side, detail in (("input", "input_token_details"), ("output", "output_token_details")):
            details = usage.get(detail)
            if not isinstance(details, Mapping):
                continue
            for kind in ("text", "audio"):
                value = details.get(f"{kind}_tokens")
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    tokens[f"{side}_{kind}"].inc(value)
            cached = details.get("cached_tokens") if side == "input" else None
            if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0:
                tokens["input_cached"].inc(cached)

    # -- media --------------------------------------------------------------------------------------

    def rtp_stream_finished(self, received: int, lost: int, late: int, jitter_s: float | None) -> None:
        """One RTP stream's counts at its end (nothing per packet)."""
        if not self.enabled:
            return
        self.rtp_received.inc(max(0, received))
        self.rtp_lost.inc(max(0, lost))
        self.rtp_late.inc(max(0, late))
        if jitter_s is not None and received > 1:
            self.rtp_jitter.observe(max(0.0, jitter_s))

    def carrier_late_frame(self, transport: str) -> None:
        """Model audio handed to a carrier stream on a media-clock tick that ran late."""
        if self.enabled:
            self.carrier_late_frames.labels(self._transport(transport)).inc()

    def audio_dropped(self, ms: float) -> None:
        if ms > 0:
            self.playout_dropped.inc(ms / 1000)

    def sip_response(self, status: int) -> None:
        index = status // 100 - 1
        if 0 <= index < len(SIP_CLASSES):
            self._sip_classes[index].inc()

    def sip_registrations(self, states: Mapping[str, int]) -> None:
        """How many accounts are in each registration state (the registrations' I/O sets it)."""
        if self.enabled:
            for state, count in states.items():
                self.registrations.labels(state).set(count)

    def loop_lagged(self, seconds: float) -> None:
        self.loop_lag.observe(max(0.0, seconds))

    def readiness(self, ready: bool) -> None:
        """Whether the node takes new calls, set at each scrape (the runtime's readiness)."""
        self.ready.set(1 if ready else 0)


TELEMETRY = Telemetry()
"""The process-wide catalogue (off until ``voxline run`` or a test enables it)."""
