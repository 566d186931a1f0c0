"""Per-20 ms-frame cost of voxline's audio paths, next to CPython's audioop doing the same work.

Run: .venv/bin/python bench/audio_frame_cost.py
Prints Markdown (machine, cost per frame, resampler quality) as used in docs/audio.md. Each cost is the
median over REPEATS runs of NUMBER consecutive frames of one stream (stateful, as a call runs them),
in microseconds per frame; voxline and audioop runs alternate so both see the same machine load.
"""

from __future__ import annotations

import base64
import itertools
import os
import platform
import statistics
import sys
import timeit
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt
from host import cpu_model

from voxline.audio import PCM16_24K, PCMU_8K
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.resample import Resampler
from voxline.audio.transcode import Transcoder

NUMBER = 500
REPEATS = 61
Work = Callable[[bytes], object]
QualityRow = tuple[str, Resampler, tuple[float, int], tuple[float, int] | None]


def load_audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # Python >= 3.13
            return None
    return audioop


def test_signal(rate: int, seconds: float) -> bytes:
    """Speech-band content: a few tones plus noise."""
    rng = np.random.default_rng(7)
    t = np.arange(int(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((220, 0.0), (730, 1.0), (1900, 2.0), (3100, 0.5)))
    x = 2500 * x + rng.normal(0, 300, t.size)
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _timer(work: Work, inputs: list[bytes]) -> timeit.Timer:
    cycle = itertools.cycle(inputs)

    def step() -> None:
        work(next(cycle))

    return timeit.Timer(step)


Timing = tuple[float, float]  # (median, min) µs per frame


def per_frame_us(ours: Work, peer: Work | None, inputs: list[bytes]) -> tuple[Timing, Timing | None]:
    """(median, min) µs per frame of ``ours`` and ``peer``, timed alternately."""
    timers = [_timer(ours, inputs)] + ([_timer(peer, inputs)] if peer else [])
    runs: list[list[float]] = [[] for _ in timers]
    for _ in range(REPEATS):
        for timer, times in zip(timers, runs, strict=True):
            times.append(timer.timeit(NUMBER) / NUMBER * 1e6)
    stats = [(statistics.median(times), min(times)) for times in runs]
    return stats[0], (stats[1] if peer else None)


def cost_rows(audioop: ModuleType | None) -> list[tuple[str, Timing, Timing | None]]:
    pcm8 = frames(test_signal(8000, 1.0), 320)
    pcm24 = frames(test_signal(24000, 1.0), 960)
    ulaw = [ulaw_encode(f) for f in pcm8]
    passthrough = Transcoder(PCMU_8K, PCMU_8K)
    to_24k = Transcoder(PCMU_8K, PCM16_24K)
    to_ulaw = Transcoder(PCM16_24K, PCMU_8K)
    resampler = Resampler(8000, 24000)

    peers: dict[str, Work | None] = dict.fromkeys(("decode", "up", "down", "resample"))
    if audioop is not None:
        lib = audioop
        states: dict[str, object] = dict.fromkeys(("up", "down", "resample"))

        def ulaw_to_24k(f: bytes) -> bytes:
            out, states["up"] = lib.ratecv(lib.ulaw2lin(f, 2), 2, 1, 8000, 24000, states["up"])
            return bytes(out)

        def pcm24_to_ulaw(f: bytes) -> bytes:
            out, states["down"] = lib.ratecv(f, 2, 1, 24000, 8000, states["down"])
            return bytes(lib.lin2ulaw(out, 2))

        def ratecv_8_24(f: bytes) -> bytes:
            out, states["resample"] = lib.ratecv(f, 2, 1, 8000, 24000, states["resample"])
            return bytes(out)

        peers = {
            "decode": lambda f: lib.ulaw2lin(f, 2),
            "up": ulaw_to_24k,
            "down": pcm24_to_ulaw,
            "resample": ratecv_8_24,
        }
    return [
        (
            "μ-law pass-through (+ base64 of 160 B)",
            *per_frame_us(lambda f: base64.b64encode(passthrough.process(f)), base64.b64encode, ulaw),
        ),
        ("μ-law decode (160 B -> PCM16)", *per_frame_us(ulaw_decode, peers["decode"], ulaw)),
        ("μ-law 8k -> PCM16 24k transcode", *per_frame_us(to_24k.process, peers["up"], ulaw)),
        ("PCM16 24k -> μ-law 8k transcode", *per_frame_us(to_ulaw.process, peers["down"], pcm24)),
        ("PCM16 8k -> 24k resample alone", *per_frame_us(resampler.process, peers["resample"], pcm8)),
    ]


def sweep(rate: int, f1: float, seconds: float = 1.0) -> npt.NDArray[np.float64]:
    t = np.arange(round(rate * seconds)) / rate
    return 0.5 * 32767 * np.sin(2 * np.pi * (100.0 * t + (f1 - 100.0) * t * t / (2 * seconds)))


def sweep_snr_db(convert: Callable[[bytes], bytes], in_rate: int, out_rate: int) -> tuple[float, int]:
    """(SNR dB, lag) of a 100 Hz -> 0.85*Nyquist sweep converted in 20 ms frames vs the ideal sweep.

    Full-band error (ripple, images, aliases, frame edges). The lag (output samples, -8..8) is the one
    with the best SNR, so a converter that delays its output is judged on its waveform, not its delay.
    """
    f1 = 0.85 * min(in_rate, out_rate) / 2
    data = np.rint(sweep(in_rate, f1)).astype("<i2").tobytes()
    out = np.frombuffer(convert(data), "<i2").astype(np.float64)
    ideal = sweep(out_rate, f1)
    edge = int(0.03 * out_rate)
    got = out[edge : ideal.size - edge]
    best = (-np.inf, 0)
    for lag in range(-8, 9):
        ref = ideal[edge - lag : ideal.size - edge - lag]
        if got.size == ref.size:
            snr = float(10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2)))
            best = max(best, (snr, lag))
    return best


def quality_rows(audioop: ModuleType | None) -> list[QualityRow]:
    rows: list[QualityRow] = []
    pairs = [(8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000), (48000, 24000), (24000, 48000)]
    for in_rate, out_rate in pairs:
        resampler = Resampler(in_rate, out_rate)

        def ours(data: bytes, r: Resampler = resampler, size: int = in_rate // 25) -> bytes:
            return b"".join(r.process(f) for f in frames(data, size)) + r.flush()

        peer = None
        if audioop is not None:

            def theirs(data: bytes, a: int = in_rate, b: int = out_rate, lib: ModuleType = audioop) -> bytes:
                state = None
                parts = []
                for f in frames(data, a // 25):
                    out, state = lib.ratecv(f, 2, 1, a, b, state)
                    parts.append(out)
                return b"".join(parts)

            peer = sweep_snr_db(theirs, in_rate, out_rate)
        name = f"{in_rate // 1000}k -> {out_rate // 1000}k"
        rows.append((name, resampler, sweep_snr_db(ours, in_rate, out_rate), peer))
    return rows


def tone_pcm(freq: float, rate: int) -> bytes:
    t = np.arange(rate) / rate
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def level_db(out: bytes, rate: int, lo: float, hi: float) -> float:
    """Power of ``out`` between lo and hi Hz, in dB relative to the 0.5-full-scale input tone."""
    x = np.frombuffer(out, "<i2").astype(np.float64)[rate // 50 : -rate // 50]  # skip on/off clicks
    spectrum = np.abs(np.fft.rfft(x)) ** 2 / x.size**2 * 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    power = spectrum[(freqs >= lo) & (freqs < hi)].sum() + 1e-3  # floor far below 1 LSB
    return float(10 * np.log10(power / (0.5 * 32767) ** 2 * 2))


def rejection_rows(audioop: ModuleType | None) -> list[tuple[str, float, float | None]]:
    cases = [
        ("8k -> 24k, 3 kHz tone: images above 4.6 kHz", 8000, 24000, 3000.0, (4600.0, 12000.0)),
        ("24k -> 8k, 6.1 kHz tone: alias at 1.9 kHz", 24000, 8000, 6100.0, (0.0, 4000.0)),
        ("48k -> 24k, 14 kHz tone: alias at 10 kHz", 48000, 24000, 14000.0, (0.0, 12000.0)),
    ]
    rows: list[tuple[str, float, float | None]] = []
    for name, a, b, freq, (lo, hi) in cases:
        data = tone_pcm(freq, a)
        r = Resampler(a, b)
        ours = level_db(r.process(data) + r.flush(), b, lo, hi)
        peer = None
        if audioop is not None:
            converted, _ = audioop.ratecv(data, 2, 1, a, b, None)
            peer = level_db(bytes(converted), b, lo, hi)
        rows.append((name, ours, peer))
    return rows


def main() -> None:
    audioop = load_audioop()
    print("## Machine\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"- Python {platform.python_version()} ({platform.machine()}), numpy {np.__version__}")
    print(f"- Command: `.venv/bin/python bench/{os.path.basename(__file__)}`")
    print(f"- Load average at start: {os.getloadavg()[0]:.2f} (other work on the machine skews medians)")
    print(f"- {REPEATS} runs x {NUMBER} consecutive 20 ms frames, voxline and audioop alternating\n")
    print("## Cost per 20 ms frame (µs)\n")
    print("| work | voxline median | audioop median | ratio | voxline min | audioop min |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ours, peer in cost_rows(audioop):
        if peer is None:
            print(f"| {name} | {ours[0]:.1f} | n/a | n/a | {ours[1]:.1f} | n/a |")
        else:
            ratio = ours[0] / peer[0]
            cells = f"{ours[0]:.1f} | {peer[0]:.1f} | {ratio:.1f}x | {ours[1]:.1f} | {peer[1]:.1f}"
            print(f"| {name} | {cells} |")
    print("\naudioop: the same work with `audioop.ulaw2lin`/`lin2ulaw` + stateful `ratecv`; for")
    print("pass-through, base64 alone. ratio: voxline median / audioop median.\n")
    print("## Resampler quality (sine sweep 100 Hz -> 0.85 x lower Nyquist, 20 ms frames, full band)\n")
    print("| pair | taps | held delay ms | voxline SNR dB (lag) | audioop.ratecv SNR dB (lag) |")
    print("|---|---:|---:|---:|---:|")
    for pair, resampler, (snr, lag), peer_snr in quality_rows(audioop):
        peer_text = "n/a" if peer_snr is None else f"{peer_snr[0]:.1f} ({peer_snr[1]:+d})"
        ours_text = f"{snr:.1f} ({lag:+d})"
        print(f"| {pair} | {resampler.taps} | {resampler.delay_ms:.2f} | {ours_text} | {peer_text} |")
    print("\nlag: the output shift (samples) with the best SNR; voxline's output is aligned (0).\n")
    print("## Image and alias rejection (level re the input tone)\n")
    print("| case | voxline dB | audioop.ratecv dB |")
    print("|---|---:|---:|")
    for name, ours_db, peer_db in rejection_rows(audioop):
        peer_text = "n/a" if peer_db is None else f"{peer_db:.1f}"
        print(f"| {name} | {ours_db:.1f} | {peer_text} |")
    if audioop is None:
        print("audioop is not available on this Python: peer columns are n/a", file=sys.stderr)


if __name__ == "__main__":
    main()
