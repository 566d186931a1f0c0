"""Per-20 ms-frame cost of the metrics on the media path, on against off (``voxline.telemetry``).

Run: .venv/bin/python bench/metrics_cost.py

A real ``Call`` (a leg that keeps nothing) receives caller frames through its ``LegListener`` and
delivers them to a sink doing what the Realtime client does with a frame's metrics (the observe of
added latency caller -> model), and takes model frames the way the playout hands them over (the
first-audio check). Each figure is the median over REPEATS runs of NUMBER frames each way, in
microseconds per frame pair (one in, one out: a call's 20 ms); on and off runs alternate so both
see the same machine load. Multiply by 3000 frame pairs per call-minute for CPU seconds per
call-minute.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Mapping

from host import cpu_model

from voxline.audio import PCMU_8K, Frame
from voxline.media import MediaUnit
from voxline.runtime.call import Call, LegListener
from voxline.telemetry import NO_METERS, CallMeters, Telemetry

NUMBER = 3000  # one call-minute
REPEATS = 41


class NullLeg:
    media_format = PCMU_8K
    reports_playback = False
    playout_batch_ms = 20
    transport = "twilio"

    def attach(self, listener: LegListener) -> None:
        self.listener = listener

    def answer(self, headers: Mapping[str, str] | None) -> None: ...
    def reject(self, code: int, headers: Mapping[str, str] | None) -> None: ...
    def hangup(self, headers: Mapping[str, str] | None) -> None: ...
    def send_digits(self, digits: str) -> None: ...
    def capture_frame(self, data: bytes, end_ms: int) -> None: ...
    def clear_buffer(self) -> None: ...
    def flush(self) -> None: ...
    def played_ms(self) -> int | None:
        return None


class ModelSocket(MediaUnit):
    """The Realtime client's per-frame metrics, as in ``RealtimeAPIClient.receive_frame``."""

    media_format = PCMU_8K

    def __init__(self) -> None:
        super().__init__()
        self.meters: CallMeters = NO_METERS

    def _source_changed(self, source: MediaUnit | None) -> None:
        self.meters = source.meters if source is not None else NO_METERS

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        meters = self.meters
        if meters.on and meters.inbound_at:
            meters.caller_to_model.observe(time.monotonic() - meters.inbound_at)


def make_call(meters: CallMeters) -> tuple[Call, NullLeg, ModelSocket]:
    leg = NullLeg()
    call = Call(leg)
    call.meters = meters
    leg.listener.connected()
    model = ModelSocket()
    call.send_media_to(model)
    return call, leg, model


def one_minute(call: Call, leg: NullLeg, model: ModelSocket, frame: Frame, every_answer: int) -> None:
    audio = leg.listener.audio
    receive = call.receive_frame
    meters = call.meters
    for i in range(NUMBER):
        audio(frame)
        if meters.on and i % every_answer == 0:
            meters.model_audio_at = time.monotonic()  # an answer's first delta arrived
        receive(frame, model)


def main() -> None:
    frame = Frame(b"\xff" * 160, PCMU_8K, 0)
    telemetry = Telemetry()
    telemetry.enable()
    on = make_call(telemetry.call_started("twilio"))
    off = make_call(NO_METERS)
    every_answer = 250  # an answer every 5 s
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(REPEATS):
        for name, (call, leg, model) in (("off", off), ("on", on)):
            seconds = timeit.timeit(
                lambda c=call, lg=leg, m=model: one_minute(c, lg, m, frame, every_answer), number=1
            )
            runs[name].append(seconds / NUMBER * 1e6)
    on_us, off_us = statistics.median(runs["on"]), statistics.median(runs["off"])
    print(f"{os.cpu_count()} × {cpu_model()}, Python {platform.python_version()}")
    print()
    print("| metrics | µs per frame pair (caller frame in, model frame out) | CPU s per call-minute |")
    print("|---|---|---|")
    for name, us in (("off", off_us), ("on", on_us)):
        print(f"| {name} | {us:.2f} | {us * 3000 / 1e6:.5f} |")
    print(f"| on − off | {on_us - off_us:.2f} | {(on_us - off_us) * 3000 / 1e6:.5f} |")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
