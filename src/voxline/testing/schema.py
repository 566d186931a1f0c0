"""Moved to :mod:`voxline.realtime_server.schema` (and :mod:`voxline.realtime_server.validation`).

This module re-exports it for existing imports; it needs ``jsonschema`` (``pip install 'voxline[testing]'``).
"""

from __future__ import annotations

try:
    from voxline.realtime_server.schema import (
        ACCEPTED_EVENT_TYPES,
        DOCUMENT_ID,
        ClientEventValidator,
        SchemaProblem,
        default_validator,
        format_param,
        load_vendored_document,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    from ._extra import missing_testing_extra

    friendly = missing_testing_extra(exc)
    if friendly is None:
        raise
    raise friendly from exc

__all__ = [
    "ACCEPTED_EVENT_TYPES",
    "DOCUMENT_ID",
    "ClientEventValidator",
    "SchemaProblem",
    "default_validator",
    "format_param",
    "load_vendored_document",
]
