"""Exceptions shared by every layer (this module imports nothing of voxline)."""

from __future__ import annotations

__all__ = ["EndedError"]


class EndedError(RuntimeError):
    """An operation on something that has ended: a closed client, a hung-up call, a closed unit.

    A scenario that is still running when its caller hangs up (or its session terminates) meets
    these; the runtime ends such a handler quietly instead of logging a traceback.
    """
