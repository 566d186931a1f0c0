"""OpenTelemetry traces of a real call (the runtime on loopback, a Twilio-protocol caller that barges
in, the fake Realtime server calling a tool): the SDK's in-memory exporter shows the span tree, and
voxline's own provider, configured by the standard OTEL_* variables, exports it over OTLP/HTTP to a
receiver on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra")

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.runtime.callflow import ANSWER, REPLY, barge_in_call

FORBIDDEN = (ANSWER, REPLY, "1234", "sk-test-key", "test-token")


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


async def test_the_span_tree_of_a_call_with_a_tool_call_and_a_barge_in(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = await barge_in_call(tmp_path, tracer_provider=provider)
    spans = list(exporter.get_finished_spans())
    named = by_name(spans)
    assert sorted(named) == ["voxline.barge_in", "voxline.call", "voxline.tool_call", "voxline.turn"]
    [call] = named["voxline.call"]
    [tool] = named["voxline.tool_call"]
    [barge] = named["voxline.barge_in"]
    [turn] = named["voxline.turn"]
    assert call.parent is None and call.kind is SpanKind.SERVER
    assert call.context is not None
    for child in (tool, barge, turn):
        assert child.parent is not None and child.parent.span_id == call.context.span_id
        assert child.context is not None and child.context.trace_id == call.context.trace_id
        assert child.start_time is not None and child.end_time is not None and call.start_time is not None
        assert call.start_time <= child.start_time <= child.end_time
        assert call.end_time is not None and child.end_time <= call.end_time
    # In the order they happened: the tool call, the barge-in over the answer, the caller's turn.
    assert tool.end_time <= barge.start_time <= turn.start_time  # type: ignore[operator]

    record = result.event_record
    attributes = dict(call.attributes or {})
    assert attributes["voxline.call.id"] == record["call_id"]
    assert attributes["voxline.session.id"] == record["session_id"]
    assert attributes["voxline.transport"] == "twilio"
    assert attributes["voxline.call.outcome"] == "completed"
    assert attributes["voxline.call.turns"] == 1 and attributes["voxline.call.barge_ins"] == 1
    assert attributes["voxline.call.tool_calls"] == 1 and attributes["voxline.call.truncations"] == 1
    assert attributes["voxline.call.response_p50_ms"] == record["latency"]["p50_ms"]
    assert attributes["voxline.tokens.total_tokens"] == record["tokens"]["total_tokens"]
    assert dict(tool.attributes or {}) == {
        "voxline.tool.name": "check_order",
        "voxline.tool.call_id": "call_1",
        "voxline.tool.duration_ms": record["tool_calls"][0]["duration_ms"],
    }
    figures = record["barge_ins"][0]
    assert barge.attributes is not None
    assert barge.attributes["voxline.barge_in.to_silence_ms"] == figures["to_silence_ms"]
    assert barge.attributes["voxline.barge_in.heard_ms"] == figures["heard_ms"]
    assert barge.attributes["voxline.barge_in.received_ms"] == figures["received_ms"]
    assert turn.attributes is not None
    assert turn.attributes["voxline.turn.response_ms"] == record["turns"][0]["response_ms"]
    assert turn.attributes["voxline.turn.outcome"] == "answered"
    # Ids, names, counts and milliseconds only: no transcript text, no secret.
    text = json.dumps([dict(s.attributes or {}) for s in spans])
    for words in FORBIDDEN:
        assert words not in text


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest], list[dict[str, str]]]]:
    """A tiny OTLP/HTTP trace receiver on loopback: POST /v1/traces, protobuf."""
    requests: list[ExportTraceServiceRequest] = []
    headers: list[dict[str, str]] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        requests.append(message)
        headers.append(dict(request.headers))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}/v1/traces", requests, headers
    finally:
        await runner.cleanup()


async def test_spans_are_exported_over_otlp_http_as_the_otel_variables_say(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    otlp_receiver: tuple[str, list[ExportTraceServiceRequest], list[dict[str, str]]],
) -> None:
    endpoint, requests, headers = otlp_receiver
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-tenant=voxline-tests")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    result = await barge_in_call(tmp_path, otel=True)  # shutdown flushes the batch
    assert requests, "no OTLP request arrived"
    assert all(h.get("x-collector-tenant") == "voxline-tests" for h in headers)
    spans: list[Any] = []
    services = set()
    for request in requests:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "voxline"
                spans.extend(scope_spans.spans)
    assert services == {"voxline"}
    names = sorted(span.name for span in spans)
    assert names == ["voxline.barge_in", "voxline.call", "voxline.tool_call", "voxline.turn"]
    [call] = [s for s in spans if s.name == "voxline.call"]
    assert all(s.parent_span_id == call.span_id for s in spans if s is not call)
    assert all(s.trace_id == call.trace_id for s in spans)
    attributes = {a.key: a.value for a in call.attributes}
    assert attributes["voxline.call.id"].string_value == result.event_record["call_id"]
    assert attributes["voxline.call.barge_ins"].int_value == 1


def test_the_otel_variables_are_checked_and_name_the_variable() -> None:
    from voxline.observability.otel import OtelSetupError, provider_from_env

    with pytest.raises(OtelSetupError, match=r"OTEL_TRACES_EXPORTER: 'jaeger'"):
        provider_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(OtelSetupError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL: .*'grpc'"):
        provider_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert provider_from_env({"OTEL_SDK_DISABLED": "true"}) is None
    provider = provider_from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "agents"})
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "agents"
    provider.shutdown()


def test_tracing_is_asked_for_by_the_flag_or_the_exporter_variable() -> None:
    from voxline.runtime.accounting import otel_requested

    assert otel_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not otel_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert not otel_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not otel_requested({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})
