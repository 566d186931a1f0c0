"""Per-frame cost of voxline's playout path and of routing a frame to K sinks.

Run: .venv/bin/python bench/playout_cost.py [--playouts 200] [--seconds 20] [--realtime 3]
Prints Markdown as used in docs/media.md (microseconds of CPU per 20 ms frame; medians of REPEATS runs).

- playout: N model streams on ONE clock. Each gets a 100 ms delta every 100 ms (as the Realtime API
  sends them); every tick pops one frame per stream and routes it to one sink. Push, pop, the frame
  object, the clock's dispatch and ``MediaUnit._deliver`` are all counted.
- peer: the same pop + deliver, driven the way many pacing loops are written: one asyncio task per
  stream that sleeps once per frame (a timer and a future per frame per stream). The sleep is 1 µs
  instead of 20 ms, so the run measures the CPU of that design without waiting; the ratio is printed.
- routing: ``MediaUnit._deliver`` of one frame to K sinks.
- realtime: N streams paced by ``AsyncioMediaClock`` on a real event loop for a few seconds: CPU time
  per frame and the clock's late and skipped ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable

from host import cpu_model

from voxline.audio import PCM16_24K, PCMU_8K, AudioFormat, Frame
from voxline.media import MediaUnit
from voxline.media.clock import AsyncioMediaClock, MediaClock, VirtualMediaClock
from voxline.media.playout import Playout, PlayoutBuffer

REPEATS = 5


class Sink(MediaUnit):
    """A sink that takes the frame and does nothing with it (what routing itself costs)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.count += 1


class Stream(MediaUnit):
    def __init__(self, clock: MediaClock, fmt: AudioFormat) -> None:
        super().__init__()
        self.media_format = fmt
        self.buffer = PlayoutBuffer(fmt)
        self.playout = Playout(self.buffer, clock, self._deliver)


def delta(fmt: AudioFormat, ms: int) -> bytes:
    return bytes(range(1, 121)) * (fmt.bytes_per_ms * ms // 120) + b"\x01" * (fmt.bytes_per_ms * ms % 120)


def run_playout(fmt: AudioFormat, playouts: int, seconds: int) -> float:
    """µs per frame of push + paced pop + route, N streams on one virtual clock."""
    clock = VirtualMediaClock()
    sinks = []
    streams = []
    for _ in range(playouts):
        stream = Stream(clock, fmt)
        sink = Sink()
        stream.send_media_to(sink)
        streams.append(stream)
        sinks.append(sink)
    chunk = delta(fmt, 100)
    start = time.perf_counter()
    for step in range(seconds * 10):
        for stream in streams:
            stream.buffer.push(chunk, f"item{step // 50}")
        clock.advance(100)
    elapsed = time.perf_counter() - start
    frames = sum(s.count for s in sinks)
    assert frames == playouts * seconds * 50, frames
    return elapsed / frames * 1e6


def run_peer(fmt: AudioFormat, playouts: int, seconds: int) -> float:
    """The same work with one asyncio task per stream sleeping once per frame."""

    async def main() -> float:
        clock = VirtualMediaClock()  # only for the Playout constructor; the tasks drive the buffers
        streams = [Stream(clock, fmt) for _ in range(playouts)]
        sinks = []
        for stream in streams:
            stream.playout.close()
            sink = Sink()
            stream.send_media_to(sink)
            sinks.append(sink)
        chunk = delta(fmt, 100)
        frames_each = seconds * 50

        async def pace(stream: Stream) -> None:
            buffer = stream.buffer
            for n in range(frames_each):
                if n % 5 == 0:
                    buffer.push(chunk, f"item{n // 250}")
                frame = buffer.pop_frame()
                if frame is not None:
                    stream._deliver(frame)
                await asyncio.sleep(1e-6)  # a timer per frame, as asyncio.sleep(0.02) makes

        start = time.perf_counter()
        await asyncio.gather(*(pace(s) for s in streams))
        elapsed = time.perf_counter() - start
        frames = sum(s.count for s in sinks)
        assert frames == playouts * frames_each, frames
        return elapsed / frames * 1e6

    return asyncio.run(main())


def run_routing(sinks: int, frames: int = 20_000) -> float:
    source = MediaUnit()
    targets = [Sink() for _ in range(sinks)]
    for target in targets:
        source.send_media_to(target)
    frame = Frame(bytes(160), PCMU_8K, 0)
    deliver = source._deliver
    start = time.perf_counter()
    for _ in range(frames):
        deliver(frame)
    elapsed = time.perf_counter() - start
    return elapsed / frames * 1e6


def run_realtime(fmt: AudioFormat, playouts: int, seconds: float) -> tuple[float, int, int, int, float]:
    """(CPU µs per frame, frames, late ticks, skipped ticks, CPU % of one core) on a real loop."""

    async def main() -> tuple[float, int, int, int, float]:
        clock = AsyncioMediaClock(asyncio.get_running_loop())
        streams = [Stream(clock, fmt) for _ in range(playouts)]
        sinks = []
        for stream in streams:
            sink = Sink()
            stream.send_media_to(sink)
            sinks.append(sink)
        chunk = delta(fmt, 100)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = 0
        while time.perf_counter() - wall0 < seconds:
            for stream in streams:
                stream.buffer.push(chunk, f"item{n // 50}")
            n += 1
            await asyncio.sleep(0.1)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        frames = sum(s.count for s in sinks)
        for stream in streams:
            stream.playout.close()
        return cpu / max(frames, 1) * 1e6, frames, clock.late_ticks, clock.skipped_ticks, 100 * cpu / wall

    return asyncio.run(main())


def median(fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(REPEATS))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--playouts", type=int, default=200, help="streams on one clock (default 200)")
    parser.add_argument("--seconds", type=int, default=20, help="simulated seconds per run (default 20)")
    parser.add_argument("--realtime", type=float, default=3.0, help="real seconds on a real loop (0: skip)")
    args = parser.parse_args()

    print(f"Machine: {cpu_model()}, Python {platform.python_version()} ({sys.platform})")
    print(f"Command: bench/playout_cost.py --playouts {args.playouts} --seconds {args.seconds}")
    print()
    print("| path | µs per frame | peer: task + sleep per frame (µs) | peer / voxline |")
    print("|---|---:|---:|---:|")
    for name, fmt in (("μ-law 8 kHz (pass-through)", PCMU_8K), ("PCM16 24 kHz", PCM16_24K)):
        ours = median(lambda fmt=fmt: run_playout(fmt, args.playouts, args.seconds))
        peer = median(lambda fmt=fmt: run_peer(fmt, args.playouts, args.seconds))
        print(f"| playout, {args.playouts} streams, {name} | {ours:.2f} | {peer:.2f} | {peer / ours:.1f}x |")
    print()
    print("| routing one frame | µs per frame | µs per sink |")
    print("|---|---:|---:|")
    for k in (1, 10, 100):
        cost = median(lambda k=k: run_routing(k))
        print(f"| to {k} sink{'s' if k > 1 else ''} | {cost:.2f} | {cost / k:.2f} |")
    if args.realtime > 0:
        print()
        print(f"Real time, AsyncioMediaClock, {args.playouts} μ-law streams for {args.realtime:g} s:")
        cost, frames, late, skipped, cpu = run_realtime(PCMU_8K, args.playouts, args.realtime)
        print(
            f"{frames} frames, {cost:.2f} µs CPU per frame (whole process), {cpu:.1f} % of one core, "
            f"{late} late ticks, {skipped} skipped ticks"
        )


if __name__ == "__main__":
    main()
