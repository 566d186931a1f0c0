"""voxline: voice-AI phone calls in Python, bridged to OpenAI's Realtime API, VoxEngine-style."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

if TYPE_CHECKING:
    from . import openai as OpenAI  # the reference's namespace name
    from .events import AppEvents, CallEvents
    from .runtime.voxengine import VoxEngine

__all__ = ["AppEvents", "CallEvents", "OpenAI", "VoxEngine", "__version__"]

# Loaded on first use: importing one part of voxline (the sans-I/O voxline.realtime_server, say)
# does not import the clients and the runtime, nor the network packages they are built on.
_LAZY = {
    "OpenAI": "voxline.openai:",
    "AppEvents": "voxline.events",
    "CallEvents": "voxline.events",
    "VoxEngine": "voxline.runtime.voxengine",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
