"""``FakeRealtimeServer``: a loopback WebSocket server that behaves like OpenAI's Realtime GA API.

For voxline's own tests and for users' tests: no key, no network beyond 127.0.0.1, no real-time waits.

.. code-block:: python

    from voxline.testing import FakeRealtimeServer, ScriptedResponse, FunctionCall

    async with FakeRealtimeServer() as server:
        server.script(ScriptedResponse(text="Hi there!"))               # next response.create plays this
        client = await OpenAI.create_realtime_api_client(api_key="sk-test", base_url=server.base_url)
        ...
        events = await server.wait_for("response.create")           # client events received
        await server.wait_for_sent("response.done")                 # server events sent
        server.assert_no_violations()

The protocol is :class:`voxline.realtime_server.RealtimeServer` (moved there: the handshake, schema
validation of every client event, session/conversation/input-buffer state, server VAD on the audio's
own sample clock, responses in OpenAI's event order; see :mod:`voxline.realtime_server.server`), the
same server the embedded offline backend runs. This class is its testing face:

- Scripted brain by default: ``script()`` queues :class:`~voxline.realtime_server.engine.
  ScriptedResponse` plans (text, audio, function calls; pacing, ``stall_after_ms``, ``drop_after_ms``,
  failure statuses), ``script_transcription()`` queues input transcripts. Pass ``engine=``,
  ``detector=`` or ``transcriber=`` to plug in others (:mod:`voxline.realtime_server.engine`).
- Handshake faults: ``refuse_handshake(status, message)`` makes it refuse with an HTTP status and
  OpenAI's JSON body (``times=``, or until ``accept_handshakes()``).
- Inspection (from :class:`~voxline.realtime_server.records.ServerRecords`): ``received``, ``sent``,
  ``sessions``, ``violations``, ``truncations``, ``rejections``, ``internal_errors``, ``wait_for()``,
  ``wait_for_sent()``, ``wait_for_session()``, ``wait_for_rejection()``, ``assert_no_violations()``,
  ``release()``. Faults, on a :class:`RealtimeConnection`: ``drop()``, ``close(code, reason)``,
  ``send_binary()``, ``send_text()``, ``send_event()``.

Client events are validated against OpenAI's official schemas, so this module needs ``jsonschema``
(``pip install 'voxline[testing]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from voxline.realtime_server.engine import (
    ResponseEngine,
    ScriptedEngine,
    ScriptedResponse,
    ScriptedTranscriber,
    SpeechDetector,
    Transcriber,
)
from voxline.realtime_server.server import (
    CLOSE_AUTH,
    CLOSE_SHAPE,
    REALTIME_PATH,
    HandshakeRejection,
    RealtimeConnection,
    RealtimeServer,
)
from voxline.realtime_server.session import DEFAULT_INSTRUCTIONS
from voxline.realtime_server.validation import EventValidator

from .schema import default_validator

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_SHAPE",
    "REALTIME_PATH",
    "FakeRealtimeServer",
    "HandshakeRejection",
    "RealtimeConnection",
]


class FakeRealtimeServer(RealtimeServer):
    """A fake OpenAI Realtime GA endpoint on 127.0.0.1 (see the module docstring).

    ``api_keys``: accepted keys (default: any key starting with ``sk-``). ``models``: accepted models
    (default: any). ``pace``: None streams as fast as possible, 1.0 at real time (a
    :class:`ScriptedResponse` may override it). ``engine``/``detector``/``transcriber``: the pluggable
    brain (default: the scripted queues and the energy detector); ``instructions``: the session's
    default instructions; ``validator``: default OpenAI's schemas. ``keep_record``: which events each
    session's own ``received``/``sent`` keep (default: all; the server-wide lists get every one).
    ``max_session_s``: a session limit like OpenAI's 60 minutes (``session_expired``, then close 1001),
    counted on ``clock`` (seconds; default the loop's time; tests pass a virtual one).
    """

    failure_label = "the fake Realtime server"

    def __init__(
        self,
        *,
        api_keys: Collection[str] | None = None,
        models: Collection[str] | None = None,
        pace: float | None = None,
        engine: ResponseEngine | None = None,
        detector: SpeechDetector | None = None,
        transcriber: Transcriber | None = None,
        instructions: str = DEFAULT_INSTRUCTIONS,
        validator: EventValidator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_record: Callable[[Mapping[str, Any]], bool] | None = None,
        mcp_servers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        max_session_s: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.scripted = ScriptedEngine()
        self.scripted_transcriber = ScriptedTranscriber()
        super().__init__(
            engine=engine if engine is not None else self.scripted,
            transcriber=transcriber if transcriber is not None else self.scripted_transcriber,
            detector=detector,
            validator=validator if validator is not None else default_validator(),
            instructions=instructions,
            pace=pace,
            api_keys=api_keys,
            models=models,
            host=host,
            port=port,
            keep_record=keep_record,
            mcp_servers=mcp_servers,
            max_session_s=max_session_s,
            clock=clock,
        )
        self._refusal: tuple[int, dict[str, Any]] | None = None
        self._refusals_left: int | None = None

    # -- scripting -------------------------------------------------------------------------------------------

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue responses: each ``response.create`` or VAD turn plays the next; then a default reply."""
        for response in responses:
            if not isinstance(response, ScriptedResponse):
                raise TypeError(f"script() takes ScriptedResponse objects, got {type(response).__name__}")
        self.scripted.queue.extend(responses)

    def script_transcription(self, *transcripts: str) -> None:
        """Queue input-audio transcripts, used in order when the session enables transcription."""
        self.scripted_transcriber.queue.extend(transcripts)

    # -- handshake faults ------------------------------------------------------------------------------------

    def refuse_handshake(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str = "invalid_request_error",
        times: int | None = None,
    ) -> None:
        """Refuse the next handshakes (``times``, or all until ``accept_handshakes()``) with an HTTP error.

        The body is OpenAI's error JSON: ``{"error": {"message", "type", "param": null, "code"}}``.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        self._refusal = (status, {"message": message, "type": error_type, "param": None, "code": code})
        self._refusals_left = times

    def accept_handshakes(self) -> None:
        self._refusal = None
        self._refusals_left = None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        response = super()._process_request(connection, request)
        if response is not None or self._refusal is None:
            return response
        status, error = self._refusal
        if self._refusals_left is not None:
            self._refusals_left -= 1
            if self._refusals_left <= 0:
                self.accept_handshakes()
        return self._http_error(connection, status, error)
