"""Exporters of what ``voxline.telemetry`` measures: the Prometheus exposition (``prometheus``) and the
runtime's probes (``probes``)."""
