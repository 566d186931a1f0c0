"""voxline: voice-AI phone calls in Python, bridged to OpenAI's Realtime API, VoxEngine-style."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import openai as OpenAI  # the reference's namespace name
    from .runtime.events import AppEvents, CallEvents
    from .runtime.voxengine import VoxEngine

__all__ = ["AppEvents", "CallEvents", "OpenAI", "VoxEngine", "__version__"]

# Loaded on first use: importing one part of voxline (the sans-I/O voxline.realtime_server, say)
# does not import the clients and the runtime, nor the network packages they are built on.
_LAZY: dict[str, tuple[str, str | None]] = {
    "OpenAI": ("voxline.openai", None),
    "AppEvents": ("voxline.runtime.events", "AppEvents"),
    "CallEvents": ("voxline.runtime.events", "CallEvents"),
    "VoxEngine": ("voxline.runtime.voxengine", "VoxEngine"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(where[0])
    value = module if where[1] is None else getattr(module, where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
