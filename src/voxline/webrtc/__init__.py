"""WebRTC calls and the playground page (docs/webrtc.md).

- ``audio``: Opus's 48 kHz to and from the model's 24 kHz, paced on the media clock (sans-I/O);
- ``sdp``: what an offer must hold, which ICE candidates are kept (sans-I/O);
- ``feed``: a call's events for its page (sans-I/O);
- ``peer``: aiortc's peer connection, tracks and data channel (the ``webrtc`` extra);
- ``endpoint``: WHIP-style signaling and the playground on the ``--http`` listener (aiohttp).

Nothing is imported here: ``voxline.webrtc.endpoint`` loads without aiortc, which only an offer needs.
"""
