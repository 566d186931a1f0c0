"""The speech parts of voxline's embedded offline backend.

- :mod:`voxline.local.tts`: :class:`~voxline.local.tts.Synthesizer`, espeak-ng as a subprocess.
- :mod:`voxline.local.asr`: :class:`~voxline.local.asr.Recognizer`, pocketsphinx (phrase list,
  JSGF grammar or free form) and its asyncio wrapper.
- :mod:`voxline.local.vad`: :class:`~voxline.local.vad.VoiceActivityDetector`, webrtcvad with
  OpenAI ``server_vad`` turn rules (sans-I/O).
- :mod:`voxline.local.responder`: the scripted "brain" (YAML rules or a Python ``respond``).
- :mod:`voxline.local.chat_responder`: a "brain" backed by a Chat Completions endpoint.
- :mod:`voxline.local.grammar`: text normalisation and JSGF building shared by the above.
- ``python -m voxline.local.measure``: what these parts cost on this machine.

Submodules are imported on demand: pocketsphinx, webrtcvad and PyYAML are optional
(``pip install 'voxline[local]'``) and espeak-ng is a system package.
"""

from __future__ import annotations

import importlib.util

__all__ = ["missing_packages", "require_packages"]

# Module -> the PyPI distribution of the 'voxline[local]' extra that provides it.
_PACKAGES = {
    "pocketsphinx": "pocketsphinx",
    "webrtcvad": "webrtcvad-wheels",
    "yaml": "pyyaml",
    "jsonschema": "jsonschema",
}


def missing_packages() -> list[str]:
    """The distributions of the ``voxline[local]`` extra that are not installed (checked without
    importing them)."""
    return [package for module, package in _PACKAGES.items() if importlib.util.find_spec(module) is None]


def require_packages() -> None:
    """Raise one ImportError naming the extra and what is missing, before anything is started."""
    missing = missing_packages()
    if missing:
        raise ImportError(
            f"the embedded offline backend needs {', '.join(missing)}: pip install 'voxline[local]'"
        )
