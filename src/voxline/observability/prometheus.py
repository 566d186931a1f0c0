"""The Prometheus text exposition of ``TELEMETRY`` (what ``GET /metrics`` answers)."""

from __future__ import annotations

from prometheus_client import generate_latest

from ..telemetry import TELEMETRY, Telemetry

__all__ = ["CONTENT_TYPE", "exposition", "metric_names"]

# The text format every Prometheus reads (newer prometheus_client versions default to 1.0.0;
# our names and labels are plain, so the bytes are the same).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(telemetry: Telemetry = TELEMETRY) -> bytes:
    """The current values in the text format; empty while telemetry is off."""
    telemetry.before_scrape()
    if telemetry.registry is None:
        return b""
    return bytes(generate_latest(telemetry.registry))


def metric_names(telemetry: Telemetry) -> set[str]:
    """Every series name the catalogue exposes (``_total``, ``_bucket``, ``_sum``, ``_count`` included)."""
    if telemetry.registry is None:
        return set()
    names: set[str] = set()
    for family in telemetry.registry.collect():
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names
