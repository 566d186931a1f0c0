"""The metric catalogue: off it is no-ops (and imports no prometheus_client), on it counts what its hooks
are told with bounded labels; the exposition, the loop-lag probe."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from voxline.observability.probes import watch_loop_lag
from voxline.observability.prometheus import CONTENT_TYPE, exposition, metric_names
from voxline.telemetry import NO_METERS, BoundedLabel, Telemetry


def samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exposition(telemetry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    return samples(telemetry).get((name, tuple(sorted(labels.items()))))


def test_off_every_hook_is_a_no_op_and_nothing_is_exposed() -> None:
    telemetry = Telemetry()
    assert not telemetry.enabled and telemetry.registry is None
    meters = telemetry.call_started("sip")
    assert meters is NO_METERS and not meters.on
    meters.caller_to_model.observe(0.001)
    telemetry.call_finished("sip", "completed", 3.0)
    telemetry.barge_in("twilio", 12.0)
    telemetry.turn_finished("twilio", 800.0)
    telemetry.realtime_error("invalid_value", "recoverable")
    telemetry.response_usage({"input_token_details": {"audio_tokens": 5}})
    telemetry.sip_response(200)
    telemetry.rtp_stream_finished(100, 1, 1, 0.002)
    telemetry.audio_dropped(20)
    telemetry.loop_lagged(0.01)
    telemetry.truncation_sent()
    assert exposition(telemetry) == b""
    assert metric_names(telemetry) == set()


def test_off_the_cores_import_no_prometheus_client() -> None:
    code = textwrap.dedent(
        """
        import sys
        import voxline.media, voxline.rtp, voxline.sip, voxline.openai.realtime
        from voxline.telemetry import TELEMETRY
        TELEMETRY.call_started("sip").caller_to_model.observe(0.1)
        TELEMETRY.sip_response(200)
        print("prometheus_client" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_on_the_hooks_count_by_bounded_labels() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    telemetry.enable()  # idempotent: the same registry
    meters = telemetry.call_started("twilio")
    assert meters.on and meters.transport == "twilio"
    assert value(telemetry, "voxline_calls_active", transport="twilio") == 1.0
    meters.caller_to_model.observe(0.0007)
    meters.model_to_caller.observe(0.003)
    telemetry.call_setup_done("twilio", "answered", 0.01)
    telemetry.call_setup_done("twilio", "bogus-stage", 0.01)  # not a stage: not counted
    telemetry.barge_in("twilio", 1.5)
    telemetry.barge_in("twilio", None)
    telemetry.turn_finished("twilio", 640.0)
    telemetry.call_finished("twilio", "completed", 42.0)
    assert value(telemetry, "voxline_calls_active", transport="twilio") == 0.0
    assert value(telemetry, "voxline_calls_total", transport="twilio", outcome="completed") == 1.0
    assert value(telemetry, "voxline_call_duration_seconds_sum", transport="twilio") == 42.0
    assert value(telemetry, "voxline_caller_to_model_latency_seconds_count", transport="twilio") == 1.0
    assert value(telemetry, "voxline_model_to_caller_latency_seconds_sum", transport="twilio") == 0.003
    assert value(telemetry, "voxline_call_setup_seconds_count", transport="twilio", stage="answered") == 1.0
    assert (
        value(telemetry, "voxline_call_setup_seconds_count", transport="twilio", stage="bogus-stage") is None
    )
    assert value(telemetry, "voxline_barge_ins_total", transport="twilio") == 2.0
    assert value(telemetry, "voxline_barge_in_to_silence_seconds_count", transport="twilio") == 1.0
    assert value(telemetry, "voxline_turn_response_seconds_sum", transport="twilio") == 0.64

    telemetry.sip_response(100)
    telemetry.sip_response(200)
    telemetry.sip_response(503)
    telemetry.sip_response(99)  # not a status: ignored
    telemetry.sip_response(700)
    assert value(telemetry, "voxline_sip_responses_total", **{"class": "2xx"}) == 1.0
    assert value(telemetry, "voxline_sip_responses_total", **{"class": "5xx"}) == 1.0
    assert sum(v for (n, _), v in samples(telemetry).items() if n == "voxline_sip_responses_total") == 3.0

    telemetry.response_usage(
        {
            "total_tokens": 60,
            "input_token_details": {"text_tokens": 10, "audio_tokens": 20, "cached_tokens": 4},
            "output_token_details": {"text_tokens": 5, "audio_tokens": 25},
        }
    )
    telemetry.response_usage({"input_token_details": {"audio_tokens": "many", "text_tokens": True}})
    telemetry.response_usage(None)
    tokens = {
        kind: value(telemetry, "voxline_tokens_total", kind=kind) for kind in ("input_text", "input_audio")
    }
    assert tokens == {"input_text": 10.0, "input_audio": 20.0}
    assert value(telemetry, "voxline_tokens_total", kind="input_cached") == 4.0
    assert value(telemetry, "voxline_tokens_total", kind="output_audio") == 25.0

    telemetry.rtp_stream_finished(500, 3, 2, 0.004)
    assert value(telemetry, "voxline_rtp_packets_lost_total") == 3.0
    assert value(telemetry, "voxline_rtp_packets_late_total") == 2.0
    assert value(telemetry, "voxline_rtp_jitter_seconds_sum") == 0.004
    telemetry.audio_dropped(500)
    assert value(telemetry, "voxline_playout_dropped_seconds_total") == 0.5
    telemetry.call_rejected("sip", "allowlist")
    telemetry.call_rejected("sip", "because", 3)  # not a reason: not counted
    assert value(telemetry, "voxline_calls_rejected_total", transport="sip", reason="allowlist") == 1.0
    assert all(
        dict(labels)["reason"] in {"limit", "auth", "draining", "allowlist", "rate", "challenge"}
        for (name, labels) in samples(telemetry)
        if name == "voxline_calls_rejected_total"
    )


def test_labels_from_outside_stay_bounded() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    for n in range(200):
        telemetry.realtime_error(f"code_{n}", "recoverable")
        telemetry.websocket_closed("realtime", 4000 + n)
        telemetry.call_finished("sip", f"outcome-{n}", 1.0)
    telemetry.call_started("a-carrier-nobody-knows")
    telemetry.websocket_closed("somebody", 1000)  # not a peer: not counted
    series = samples(telemetry)

    def labels_of(name: str, label: str) -> set[str]:
        return {dict(labels)[label] for (n, labels) in series if n == name}

    codes = labels_of("voxline_realtime_errors_total", "code")
    assert len(codes) == 41 and "other" in codes
    assert (
        value(telemetry, "voxline_realtime_errors_total", code="other", **{"class": "recoverable"}) == 160.0
    )
    assert len(labels_of("voxline_websocket_closes_total", "code")) == 21
    assert labels_of("voxline_websocket_closes_total", "peer") == {"realtime"}
    assert len(labels_of("voxline_calls_total", "outcome")) == 11
    assert "other" in labels_of("voxline_calls_active", "transport")
    assert labels_of("voxline_calls_active", "transport") <= {"sip", "twilio", "voxengine", "other"}


def test_bounded_label() -> None:
    known = BoundedLabel({"a", "b"})
    assert [known(v) for v in ("a", "b", "c", None)] == ["a", "b", "other", "other"]
    capped = BoundedLabel(cap=2)
    assert [capped(v) for v in ("x", "y", "z", "x", 1000)] == ["x", "y", "other", "x", "other"]
    assert BoundedLabel(cap=5)("w" * 500) == "w" * 64
    with pytest.raises(ValueError, match="cap"):
        BoundedLabel(cap=-1)


def test_names_are_voxline_and_unit_suffixed() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    assert CONTENT_TYPE.startswith("text/plain")
    names = metric_names(telemetry)
    ours = {n for n in names if n.startswith("voxline_")}
    assert {n for n in names if not n.startswith(("voxline_", "process_"))} == set()
    assert "voxline_calls_active" in ours and "voxline_caller_to_model_latency_seconds_bucket" in ours
    # Histograms are in seconds; counters end in _total.
    text = exposition(telemetry).decode()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("voxline_"):
            continue
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        assert family.type in ("counter", "gauge", "histogram"), family.name
    assert "_created" not in text


def test_disable_goes_back_to_no_ops() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    telemetry.disable()
    assert telemetry.call_started("sip") is NO_METERS
    assert exposition(telemetry) == b""


async def test_the_loop_lag_probe_sees_a_stalled_loop() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    probe = asyncio.ensure_future(watch_loop_lag(0.01, telemetry))
    await asyncio.sleep(0.03)
    time.sleep(0.1)  # the loop stalls: the probe wakes at least this much late
    await asyncio.sleep(0.05)
    probe.cancel()
    count = value(telemetry, "voxline_event_loop_lag_seconds_count") or 0
    assert count >= 2
    assert (value(telemetry, "voxline_event_loop_lag_seconds_sum") or 0) >= 0.08
    with pytest.raises(ValueError, match="interval_s"):
        await watch_loop_lag(0, telemetry)


def test_scrape_hooks_run_before_each_exposition() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    telemetry.on_scrape(lambda: telemetry.call_rejected("http", "auth"))
    exposition(telemetry)
    exposition(telemetry)
    assert value(telemetry, "voxline_calls_rejected_total", transport="http", reason="auth") == 3.0


def test_realtime_errors_of_any_shape_are_counted_as_other_or_by_their_code() -> None:
    from voxline.openai.realtime import RealtimeAPIClient
    from voxline.openai.realtime_protocol import ErrorClass
    from voxline.telemetry import TELEMETRY

    TELEMETRY.enable()
    before = value(TELEMETRY, "voxline_realtime_errors_total", code="other", **{"class": "recoverable"}) or 0
    truncation_errors = value(TELEMETRY, "voxline_truncation_errors_total") or 0
    for code in ({"nested": 1}, ["x"], None, 7, "made_up_code"):
        RealtimeAPIClient._count_error({"code": code}, code, ErrorClass.RECOVERABLE)
    error = {"code": "invalid_value", "param": "audio_end_ms", "message": "Audio content of 900ms is shorter"}
    RealtimeAPIClient._count_error(error, "invalid_value", ErrorClass.RECOVERABLE)
    after = value(TELEMETRY, "voxline_realtime_errors_total", code="other", **{"class": "recoverable"})
    assert after == before + 5
    assert (
        value(TELEMETRY, "voxline_realtime_errors_total", code="invalid_value", **{"class": "recoverable"})
        or 0
    ) >= 1
    assert value(TELEMETRY, "voxline_truncation_errors_total") == truncation_errors + 1
