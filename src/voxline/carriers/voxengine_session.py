"""The VoxEngine WebSocket media wiring: one socket's ``VoxEngineMediaSocket`` core and its tagged
streams. No I/O library here: the session talks to its socket through ``MediaSocket``."""

from __future__ import annotations

import logging
import secrets

from ._base import CLOSE_NORMAL, Ignored, ProtocolError, Stats
from .config import CarrierConfig
from .media_socket import CarrierSession, MediaSocket, Spawn, close_message
from .stream import CarrierStream
from .wsmedia import VoxEngineMediaSocket, WsMediaMedia, WsMediaStart, WsMediaStop

__all__ = ["VoxEngineCarrierStream", "VoxEngineSession"]


class VoxEngineCarrierStream(CarrierStream):
    """One tagged stream of a VoxEngine-format socket. The outbound stream has the same tag and
    format as the inbound one; its ``start`` goes out with the first audio. The format has no
    playout acknowledgement, so ``acknowledged_ms`` is None."""

    kind = "voxengine"

    def __init__(self, session: VoxEngineSession, start: WsMediaStart) -> None:
        tag = start.tag
        super().__init__(
            stream_id=f"{session.id}/{tag or ''}",
            media_format=start.media_format,
            tag=tag,
            custom_parameters=start.custom_parameters,
            remote=session.socket.remote,
        )
        self.encoding = start.encoding
        self._session = session
        self._sent_bytes = 0

    def send_audio(self, data: bytes, *, source_ms: int | None = None) -> None:
        if self._closed.is_set():
            self.stats["audio_dropped_after_close"] += 1
            return
        core = self._session.core
        if not core.has_outbound(self.tag):
            core.start_stream(self.tag, self.media_format)
        core.send_audio(self.tag, data)
        self._sent_bytes += len(data)
        self._session.socket.kick()

    def clear(self) -> None:
        core = self._session.core
        if self._closed.is_set() or not core.has_outbound(self.tag):
            return
        core.clear(self.tag)
        self._session.socket.kick()

    @property
    def sent_ms(self) -> int:
        return self._sent_bytes // self.media_format.bytes_per_ms

    @property
    def acknowledged_ms(self) -> None:
        return None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Stop this stream; the socket closes too when it was the last stream on it."""
        if self._closed.is_set():
            return
        session = self._session
        session.core.stop_stream(self.tag)
        session.socket.kick()
        session.forget(self)
        self.finish(code, reason)
        if not session.streams:
            session.closing(code, reason)
            await session.socket.drain(timeout=1.0)
            await session.socket.close(code, close_message(reason))


class VoxEngineSession(CarrierSession):
    """One VoxEngine-format socket: its core and its streams by tag."""

    kind = "voxengine"

    def __init__(self, socket: MediaSocket, config: CarrierConfig, stats: Stats, spawn: Spawn) -> None:
        super().__init__(socket, stats, spawn, config.start_timeout_s)
        self.core = VoxEngineMediaSocket(chunk_ms=config.chunk_ms, max_streams=config.max_tags_per_socket)
        self.id = secrets.token_hex(6)
        self.streams: dict[str | None, VoxEngineCarrierStream] = {}
        socket.set_source(self.core.next_outgoing)

    def forget(self, stream: VoxEngineCarrierStream) -> None:
        if self.streams.get(stream.tag) is stream:
            del self.streams[stream.tag]

    def handle(self, text: str) -> None:
        core = self.core
        core.receive_text(text, self.loop.time() * 1000.0)
        for event in core.events_received():
            if isinstance(event, WsMediaMedia):
                stream = self.streams.get(event.tag)
                if stream is not None:
                    stream.deliver_audio(event.payload, event.timestamp_ms)
                else:
                    self.log.once(
                        "media_closed_stream", logging.INFO, f"dropping media of closed tag {event.tag!r}"
                    )
            elif isinstance(event, WsMediaStart):
                self.started()
                stream = VoxEngineCarrierStream(self, event)
                self.streams[event.tag] = stream
                self.stats["streams"] += 1
                self.spawn(stream)
            elif isinstance(event, WsMediaStop):
                stopped = self.streams.pop(event.tag, None)
                if stopped is not None:
                    core.stop_stream(event.tag)
                    self.socket.kick()
                    stopped.finish(CLOSE_NORMAL, "stop")
            elif isinstance(event, ProtocolError):
                self.protocol_error(event)
                return
            elif isinstance(event, Ignored):
                self.log.ignored(event)

    def finished(self, code: int | None, reason: str) -> None:
        for stream in list(self.streams.values()):
            stream.finish(code, reason)
        self.streams.clear()
