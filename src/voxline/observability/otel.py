"""OpenTelemetry traces of calls (the ``otel`` extra): a span per call, child spans per model turn,
tool call and barge-in, with the figures of :mod:`voxline.runtime.accounting` as attributes.

Imported only when tracing is on (``voxline run --otel``, or ``OTEL_TRACES_EXPORTER`` set): without
it voxline never imports ``opentelemetry``. The tracer provider is the application's when it has
set one (``opentelemetry.trace.set_tracer_provider``), else voxline's own, configured by the
standard ``OTEL_*`` variables: ``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console`` or
``none``, comma-separated), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` / ``_HEADERS`` / ``_TIMEOUT`` /
``_COMPRESSION`` (read by the OTLP/HTTP exporter itself), ``OTEL_SERVICE_NAME`` (default
``voxline``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SDK_DISABLED``. OTLP goes over HTTP/protobuf.

Spans never carry a secret, audio or transcript text: only ids, names, counts and milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from .._version import __version__

__all__ = ["CallSpans", "CallTracing", "OtelSetupError", "provider_from_env"]

log = logging.getLogger("voxline.observability.otel")

Attributes = Mapping[str, Any]


class OtelSetupError(ValueError):
    """The ``OTEL_*`` settings ask for something voxline cannot do (the message names the variable)."""


def provider_from_env(env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """voxline's own SDK tracer provider as the ``OTEL_*`` variables configure it (None when
    ``OTEL_SDK_DISABLED`` is true). ``env`` (default ``os.environ``) chooses the exporters and the
    service name; the OTLP exporter and the SDK's resource detector read ``os.environ`` themselves.
    Needs ``opentelemetry-sdk`` (and the OTLP/HTTP exporter for ``otlp``): ``pip install
    'voxline[otel]'``."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise OtelSetupError(
            "traces need the OpenTelemetry SDK to export them: pip install 'voxline[otel]'"
        ) from None
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            )
            if protocol.strip().lower() != "http/protobuf":
                raise OtelSetupError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL: voxline exports OTLP over http/protobuf, not {protocol!r}"
                )
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                raise OtelSetupError(
                    "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: "
                    "pip install 'voxline[otel]'"
                ) from None
            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
        else:
            raise OtelSetupError(f"OTEL_TRACES_EXPORTER: {name!r} is not otlp, console or none")
    service = env.get("OTEL_SERVICE_NAME")
    if service:
        attributes = {"service.name": service}
    elif "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes = {}  # Resource.create reads it
    else:
        attributes = {"service.name": "voxline"}
    resource = Resource.create(attributes)
    resource = resource.merge(Resource({"service.version": __version__}))
    provider = SdkTracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _application_provider() -> TracerProvider | None:
    """The provider the embedding application set globally, if any."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


class CallSpans:
    """The span of one call and its children (all started and ended on the event loop)."""

    def __init__(self, tracer: Tracer, attributes: Attributes, *, inbound: bool) -> None:
        self._tracer = tracer
        self.span: Span = tracer.start_span(
            "voxline.call", kind=SpanKind.SERVER if inbound else SpanKind.CLIENT, attributes=dict(attributes)
        )
        self._context = trace.set_span_in_context(self.span)

    def start(self, name: str, attributes: Attributes) -> Span:
        return self._tracer.start_span(name, context=self._context, attributes=dict(attributes))

    @staticmethod
    def end(span: Span, attributes: Attributes) -> None:
        span.set_attributes(dict(attributes))
        span.end()

    def end_call(self, attributes: Attributes, *, error: str | None = None) -> None:
        self.span.set_attributes(dict(attributes))
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


class CallTracing:
    """One per runtime: the tracer calls get their spans from.

    ``provider``: a tracer provider to use (tests, embedding applications); by default the
    application's global one if set, else voxline's own from the ``OTEL_*`` variables, which
    ``shutdown`` flushes and closes.
    """

    def __init__(self, provider: TracerProvider | None = None, env: Mapping[str, str] | None = None) -> None:
        self._owned = False
        if provider is None:
            provider = _application_provider()
        if provider is None:
            provider = provider_from_env(env)
            self._owned = provider is not None
        self.provider = provider
        self._tracer = (provider or trace.NoOpTracerProvider()).get_tracer("voxline", __version__)

    def start_call(self, attributes: Attributes, *, inbound: bool = True) -> CallSpans:
        return CallSpans(self._tracer, attributes, inbound=inbound)

    async def shutdown(self) -> None:
        """Export what is buffered and stop voxline's own provider (off the event loop: it blocks)."""
        provider = self.provider
        if not self._owned or provider is None:
            return
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            await asyncio.to_thread(shutdown)
