"""Half-cascade costs with the embedded espeak-ng player (docs/benchmarks.md, "Half-cascade").

1. Added latency: a model text delta that completes a sentence -> the first frame of its speech at
   the call (a sink on the real asyncio media clock), for a short and a typical first sentence.
2. CPU per call-minute of agent speech on the media path, half-cascade next to speech-to-speech:
   half-cascade = the model's text deltas (JSON messages as the Realtime API sends them, 4 characters
   each) parsed and appended to a TTSPlayer on espeak-ng (the espeak-ng processes' CPU included),
   paced to a sink; S2S = the same minute as the Realtime API's audio deltas (200 ms of mu-law,
   base64 in JSON) parsed, decoded and pushed to the Realtime client's playout, paced to a sink.
   Both run on a virtual clock (no network, no waiting), so the figure is CPU only.

    .venv/bin/python bench/tts_cost.py [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import statistics
import time

from voxline.audio import PCMU_8K, AudioFormat, Frame
from voxline.audio.tone import tone
from voxline.audio.transcode import Transcoder
from voxline.local.tts import Synthesizer
from voxline.local.tts_player import EspeakTTS
from voxline.media import MediaUnit
from voxline.media.clock import AsyncioMediaClock, VirtualMediaClock
from voxline.media.playout import Playout, PlayoutBuffer
from voxline.media.tts import TTSPlayer

SHORT = "Sure. "
TYPICAL = "Your appointment is booked for Tuesday at nine in the morning. "
MINUTE = (
    "Thanks for calling the clinic. Your appointment is booked for Tuesday at nine in the morning. "
    "Please bring your insurance card and a list of the medicines you take. If you need to change "
    "the time, call us back or reply to the message we sent you. "
) * 6


class Sink(MediaUnit):
    media_format = PCMU_8K

    def __init__(self) -> None:
        super().__init__()
        self.first_at: float | None = None
        self.frames = 0

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.frames += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()


class ModelAudio(MediaUnit):
    """Model audio wired as the Realtime client wires its playout (tests/media/helpers.py)."""

    media_format = PCMU_8K

    def __init__(self, clock: VirtualMediaClock, max_ms: int) -> None:
        super().__init__()
        self.buffer = PlayoutBuffer(PCMU_8K, max_ms=max_ms)
        self.playout = Playout(self.buffer, clock, self._deliver, on_dry=self._flush_sinks)


async def latency(text: str, trials: int) -> list[float]:
    clock = AsyncioMediaClock.for_loop()
    provider = EspeakTTS(synthesizer=Synthesizer(cache_size=0))  # every trial synthesises
    player = TTSPlayer(provider, clock)
    sink = Sink()
    player.send_media_to(sink)
    results: list[float] = []
    for _ in range(trials):
        sink.first_at = None
        start = time.perf_counter()
        player.append(text)
        player.flush()
        while sink.first_at is None:
            await asyncio.sleep(0.0005)
        results.append((sink.first_at - start) * 1000)
        player.clear_buffer()
        await asyncio.sleep(0.05)
    player.close()
    return results


def cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def half_cascade_minute() -> tuple[float, float]:
    clock = VirtualMediaClock()
    player = TTSPlayer(EspeakTTS(synthesizer=Synthesizer(cache_size=0)), clock)
    sink = Sink()
    player.send_media_to(sink)
    messages = [
        json.dumps({"type": "response.output_text.delta", "item_id": "item_1", "delta": MINUTE[i : i + 4]})
        for i in range(0, len(MINUTE), 4)
    ]
    start = cpu_now()
    for message in messages:
        player.append(json.loads(message)["delta"])
    player.flush()
    while player.generating or player.playing:
        clock.advance(20)
        await asyncio.sleep(0)
    used = cpu_now() - start
    audio_s = sink.frames * 0.02
    player.close()
    return used, audio_s


def s2s_minute(audio_s: float) -> float:
    clock = VirtualMediaClock()
    sink = Sink()
    source = ModelAudio(clock, int(audio_s * 1000) + 1000)
    source.send_media_to(sink)
    buffer, playout = source.buffer, source.playout
    pcm = tone(220.0, int(audio_s * 1000), 8000)
    mulaw = Transcoder(AudioFormat("pcm16", 8000), PCMU_8K).process(pcm)
    step = 200 * PCMU_8K.bytes_per_ms
    messages = [
        json.dumps(
            {
                "type": "response.output_audio.delta",
                "item_id": "item_1",
                "delta": base64.b64encode(mulaw[i : i + step]).decode(),
            }
        )
        for i in range(0, len(mulaw), step)
    ]
    start = cpu_now()
    for message in messages:
        playout.push(base64.b64decode(json.loads(message)["delta"]), "item_1")
    while buffer.buffered_ms > 0:
        clock.advance(20)
    used = cpu_now() - start
    playout.close()
    return used


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    for name, text in (("short first sentence", SHORT), ("typical first sentence", TYPICAL)):
        samples = sorted(await latency(text, args.trials))
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        print(
            f"text delta -> first audio at the call, {name} ({len(text.split())} words): "
            f"p50 {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, max {samples[-1]:.1f} ms"
        )
    used, audio_s = await half_cascade_minute()
    s2s = s2s_minute(audio_s)
    per_min = 60.0 / audio_s
    print(f"half-cascade (espeak-ng player): {used * per_min * 1000:.0f} ms CPU per call-minute")
    print(f"speech-to-speech (model audio playout): {s2s * per_min * 1000:.1f} ms CPU per call-minute")


if __name__ == "__main__":
    asyncio.run(main())
