"""voxline: voice-AI phone calls in Python, bridged to OpenAI's Realtime API, VoxEngine-style."""

__version__ = "0.1.0"

from . import openai as OpenAI  # the reference's namespace name
from .runtime.events import AppEvents, CallEvents
from .runtime.voxengine import VoxEngine

__all__ = ["AppEvents", "CallEvents", "OpenAI", "VoxEngine", "__version__"]
