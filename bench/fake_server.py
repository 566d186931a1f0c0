"""The benchmark's fake Realtime server: voxline's ``FakeRealtimeServer`` with timestamps and a lean hot path.

Run as a process: ``python bench/fake_server.py --port-file F --out F`` serves on 127.0.0.1 (an
ephemeral port, written to ``--port-file``), answers every utterance (server VAD) with
``--answer-ms`` of tone, as fast as it can (faster than real time), and on SIGTERM writes what it saw
to ``--out`` as JSON:

- per call (found from the session's instructions ``bench-call:<id>``, which the bench scenario and
  the Pipecat bridge set): ``speech_started`` times (when the server's VAD saw the tone onset in the
  appended audio, ``time.monotonic_ns()``, system-wide on Linux), ``first_delta`` times (when it
  sent the first ``response.output_audio.delta`` of each response), the audio appended (bytes, format);
- violations (client events OpenAI would reject) and the fake's own internal errors.

Differences from the stock fake, for load (the protocol and event order are the stock fake's):
``input_audio_buffer.append`` is not schema-validated (every other client event is), the speech
detector looks at a few samples per 10 ms frame instead of the RMS of all, and the server's record
lists keep only control events (no appends, no audio deltas).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.realtime.engine import ResponseRequest
from voxline.testing.schema import ClientEventValidator, SchemaProblem, default_validator

CALL_TAG = re.compile(r"bench-call:(\S+)")
_RECORDED = {"session.update", "response.create", "response.cancel", "conversation.item.truncate"}


class CallRecord:
    """What the server saw of one connection."""

    def __init__(self) -> None:
        self.call: str | None = None
        self.speech_started: list[int] = []
        self.first_delta: list[int] = []
        self.appended_b64 = 0
        self.appends = 0
        self.input_format: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}  # the GA default
        self._responses: set[str] = set()

    def to_json(self) -> dict[str, Any]:
        fmt = self.input_format
        bytes_per_ms = (
            8 if fmt.get("type") in ("audio/pcmu", "audio/pcma") else int(fmt.get("rate", 24000)) * 2 // 1000
        )
        return {
            "call": self.call,
            "speech_started": self.speech_started,
            "first_delta": self.first_delta,
            "appends": self.appends,
            "appended_ms": self.appended_b64 * 3 // 4 / bytes_per_ms,
            "input_format": fmt,
        }


_current: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("bench_call", default=None)


class _Received:
    """Stands in for ``server.received``: notes what the bench needs, keeps only control events."""

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []

    def append(self, event: dict[str, Any]) -> None:
        record = _current.get()
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            if record is not None:
                record.appends += 1
                audio = event.get("audio")
                if isinstance(audio, str):
                    record.appended_b64 += len(audio)
            return
        if kind in _RECORDED:
            self.kept.append(event)
        if kind == "session.update" and record is not None:
            session = event.get("session")
            if isinstance(session, dict):
                found = CALL_TAG.search(str(session.get("instructions") or ""))
                if found:
                    record.call = found.group(1)
                audio = session.get("audio")
                fmt = audio.get("input", {}).get("format") if isinstance(audio, dict) else None
                if isinstance(fmt, dict) and "type" in fmt:
                    record.input_format = fmt

    def __iter__(self) -> Any:
        return iter(self.kept)

    def __len__(self) -> int:
        return len(self.kept)


class _Sent(_Received):
    def append(self, event: dict[str, Any]) -> None:
        record = _current.get()
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            if record is not None:
                response_id = str(event.get("response_id"))
                if response_id not in record._responses:
                    record._responses.add(response_id)
                    record.first_delta.append(time.monotonic_ns())
            return
        if kind == "input_audio_buffer.speech_started" and record is not None:
            record.speech_started.append(time.monotonic_ns())
        if kind in ("response.output_audio_transcript.delta", "rate_limits.updated"):
            return
        self.kept.append(event)


class LeanValidator(ClientEventValidator):
    """The stock schema validator for every client event but ``input_audio_buffer.append``.

    An append is checked for shape only (a string ``audio``): at 50 appends per call per second the
    full JSON-schema check would cost the fake more CPU than voxline spends on the call.
    """

    def __init__(self, full: ClientEventValidator) -> None:
        self._full = full

    def validate(self, event: Any) -> list[SchemaProblem]:
        is_append = isinstance(event, dict) and event.get("type") == "input_audio_buffer.append"
        if is_append and isinstance(event.get("audio"), str):
            return []
        return self._full.validate(event)


class PeakDetector:
    """Speech when any of a few samples of the 10 ms frame is loud: the bench's tone is loud, its
    background noise is quiet, so this is exact for the bench and costs a few microseconds."""

    frame_ms = 10

    def __init__(self, threshold: int = 4000) -> None:
        self.threshold = threshold

    def speech_probability(self, frame: bytes, rate: int) -> float:
        n = len(frame) // 2
        step = max(1, n // 8)
        loud = 0
        for i in range(0, n, step):
            v = int.from_bytes(frame[2 * i : 2 * i + 2], "little", signed=True)
            if v > self.threshold or v < -self.threshold:
                loud += 1
                if loud >= 2:
                    return 1.0
        return 0.0


def tone_pcm(ms: int, rate: int = 24000, freq: float = 440.0, amplitude: int = 12000) -> bytes:
    n = ms * rate // 1000
    return b"".join(
        int(amplitude * math.sin(2 * math.pi * freq * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(n)
    )


class ToneEngine:
    """Answers every response with the same tone, rendered once per output rate (the stock path would
    design a resampling filter and resample the answer for every response)."""

    def __init__(self, answer_ms: int) -> None:
        self.answers = {
            rate: ScriptedResponse(text="Bench answer.", audio=tone_pcm(answer_ms, rate), audio_rate=rate)
            for rate in (8000, 16000, 24000)
        }

    def respond(self, request: ResponseRequest) -> ScriptedResponse:
        fmt = request.session.get("audio", {}).get("output", {}).get("format", {})
        rate = 8000 if fmt.get("type") in ("audio/pcmu", "audio/pcma") else int(fmt.get("rate", 24000))
        return self.answers.get(rate, self.answers[24000])


def _no_audio_events(event: Mapping[str, Any]) -> bool:
    """What each session's own record lists keep: every event but appends and audio deltas."""
    return event.get("type") not in ("input_audio_buffer.append", "response.output_audio.delta")


class BenchRealtimeServer(FakeRealtimeServer):
    def __init__(self, answer_ms: int, port: int = 0, reuse_port: bool = False) -> None:
        super().__init__(
            engine=ToneEngine(answer_ms),
            detector=PeakDetector(),
            validator=LeanValidator(default_validator()),
            port=port,
            keep_record=_no_audio_events,
        )
        self.reuse_port = reuse_port
        self.received = _Received()  # type: ignore[assignment]
        self.sent = _Sent()  # type: ignore[assignment]
        self.records: list[CallRecord] = []

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            max_size=32 * 2**20,
            reuse_port=self.reuse_port,
        )

    async def _handle(self, ws: ServerConnection) -> None:
        record = CallRecord()
        self.records.append(record)
        _current.set(record)
        try:
            await super()._handle(ws)
        finally:
            # The core keeps every event and all audio of a session; the bench does not need them.
            self.sessions[:] = [c for c in self.sessions if not c.finished.done()]

    def report(self) -> dict[str, Any]:
        return {
            "calls": [r.to_json() for r in self.records],
            "violations": self.violations[:50],
            "violation_count": len(self.violations),
            "internal_errors": self.internal_errors[:20],
        }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reuse-port", action="store_true", help="several processes share one port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--out", required=True, help="JSON report written on SIGTERM")
    parser.add_argument("--answer-ms", type=int, default=2500)
    args = parser.parse_args(argv)
    server = BenchRealtimeServer(args.answer_ms, args.port, args.reuse_port)
    await server.start()
    # A load generator, not the system under test: no collector pauses in the middle of a step.
    gc.collect()
    gc.freeze()
    gc.disable()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.port))
        os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stopper: Callable[[], None] = stop.set
    loop.add_signal_handler(signal.SIGTERM, stopper)
    loop.add_signal_handler(signal.SIGINT, stopper)
    await stop.wait()
    with open(args.out, "w") as f:
        json.dump(server.report(), f)
    # Closing hundreds of sessions gracefully takes time the bench does not need to spend.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
