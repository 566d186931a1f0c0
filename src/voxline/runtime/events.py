"""Event constants of the VoxEngine runtime: the same objects as :mod:`voxline.events`, their home."""

from __future__ import annotations

from ..events import AppEvents, CallEvents

__all__ = ["AppEvents", "CallEvents"]
