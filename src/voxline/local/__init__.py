"""The speech parts of voxline's embedded offline backend.

- :mod:`voxline.local.tts`: :class:`~voxline.local.tts.Synthesizer`, espeak-ng as a subprocess.
- :mod:`voxline.local.asr`: :class:`~voxline.local.asr.Recognizer`, pocketsphinx (phrase list,
  JSGF grammar or free form) and its asyncio wrapper.
- :mod:`voxline.local.vad`: :class:`~voxline.local.vad.VoiceActivityDetector`, webrtcvad with
  OpenAI ``server_vad`` turn rules (sans-I/O).
- :mod:`voxline.local.responder`: the scripted "brain" (YAML rules or a Python ``respond``).
- :mod:`voxline.local.chat_responder`: a "brain" backed by a Chat Completions endpoint.
- :mod:`voxline.local.grammar`: text normalisation and JSGF building shared by the above.
- :mod:`voxline.local.engine`, :mod:`voxline.local.server`: the embedded offline backend, these
  parts plugged into the Realtime protocol server of :mod:`voxline.realtime_server`.
- ``python -m voxline.local.measure``: what these parts cost on this machine.

Submodules are imported on demand: pocketsphinx, webrtcvad, PyYAML and jsonschema are optional
(``pip install 'voxline[local]'``) and espeak-ng is a system package.
"""
