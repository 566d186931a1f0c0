"""Measure what the offline speech parts cost on this machine: ``python -m voxline.local.measure``.

Prints recogniser real-time factors per mode and input rate, synthesis time per second of speech,
and VAD time per frame. The figures in docs/local-backend.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

from voxline.audio import PCMU_8K, AudioFormat
from voxline.audio.g711 import ulaw_decode
from voxline.audio.transcode import Transcoder

from .asr import Recognizer
from .grammar import Slot
from .tts import Synthesizer
from .vad import VoiceActivityDetector

__all__ = ["main"]

PHRASES = [
    "hello",
    "what are your opening hours",
    "when are you open",
    "check my order {order_id}",
    "where is my order",
    "thank you goodbye",
]
SLOTS = {"order_id": Slot.digit_string(4)}
UTTERANCES = ["what are your opening hours", "check my order four two one nine", "thank you goodbye"]
PARAGRAPH = (
    "Hello, this is Voxy from the Maple Street shop. We are open from nine in the morning to six in the "
    "evening, Monday to Saturday. On Sunday we are closed. Thank you for calling, goodbye!"
)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _at(pcm24: bytes, fmt: AudioFormat) -> bytes:
    transcoder = Transcoder(AudioFormat("pcm16", 24000), fmt)
    return transcoder.process(pcm24) + transcoder.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m voxline.local.measure",
        description="Measure what the offline speech parts (espeak-ng, pocketsphinx, webrtcvad) cost on "
        "this machine: synthesis time, recogniser real-time factors, VAD time per frame.",
    )
    parser.parse_args(argv)
    print(f"machine: {machine()}")
    tts = Synthesizer(cache_size=0)

    # -- text-to-speech -------------------------------------------------------------------------------
    long_pcm = tts.synthesize(PARAGRAPH)
    long_s = len(long_pcm) / 48000
    t_long = _best(lambda: tts.synthesize(PARAGRAPH))
    t_short = _best(lambda: tts.synthesize("hello"), repeat=5)
    per_second = t_long / long_s * 1000
    print(f"tts: {long_s:.1f} s of speech in {t_long * 1000:.0f} ms -> {per_second:.1f} ms per second")
    print(f"tts: one word ('hello'): {t_short * 1000:.1f} ms (process start + synthesis)")

    # -- speech recognition -----------------------------------------------------------------------------
    speech24 = [tts.synthesize(u) for u in UTTERANCES]
    inputs = {
        8000: [ulaw_decode(_at(p, PCMU_8K)) for p in speech24],
        24000: speech24,
    }
    for rate, clips in inputs.items():
        seconds = sum(len(c) for c in clips) / (2 * rate)
        start = time.perf_counter()
        phrases = Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=rate)
        load = time.perf_counter() - start
        for label, recognizer in (
            ("phrase list, final pass (default)", phrases),
            (
                "phrase list, streaming only",
                Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=rate, final_pass=False),
            ),
            ("free form (en-us LM), final pass", Recognizer.free_form(input_rate=rate, final_pass=True)),
            ("free form, streaming only (default)", Recognizer.free_form(input_rate=rate)),
        ):
            for clip in clips:  # settle the decoder before timing
                recognizer.recognize(clip)

            def decode_all(r: Recognizer = recognizer, cs: list[bytes] = clips) -> None:
                for c in cs:
                    r.recognize(c)

            spent = _best(decode_all)
            texts = [recognizer.recognize(clip).text for clip in clips]
            exact = sum(t == u for t, u in zip(texts, UTTERANCES, strict=True))
            print(
                f"asr {rate // 1000:>2} kHz {label:<34} RTF {spent / seconds:.3f} "
                f"({spent / seconds * 1000:.0f} ms per s of audio), exact {exact}/{len(clips)}"
            )
        print(f"asr {rate // 1000:>2} kHz recogniser load: {load * 1000:.0f} ms")

    # -- voice activity detection ---------------------------------------------------------------------------
    for rate in (8000, 16000, 24000):
        audio = _at(bytes(48000) + speech24[0] + bytes(48000), AudioFormat("pcm16", rate))
        step = rate * 2 * 20 // 1000
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)]

        vad = VoiceActivityDetector(rate)

        def run(vad: VoiceActivityDetector = vad, chunks: list[bytes] = chunks) -> None:
            vad.reset()
            for chunk in chunks:
                vad.feed(chunk)

        per_frame = _best(run, repeat=5) / (len(chunks) * 2)  # 20 ms chunks, 10 ms frames
        note = " (incl. resampling to 16 kHz)" if rate == 24000 else ""
        print(f"vad {rate // 1000:>2} kHz: {per_frame * 1e6:.1f} us per 10 ms frame{note}")


if __name__ == "__main__":
    main()
