"""Offline text-to-speech: ``espeak-ng`` run as a separate process, PCM16 out at the rate you ask for.

espeak-ng (GPL) is never linked: it runs as a subprocess writing a WAV stream (22,050 Hz mono
PCM16) to stdout, text goes in on stdin (so text starting with ``-`` is not an option). The stream
is converted to the requested rate with :class:`voxline.audio.resample.Resampler`;
:meth:`Synthesizer.synthesize_as` encodes to any session format (``pcmu``, ``pcma``, ``pcm16``)
with :class:`voxline.audio.transcode.Transcoder`.

Agents repeat themselves (greetings, "sorry, I did not catch that"), so results are kept in a
small LRU cache keyed by the text.

Cost (measured, see docs/local-backend.md): about 10 ms per second of speech, about 20 ms for a
single word (mostly starting the process).
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass

from voxline.audio import AudioFormat
from voxline.audio.resample import Resampler
from voxline.audio.transcode import Transcoder

__all__ = ["ESPEAK_RATE", "EspeakNotFoundError", "SynthesisError", "Synthesizer", "TTSCacheInfo"]

ESPEAK_RATE = 22050
_OUTPUT_RATES = (8000, 16000, 24000, 48000)


class EspeakNotFoundError(RuntimeError):
    """espeak-ng is not installed (or not at the given path)."""


class SynthesisError(RuntimeError):
    """espeak-ng failed, timed out or wrote something that is not a PCM16 WAV stream."""


@dataclass(frozen=True, slots=True)
class TTSCacheInfo:
    hits: int
    misses: int
    entries: int
    max_entries: int


def _find_espeak(executable: str | None) -> str:
    path = shutil.which(executable or "espeak-ng")
    if path is None:
        where = f" at {executable!r}" if executable else ""
        raise EspeakNotFoundError(
            f"espeak-ng was not found{where}; the offline voice needs it: "
            "apt-get install espeak-ng (Debian/Ubuntu) or brew install espeak-ng (macOS)"
        )
    return path


def parse_espeak_wav(data: bytes) -> bytes:
    """PCM16 samples of espeak-ng's ``--stdout`` WAV stream.

    The stream's RIFF and data sizes are placeholders (0x7ffff000: it cannot seek back), so the data
    chunk is taken to run to the end of the stream.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SynthesisError(f"espeak-ng did not write a WAV stream (got {len(data)} bytes)")
    pos = 12
    fmt_ok = False
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if (tag, channels, rate, bits) != (1, 1, ESPEAK_RATE, 16):
                raise SynthesisError(
                    f"unexpected espeak-ng WAV format: tag={tag} channels={channels} rate={rate} bits={bits}"
                )
            fmt_ok = True
        elif chunk_id == b"data":
            if not fmt_ok:
                raise SynthesisError("espeak-ng WAV stream has no fmt chunk before its data")
            pcm = data[body:]
            return pcm[: len(pcm) & ~1]
        pos = body + size + (size & 1)
    raise SynthesisError("espeak-ng WAV stream has no data chunk")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill espeak-ng and reap it. Its stdout must be drained: a full, unread pipe keeps the
    transport paused and ``wait()`` would never return."""
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    await proc.communicate()


class Synthesizer:
    """Text in, PCM16 mono out, through espeak-ng.

    ``voice`` is an espeak-ng voice (``en-us``, ``en-us+m3``, ``en-gb``...), ``rate_wpm`` the speaking
    rate in words per minute (80..450), ``pitch`` 0..99, ``word_gap_ms`` extra pause between words
    (espeak's unit is 10 ms), ``output_rate`` one of 8000, 16000, 24000, 48000. ``cache_size``
    utterances are kept (0 disables the cache). Raises :class:`EspeakNotFoundError` when espeak-ng
    is missing and ``ValueError`` naming the parameter for a bad setting.
    """

    def __init__(
        self,
        voice: str = "en-us",
        rate_wpm: int = 160,
        *,
        pitch: int = 50,
        word_gap_ms: int = 0,
        output_rate: int = 24000,
        cache_size: int = 64,
        timeout_s: float = 30.0,
        executable: str | None = None,
    ) -> None:
        if not voice or voice.startswith("-") or any(c.isspace() for c in voice):
            raise ValueError(f"voice must be an espeak-ng voice name such as 'en-us', got {voice!r}")
        if not 80 <= rate_wpm <= 450:
            raise ValueError(f"rate_wpm must be 80..450 words per minute, got {rate_wpm}")
        if not 0 <= pitch <= 99:
            raise ValueError(f"pitch must be 0..99, got {pitch}")
        if word_gap_ms < 0:
            raise ValueError(f"word_gap_ms must be >= 0, got {word_gap_ms}")
        if output_rate not in _OUTPUT_RATES:
            raise ValueError(f"output_rate must be one of {_OUTPUT_RATES}, got {output_rate}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.word_gap_ms = word_gap_ms
        self.output_rate = output_rate
        self.timeout_s = timeout_s
        self._executable = _find_espeak(executable)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # the sync API may be used from executor threads
        self._hits = 0
        self._misses = 0

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self.output_rate)

    def command(self) -> list[str]:
        """The espeak-ng command line (text is written to its stdin)."""
        cmd = [self._executable, "--stdout", "-b", "1", "-v", self.voice, "-s", str(self.rate_wpm)]
        cmd += ["-p", str(self.pitch)]
        if self.word_gap_ms:
            cmd += ["-g", str(max(1, round(self.word_gap_ms / 10)))]
        return cmd

    # -- cache --------------------------------------------------------------------------------
    def cache_info(self) -> TTSCacheInfo:
        with self._lock:
            return TTSCacheInfo(self._hits, self._misses, len(self._cache), self._cache_size)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, key: str) -> bytes | None:
        with self._lock:
            pcm = self._cache.get(key)
            if pcm is None:
                self._misses += 1
                return None
            self._cache.move_to_end(key)
            self._hits += 1
            return pcm

    def _store(self, key: str, pcm: bytes) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[key] = pcm
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    @staticmethod
    def _key(text: str) -> str:
        return " ".join(text.split())

    # -- synthesis ----------------------------------------------------------------------------
    def _convert(self, wav: bytes) -> bytes:
        resampler = Resampler(ESPEAK_RATE, self.output_rate)
        return resampler.process(parse_espeak_wav(wav)) + resampler.flush()

    def _failure(self, returncode: int | None, stderr: bytes) -> SynthesisError:
        detail = stderr.decode("utf-8", "replace").strip()[:300]
        return SynthesisError(
            f"espeak-ng (voice {self.voice!r}) exited with {returncode}: {detail or 'no message'}"
        )

    def synthesize(self, text: str) -> bytes:
        """PCM16 at ``output_rate`` for ``text`` (blocking; ``b""`` for blank text)."""
        key = self._key(text)
        if not key:
            return b""
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            done = subprocess.run(
                self.command(), input=key.encode("utf-8"), capture_output=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthesisError(f"espeak-ng took longer than {self.timeout_s} s") from exc
        if done.returncode != 0:
            raise self._failure(done.returncode, done.stderr)
        pcm = self._convert(done.stdout)
        self._store(key, pcm)
        return pcm

    async def synthesize_async(self, text: str) -> bytes:
        """Like :meth:`synthesize`, without blocking the event loop (subprocess + executor)."""
        key = self._key(text)
        if not key:
            return b""
        cached = self._cached(key)
        if cached is not None:
            return cached
        proc = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            wav, stderr = await asyncio.wait_for(proc.communicate(key.encode("utf-8")), self.timeout_s)
        except TimeoutError as exc:
            await _kill(proc)
            raise SynthesisError(f"espeak-ng took longer than {self.timeout_s} s") from exc
        except BaseException:
            await _kill(proc)  # cancelled: do not leave the process (or its pipes) behind
            raise
        if proc.returncode != 0:
            raise self._failure(proc.returncode, stderr)
        # Resampling 22,050 Hz costs a few ms per second of speech: keep it off the loop.
        pcm = await asyncio.get_running_loop().run_in_executor(None, self._convert, wav)
        self._store(key, pcm)
        return pcm

    def _encode(self, pcm: bytes, fmt: AudioFormat) -> bytes:
        transcoder = Transcoder(self.output_format, fmt)
        if transcoder.passthrough:
            return pcm
        return transcoder.process(pcm) + transcoder.flush()

    def synthesize_as(self, text: str, fmt: AudioFormat) -> bytes:
        """``text`` as audio in ``fmt`` (e.g. ``PCMU_8K`` for a phone line, ``PCM16_24K`` for a session)."""
        return self._encode(self.synthesize(text), fmt)

    async def synthesize_as_async(self, text: str, fmt: AudioFormat) -> bytes:
        pcm = await self.synthesize_async(text)
        if fmt == self.output_format:
            return pcm
        return await asyncio.get_running_loop().run_in_executor(None, self._encode, pcm, fmt)
