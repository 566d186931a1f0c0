"""voxline: voice-AI phone calls in Python, bridged to OpenAI's Realtime API, VoxEngine-style."""

__version__ = "0.1.0"

from . import openai as OpenAI  # the reference's namespace name

__all__ = ["OpenAI", "__version__"]
