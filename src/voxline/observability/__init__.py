"""Exporters of what voxline measures: the Prometheus exposition (``prometheus``), the runtime's
probes (``probes``) and OpenTelemetry traces (``otel``, the ``otel`` extra). Nothing here is imported
unless it is turned on."""
