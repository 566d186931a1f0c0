"""Exporters of what voxline measures: OpenTelemetry traces (:mod:`voxline.observability.otel`, the
``otel`` extra). Nothing here is imported unless it is turned on."""
