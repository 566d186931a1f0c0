"""voxline: voice-AI phone calls in Python, bridged to OpenAI's Realtime API, VoxEngine-style."""

__version__ = "0.1.0"
