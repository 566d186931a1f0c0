"""Voice activity detection on espeak-ng speech padded with known silence, with and without noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from voxline.audio import PCM16_16K, PCM16_24K, PCMU_8K
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.local.vad import (
    SpeechStarted,
    SpeechStopped,
    VadEvent,
    VadParams,
    VoiceActivityDetector,
    aggressiveness_for_threshold,
)

pytestmark = pytest.mark.usefixtures("webrtcvad")

Speech = Callable[..., bytes]
TOLERANCE_MS = 100


def pad(pcm: bytes, rate: int, before_ms: int, after_ms: int) -> bytes:
    return bytes(rate * 2 * before_ms // 1000) + pcm + bytes(rate * 2 * after_ms // 1000)


def add_noise(pcm: bytes, dbfs: float, seed: int = 7) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    samples += np.random.default_rng(seed).normal(0.0, 32768 * 10 ** (dbfs / 20), samples.size)
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


def run(vad: VoiceActivityDetector, audio: bytes, chunk_ms: int = 20) -> list[VadEvent]:
    step = vad.input_rate * 2 * chunk_ms // 1000
    events: list[VadEvent] = []
    for i in range(0, len(audio), step):
        events += vad.feed(audio[i : i + step])
    return events + vad.flush()


def duration_ms(pcm: bytes, rate: int) -> float:
    return len(pcm) / (2 * rate) * 1000


CASES = [
    # (rate, noise dBFS or None, threshold)
    (24000, None, 0.5),
    (16000, None, 0.5),
    (8000, None, 0.5),
    (24000, -45.0, 0.5),
    (8000, -45.0, 0.5),
    (24000, -30.0, 0.9),
    (16000, -30.0, 0.9),
]


@pytest.mark.parametrize(("rate", "noise", "threshold"), CASES)
@pytest.mark.parametrize("text", ["what are your opening hours", "check my order one two three four"])
def test_speech_start_and_stop_within_100_ms(
    speech: Speech, text: str, rate: int, noise: float | None, threshold: float
) -> None:
    fmt = {24000: PCM16_24K, 16000: PCM16_16K, 8000: PCMU_8K}[rate]
    voice = speech(text, fmt, trim=True)
    pcm = ulaw_decode(voice) if fmt is PCMU_8K else voice
    before, after = 1200, 1500
    audio = pad(pcm, rate, before, after)
    if noise is not None:
        audio = add_noise(audio, noise)
    if fmt is PCMU_8K:  # the phone line carries the noise too
        audio = ulaw_decode(ulaw_encode(audio))
    truth_start, truth_end = before, before + duration_ms(pcm, rate)

    params = VadParams(threshold=threshold, prefix_padding_ms=300, silence_duration_ms=500)
    events = run(VoiceActivityDetector(rate, params), audio)

    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped], events
    started, stopped = events
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert abs(started.speech_start_ms - truth_start) <= TOLERANCE_MS
    assert abs(stopped.speech_end_ms - truth_end) <= TOLERANCE_MS
    # OpenAI's positions: the prefix padding before, the silence duration after.
    assert started.audio_start_ms == started.speech_start_ms - 300
    assert stopped.audio_end_ms == stopped.speech_end_ms + 500
    # Decisions come after the fact, never before: start after an onset window, stop after the silence.
    assert started.speech_start_ms < started.detected_at_ms <= started.speech_start_ms + 200
    assert stopped.detected_at_ms >= stopped.speech_end_ms + 500


def test_two_utterances_and_a_short_pause(speech: Speech) -> None:
    first = speech("hello", PCM16_24K, trim=True)
    second = speech("what are your opening hours", PCM16_24K, trim=True)
    third = speech("thank you goodbye", PCM16_24K, trim=True)
    rate = 24000
    # A 250 ms pause (shorter than silence_duration_ms) does not end the turn; 1 s does.
    audio = pad(first, rate, 600, 250) + second + pad(third, rate, 1000, 900)
    events = run(VoiceActivityDetector(rate, VadParams(silence_duration_ms=500)), audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped, SpeechStarted, SpeechStopped]
    first_end = 600 + duration_ms(first, rate) + 250 + duration_ms(second, rate)
    second_start = first_end + 1000
    assert abs(events[0].speech_start_ms - 600) <= TOLERANCE_MS  # type: ignore[union-attr]
    assert abs(events[1].speech_end_ms - first_end) <= TOLERANCE_MS  # type: ignore[union-attr]
    assert abs(events[2].speech_start_ms - second_start) <= TOLERANCE_MS  # type: ignore[union-attr]


def test_events_do_not_depend_on_chunk_sizes(speech: Speech) -> None:
    audio = pad(speech("check my order one two three four", PCM16_24K, trim=True), 24000, 700, 800)
    reference = run(VoiceActivityDetector(24000), audio, chunk_ms=20)
    for chunk_ms in (10, 30, 100, 1000):
        assert run(VoiceActivityDetector(24000), audio, chunk_ms=chunk_ms) == reference
    odd = VoiceActivityDetector(24000)
    events: list[VadEvent] = []
    for i in range(0, len(audio), 962):  # chunks that split frames and samples' byte pairs evenly
        events += odd.feed(audio[i : i + 962])
    assert events + odd.flush() == reference


def test_silence_and_steady_noise_give_no_events() -> None:
    rate = 16000
    assert run(VoiceActivityDetector(rate), bytes(rate * 2 * 3)) == []
    assert (
        run(VoiceActivityDetector(rate, VadParams(threshold=0.9)), add_noise(bytes(rate * 2 * 3), -30)) == []
    )


def test_prefix_padding_is_clamped_at_zero(speech: Speech) -> None:
    audio = pad(speech("hello", PCM16_24K, trim=True), 24000, 100, 800)
    events = run(VoiceActivityDetector(24000, VadParams(prefix_padding_ms=300), warmup_ms=0), audio)
    assert isinstance(events[0], SpeechStarted)
    assert events[0].audio_start_ms == 0


def test_flush_ends_speech_in_progress(speech: Speech) -> None:
    vad = VoiceActivityDetector(24000)
    events = vad.feed(pad(speech("what are your opening hours", PCM16_24K, trim=True), 24000, 500, 0))
    assert [type(e) for e in events] == [SpeechStarted]
    assert vad.speaking
    (stopped,) = vad.flush()
    assert isinstance(stopped, SpeechStopped)
    assert stopped.detected_at_ms == pytest.approx(vad.position_ms, abs=10)
    assert not vad.speaking and vad.flush() == []


def test_reset_restarts_positions(speech: Speech) -> None:
    audio = pad(speech("hello", PCM16_24K, trim=True), 24000, 500, 700)
    vad = VoiceActivityDetector(24000)
    first = run(vad, audio)
    vad.reset()
    assert vad.position_ms == 0
    assert run(vad, audio) == first


def test_threshold_maps_to_aggressiveness() -> None:
    assert [aggressiveness_for_threshold(t) for t in (0.0, 0.3, 0.5, 0.74, 0.75, 1.0)] == [0, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="threshold"):
        aggressiveness_for_threshold(1.5)


def test_params_from_openai_turn_detection() -> None:
    params = VadParams.from_openai(
        {
            "type": "server_vad",
            "threshold": 0.7,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 800,
            "create_response": True,
            "idle_timeout_ms": None,
        }
    )
    assert params == VadParams(0.7, 200, 800)
    assert VadParams.from_openai({"type": "server_vad"}) == VadParams()
    with pytest.raises(ValueError, match="semantic_vad"):
        VadParams.from_openai({"type": "semantic_vad"})
    with pytest.raises(ValueError, match=r"turn_detection\.silence_duration_ms"):
        VadParams.from_openai({"type": "server_vad", "silence_duration_ms": "500"})
    with pytest.raises(ValueError, match="threshold"):
        VadParams.from_openai({"type": "server_vad", "threshold": True})
    with pytest.raises(ValueError, match="prefix_padding_ms"):
        VadParams.from_openai({"type": "server_vad", "prefix_padding_ms": -1})


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="input_rate"):
        VoiceActivityDetector(44100)
    with pytest.raises(ValueError, match="frame_ms"):
        VoiceActivityDetector(16000, frame_ms=15)
    with pytest.raises(ValueError, match="onset_ms"):
        VoiceActivityDetector(16000, onset_ms=500)
    with pytest.raises(ValueError, match="even"):
        VoiceActivityDetector(16000).feed(b"\x00\x00\x00")


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_all_frame_sizes_work(speech: Speech, frame_ms: int) -> None:
    pcm = speech("what are your opening hours", PCM16_16K, trim=True)
    audio = pad(pcm, 16000, 1000, 1000)
    events = run(VoiceActivityDetector(16000, frame_ms=frame_ms, onset_window_ms=120, onset_ms=60), audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    assert abs(events[0].speech_start_ms - 1000) <= TOLERANCE_MS  # type: ignore[union-attr]
    assert abs(events[1].speech_end_ms - (1000 + duration_ms(pcm, 16000))) <= TOLERANCE_MS  # type: ignore[union-attr]


def test_each_session_adapts_to_its_own_line_noise() -> None:
    """webrtcvad learns the noise it hears: the backend gives every session its own detector."""
    from voxline.local.engine import WebrtcSpeechDetector
    from voxline.testing.realtime.engine import session_detector

    noise = np.random.default_rng(1).normal(0.0, 100.0, 8000 * 4).astype("<i2").tobytes()

    def decisions(detector: WebrtcSpeechDetector, audio: bytes) -> list[float]:
        return [detector.speech_probability(audio[i : i + 160], 8000) for i in range(0, len(audio), 160)]

    shared = WebrtcSpeechDetector()
    first = session_detector(shared)
    assert isinstance(first, WebrtcSpeechDetector)
    decisions(first, noise[: 8000 * 2 * 3])  # three seconds: it has learnt this line's noise
    tail = noise[8000 * 2 * 3 :]
    assert sum(decisions(first, tail)) == 0
    second = session_detector(shared)  # a call starting now, on a line with the same noise
    assert second is not first
    assert isinstance(second, WebrtcSpeechDetector)
    assert decisions(second, tail) == decisions(WebrtcSpeechDetector(), tail)  # untouched by the first
