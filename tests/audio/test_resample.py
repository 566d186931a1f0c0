"""Streaming resampler: in-band SNR on a sine sweep, delay, stop band, chunking independence, tails."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from voxline.audio.resample import Resampler

MAIN_PAIRS = [(8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000), (48000, 24000), (24000, 48000)]
OTHER_PAIRS = [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 8000), (16000, 48000), (48000, 16000)]
ALL_PAIRS = MAIN_PAIRS + OTHER_PAIRS
AMPLITUDE = 0.5 * 32767
SWEEP_S = 0.5


def sweep(rate: int, f1: float, seconds: float = SWEEP_S) -> npt.NDArray[np.float64]:
    """A linear sine sweep 100 Hz -> f1, sampled at ``rate``: the ideal signal at any rate."""
    t = np.arange(round(rate * seconds)) / rate
    return AMPLITUDE * np.sin(2 * np.pi * (100.0 * t + (f1 - 100.0) * t * t / (2 * seconds)))


def pcm(signal: npt.NDArray[np.float64]) -> bytes:
    return np.rint(signal).astype("<i2").tobytes()


def samples(data: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def by_frames(resampler: Resampler, data: bytes, frame_bytes: int) -> list[bytes]:
    return [resampler.process(data[i : i + frame_bytes]) for i in range(0, len(data), frame_bytes)]


def snr_db(out: npt.NDArray[np.float64], ideal: npt.NDArray[np.float64], rate: int) -> float:
    # The sweep starts and stops abruptly (not band-limited there): judge the middle.
    edge = int(0.03 * rate)
    err = out[edge:-edge] - ideal[edge:-edge]
    return float(10 * np.log10(np.sum(ideal[edge:-edge] ** 2) / np.sum(err**2)))


@pytest.mark.parametrize(("in_rate", "out_rate"), ALL_PAIRS)
def test_sweep_snr_and_alignment_frame_by_frame(in_rate: int, out_rate: int) -> None:
    # Sweep through the pass band (to 85 % of the lower Nyquist frequency, 3.4 kHz for 8 kHz),
    # resample in 20 ms frames, compare with the ideal sweep sampled at the output rate with zero lag:
    # the error includes filter ripple, leaked images/aliases, frame-edge artifacts and misalignment.
    f1 = 0.85 * min(in_rate, out_rate) / 2
    resampler = Resampler(in_rate, out_rate)
    out = b"".join(by_frames(resampler, pcm(sweep(in_rate, f1)), in_rate // 50)) + resampler.flush()
    ideal = sweep(out_rate, f1)
    assert len(out) == 2 * ideal.size
    assert snr_db(samples(out), ideal, out_rate) >= 60.0  # measured 81-86 dB
    # A one-sample misalignment at the top of the band would cost far more than 60 dB: check it does.
    assert snr_db(samples(out)[1:], ideal[:-1], out_rate) < 30.0


@pytest.mark.parametrize(("in_rate", "out_rate"), ALL_PAIRS)
def test_held_delay_is_at_most_3_ms_and_frames_come_out_whole(in_rate: int, out_rate: int) -> None:
    resampler = Resampler(in_rate, out_rate)
    assert 0 < resampler.delay_ms <= 3.0
    frame_in, frame_out = in_rate // 50, out_rate // 50
    outs = by_frames(resampler, bytes(2 * frame_in * 10), 2 * frame_in)
    # The first frame is short by the held delay; after that 20 ms in gives exactly 20 ms out.
    held_samples = frame_out - len(outs[0]) // 2
    assert abs(held_samples - resampler.delay_ms * out_rate / 1000) <= 1
    assert held_samples * 1000 / out_rate <= 3.0
    assert {len(o) for o in outs[1:]} == {2 * frame_out}
    assert len(resampler.flush()) == 2 * held_samples


@pytest.mark.parametrize(("in_rate", "out_rate"), ALL_PAIRS)
def test_output_does_not_depend_on_chunking(in_rate: int, out_rate: int) -> None:
    data = pcm(sweep(in_rate, 0.85 * min(in_rate, out_rate) / 2, 0.2))
    one_shot = Resampler(in_rate, out_rate)
    whole = one_shot.process(data) + one_shot.flush()
    framed = Resampler(in_rate, out_rate)
    assert b"".join(by_frames(framed, data, in_rate // 50)) + framed.flush() == whole
    # Arbitrary cuts, including empty and single-sample chunks.
    rng = np.random.default_rng(in_rate + out_rate)
    random_cuts = (2 * rng.integers(0, len(data) // 2, 40)).tolist()
    single_samples = list(range(0, 60, 2))
    cuts = [*sorted({*single_samples, *random_cuts, len(data)}), len(data)]  # last chunk is empty
    chunked = Resampler(in_rate, out_rate)
    parts = [chunked.process(data[a:b]) for a, b in itertools.pairwise(cuts)]
    assert b"".join(parts) + chunked.flush() == whole


@pytest.mark.parametrize(("in_rate", "out_rate"), ALL_PAIRS)
@pytest.mark.parametrize("n_in", [0, 1, 2, 3, 5, 7, 160, 161, 481, 1001])
def test_total_length_after_flush(in_rate: int, out_rate: int, n_in: int) -> None:
    resampler = Resampler(in_rate, out_rate)
    out = resampler.process(bytes(2 * n_in)) + resampler.flush()
    assert abs(len(out) // 2 - n_in * out_rate / in_rate) < 1.0


def test_flush_returns_the_tail_of_speech_and_starts_a_new_stream() -> None:
    # A tone that ends: without flush its last ~2 ms would stay inside the resampler.
    data = pcm(sweep(8000, 1000.0, 0.1))
    resampler = Resampler(8000, 24000)
    first = resampler.process(data)
    tail = resampler.flush()
    assert len(tail) == 2 * round(resampler.delay_ms * 24)
    assert np.max(np.abs(samples(tail))) > 0.3 * AMPLITUDE  # real audio, not padding
    assert resampler.flush() == b""  # nothing left
    again = resampler.process(data) + resampler.flush()
    assert again == first + tail  # same as a fresh resampler


def test_reset_drops_the_held_audio() -> None:
    data = pcm(sweep(24000, 3000.0, 0.1))
    resampler = Resampler(24000, 8000)
    resampler.process(data)
    resampler.reset()
    assert resampler.flush() == b""
    fresh = Resampler(24000, 8000)
    assert resampler.process(data) == fresh.process(data)


def band_energy_db(out: npt.NDArray[np.float64], rate: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size))) ** 2
    freqs = np.fft.rfftfreq(out.size, 1 / rate)
    band = spectrum[(freqs >= lo) & (freqs < hi)].sum()
    return float(10 * np.log10(band / spectrum.sum()))


def test_upsampling_removes_images() -> None:
    # 3 kHz at 8 kHz -> 24 kHz: zero-stuffing images sit at 5, 11, 13 kHz.
    t = np.arange(8000) / 8000
    resampler = Resampler(8000, 24000)
    out = samples(resampler.process(pcm(AMPLITUDE * np.sin(2 * np.pi * 3000 * t))))
    assert band_energy_db(out, 24000, 4600, 12000) < -60.0


@pytest.mark.parametrize(("in_rate", "freq"), [(24000, 4700.0), (24000, 6100.0), (48000, 19900.0)])
def test_downsampling_removes_aliases(in_rate: int, freq: float) -> None:
    # Above the output's Nyquist frequency: it would fold back into the telephone band.
    t = np.arange(in_rate) / in_rate
    resampler = Resampler(in_rate, 8000)
    out = samples(resampler.process(pcm(AMPLITUDE * np.sin(2 * np.pi * freq * t))) + resampler.flush())
    assert out.size == 8000
    power = np.mean(out[80:-80] ** 2) + 1e-12  # skip the on/off clicks; 0 happens (below 1 LSB)
    assert 10 * np.log10(power / (AMPLITUDE**2 / 2)) < -60.0


def test_full_scale_input_clips_instead_of_wrapping() -> None:
    square = np.where(np.arange(800) % 40 < 20, 32767.0, -32768.0)
    resampler = Resampler(8000, 24000)
    out = samples(resampler.process(pcm(square)) + resampler.flush())
    expected = np.repeat(square, 3)
    assert out.size == expected.size
    assert out.max() == 32767 and out.min() == -32768  # the overshoot was clipped
    # Away from the edges (input sample 19 -> 20 is output 57 -> 60) the sign always follows the
    # input; a wrap-around of the overshoot would flip it.
    phase = np.arange(expected.size) % 60
    steady = np.abs(phase - 58.5) > 6
    steady &= np.abs(phase + 1.5) > 6
    assert np.all(np.sign(out[steady]) == np.sign(expected[steady]))


def test_other_rates_like_wav_prompts() -> None:
    # 44.1/22.05 kHz prompt files and speech synthesis: the large-ratio path keeps the same quality.
    for in_rate, out_rate in [(44100, 24000), (22050, 8000), (22050, 24000)]:
        f1 = 0.85 * min(in_rate, out_rate) / 2
        resampler = Resampler(in_rate, out_rate)
        data = pcm(sweep(in_rate, f1, 0.3))
        out = b"".join(by_frames(resampler, data, 2 * (in_rate // 50))) + resampler.flush()
        assert snr_db(samples(out), sweep(out_rate, f1, 0.3), out_rate) >= 60.0


def test_same_rate_returns_the_input() -> None:
    resampler = Resampler(16000, 16000)
    data = bytes(640)
    assert resampler.process(data) is data
    assert resampler.flush() == b"" and resampler.delay_ms == 0.0


@pytest.mark.parametrize(
    ("args", "param"), [((0, 8000), "in_rate"), ((8000, 10**6), "out_rate"), ((8000.0, 16000), "in_rate")]
)
def test_rejects_bad_rates(args: tuple[object, object], param: str) -> None:
    with pytest.raises(ValueError, match=param):
        Resampler(*args)  # type: ignore[arg-type]


def test_rejects_odd_byte_counts() -> None:
    with pytest.raises(ValueError, match="data"):
        Resampler(8000, 24000).process(b"\x00\x01\x02")
