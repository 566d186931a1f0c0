"""Streaming sample-rate conversion of mono PCM16: a polyphase windowed-sinc FIR.

Design (see docs/audio.md):
- Rational ratio L/M (e.g. 8 kHz -> 24 kHz is 3/1), one Kaiser-windowed sinc designed at the common rate
  ``in_rate * L``: cutoff at the lower Nyquist frequency, pass band up to 0.85 of it, stop band from
  1.15 of it, 75 dB attenuation. For 8 kHz <-> 24 kHz that is 95 taps, split into L phases.
- The filter's group delay is compensated: output sample ``m`` is the signal at time ``m / out_rate``,
  exactly aligned with the input. The price is that the stream holds back the group delay
  (``delay_ms``, under 2 ms for every rate pair involving 8 kHz, less for higher rates): the first call
  returns that much less, every later call returns exactly ``len(input) * out_rate / in_rate``, and
  ``flush()`` returns the held tail (as if silence followed) so nothing gets stuck at the end of speech.
- State (the last input samples) is carried between calls, so there are no frame-edge artifacts: the
  output does not depend on how the input was cut into chunks, bit for bit. That holds because the
  arithmetic is exact: coefficients are rounded to multiples of 2**-30, samples are integers, so every
  product and partial sum is a multiple of 2**-30 of magnitude below 2**17, which float64's 53-bit
  mantissa holds exactly (up to 2**23 would); sums are then exact in any order, however BLAS blocks
  and vectorises them.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .g711 import PCM16_DTYPE, Int16Array

__all__ = ["MAX_RATE", "MIN_RATE", "STOPBAND_DB", "Resampler", "design_filter"]

MIN_RATE = 4000
MAX_RATE = 192000
STOPBAND_DB = 75.0
PASS_EDGE = 0.85  # fraction of the lower Nyquist frequency kept flat
STOP_EDGE = 1.15  # fraction of the lower Nyquist frequency from which everything is removed
_COEF_BITS = 30
_COEF_SCALE = float(1 << _COEF_BITS)
_BLOCK = 4800  # input samples per block of a long process() call (100 ms at 48 kHz)
_MAX_WASTE = 4  # compute all L phases and drop the unneeded when M is at most this

FloatArray = npt.NDArray[np.float64]
_NO_SAMPLES: Int16Array = np.zeros(0, dtype=PCM16_DTYPE)
_NO_SAMPLES.flags.writeable = False


def design_filter(in_rate: int, out_rate: int) -> tuple[int, int, FloatArray]:
    """(L, M, taps) of the anti-alias / anti-imaging low-pass at the common rate ``in_rate * L``.

    ``taps`` has an odd length (integer group delay) and DC gain L (each phase has gain ~1); the
    Resampler rounds them to multiples of 2**-30.
    """
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    common = in_rate * up
    nyquist = min(in_rate, out_rate) / 2.0
    transition = 2.0 * math.pi * (STOP_EDGE - PASS_EDGE) * nyquist / common  # rad/sample
    # Kaiser's estimates of length and shape for a given stop-band attenuation.
    ntaps = math.ceil((STOPBAND_DB - 7.95) / (2.285 * transition)) + 1
    ntaps += 1 - ntaps % 2
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    k = np.arange(ntaps, dtype=np.float64) - (ntaps - 1) / 2.0
    fc = nyquist / common  # cycles per sample at the common rate
    taps = 2.0 * fc * np.sinc(2.0 * fc * k) * np.kaiser(ntaps, beta)
    taps *= up / taps.sum()
    return up, down, taps


class Resampler:
    """Streaming resampler of mono PCM16 little-endian bytes; one instance per direction per stream.

    ``process`` may be given chunks of any (even) size; ``flush`` ends the stream, returns the held
    tail and leaves the resampler ready for a new stream, ``reset`` drops the held audio.
    """

    __slots__ = (
        "_bank",
        "_bank_t",
        "_buf",
        "_down",
        "_filled",
        "_first",
        "_half",
        "_identity",
        "_m_next",
        "_n_in",
        "_ntaps",
        "_taps_per_phase",
        "_up",
        "in_rate",
        "out_rate",
    )

    def __init__(self, in_rate: int, out_rate: int) -> None:
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
                raise ValueError(f"{name} must be an int in [{MIN_RATE}, {MAX_RATE}] Hz, got {rate!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._identity = in_rate == out_rate
        up, down, taps = design_filter(in_rate, out_rate)
        self._up = up
        self._down = down
        self._ntaps = taps.size
        self._half = (taps.size - 1) // 2  # group delay, in samples of the common rate
        per_phase = -(-taps.size // up)
        self._taps_per_phase = per_phase
        padded = np.zeros(per_phase * up, dtype=np.float64)
        padded[: taps.size] = np.rint(taps * _COEF_SCALE) / _COEF_SCALE  # exact dyadic values
        # bank[p, j] multiplies x[n - (K-1-j)] for output phase p: rows match ascending input windows.
        self._bank: FloatArray = np.ascontiguousarray(padded.reshape(per_phase, up).T[:, ::-1])
        self._bank_t: FloatArray = np.ascontiguousarray(self._bank.T)
        self._buf: FloatArray = np.zeros(per_phase - 1 + 8 * in_rate // 50 + per_phase, dtype=np.float64)
        self._filled = 0
        self._n_in = 0
        self._m_next = 0
        self._first = 0
        self.reset()

    @property
    def delay_ms(self) -> float:
        """How much audio the stream holds back (the compensated group delay of the filter)."""
        return 0.0 if self._identity else 1000.0 * self._half / (self.in_rate * self._up)

    @property
    def taps(self) -> int:
        return 0 if self._identity else self._ntaps

    def reset(self) -> None:
        """Start a new stream: forget the held input (the past counts as silence)."""
        k = self._taps_per_phase
        self._buf[: k - 1] = 0.0
        self._first = -(k - 1)  # absolute input index of _buf[0]
        self._filled = k - 1
        self._n_in = 0
        self._m_next = 0

    def process(self, data: bytes | bytearray | memoryview) -> bytes:
        """Resample the next chunk of the stream; returns all output whose input is complete."""
        if len(data) % 2:
            raise ValueError(f"data: PCM16 data must have an even number of bytes, got {len(data)}")
        if self._identity:
            return data if isinstance(data, bytes) else bytes(data)
        out: bytes = self.process_samples(np.frombuffer(data, dtype=PCM16_DTYPE)).tobytes()
        return out

    def flush(self) -> bytes:
        """End the stream: return the held tail (as if silence followed) and reset for a new stream."""
        out: bytes = self.flush_samples().tobytes()
        return out

    def process_samples(self, samples: Int16Array) -> Int16Array:
        """Like ``process`` on int16 samples (the caller's array is only read)."""
        if self._identity:
            return samples
        if samples.size > _BLOCK:
            # Long inputs (whole files) go in blocks so the window matrices stay small.
            parts = [self.process_samples(samples[i : i + _BLOCK]) for i in range(0, samples.size, _BLOCK)]
            return np.concatenate(parts)
        self._append(samples)
        self._n_in += samples.size
        last = (self._n_in * self._up - 1 - self._half) // self._down
        return self._emit(last + 1)

    def flush_samples(self) -> Int16Array:
        """Like ``flush``, as int16 samples."""
        # Every output sample whose time lies before the end of the input.
        m_end = -(-self._n_in * self._up // self._down)
        if self._identity or m_end <= self._m_next:
            self.reset()
            return _NO_SAMPLES
        need = (m_end - 1) * self._down + self._half  # common-rate index the last output is centred on
        pad = max(0, need // self._up + 1 - self._n_in)
        self._append(np.zeros(pad, dtype=np.int16))
        out = self._emit(m_end)
        self.reset()
        return out

    def _append(self, samples: Int16Array) -> None:
        end = self._filled + samples.size
        if end > self._buf.size:
            grown = np.zeros(max(end, 2 * self._buf.size), dtype=np.float64)
            grown[: self._filled] = self._buf[: self._filled]
            self._buf = grown
        self._buf[self._filled : end] = samples
        self._filled = end

    def _emit(self, m_end: int) -> Int16Array:
        """Output samples [_m_next, m_end); their input windows must all be in _buf."""
        m0 = self._m_next
        if m_end <= m0:
            return _NO_SAMPLES
        up, down, k = self._up, self._down, self._taps_per_phase
        q0 = m0 * down + self._half  # common-rate index of the first output
        q_last = (m_end - 1) * down + self._half
        n0, n_last = q0 // up, q_last // up  # newest input sample each of them needs
        base = n0 - (k - 1) - self._first  # _buf index where the first window starts
        count = m_end - m0
        if up == 1:
            # Decimation: one window every M input samples, all with the single phase.
            windows = self._windows(base, count, down)
            acc = np.einsum("ij,j->i", windows, self._bank[0])
        elif down <= _MAX_WASTE:
            # Every phase of every input sample: the rows, read in order, are the signal at the common
            # rate, of which every M-th sample is output (M = 1 for integer upsampling: no waste).
            windows = self._windows(base, n_last - n0 + 1, 1)
            start = q0 % up
            acc = (windows @ self._bank_t).reshape(-1)[start : start + (count - 1) * down + 1 : down]
        else:
            # Large M (e.g. 44.1 kHz -> 8 kHz): only the needed (window, phase) pairs.
            windows = self._windows(base, n_last - n0 + 1, 1)
            q = np.arange(q0, q_last + 1, down, dtype=np.int64)
            acc = np.einsum("ij,ij->i", windows[q // up - n0], self._bank[q % up])
        np.rint(acc, out=acc)
        np.minimum(acc, 32767.0, out=acc)
        np.maximum(acc, -32768.0, out=acc)
        out: Int16Array = acc.astype(PCM16_DTYPE)
        self._m_next = m_end
        # Keep what the next output's window needs (at most K-1 samples + whatever is not yet used).
        keep_from = (m_end * down + self._half) // up - (k - 1) - self._first
        keep_from = min(keep_from, self._filled)
        if keep_from > 0:
            tail = self._filled - keep_from
            self._buf[:tail] = self._buf[keep_from : self._filled]
            self._first += keep_from
            self._filled = tail
        return out

    def _windows(self, start: int, rows: int, step: int) -> FloatArray:
        """View of ``rows`` input windows of K samples, the first at ``_buf[start]``, ``step`` apart."""
        item = self._buf.itemsize
        return np.ndarray(
            (rows, self._taps_per_phase),
            dtype=np.float64,
            buffer=self._buf,
            offset=start * item,
            strides=(step * item, item),
        )
