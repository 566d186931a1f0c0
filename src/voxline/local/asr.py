"""Offline speech recognition with pocketsphinx (its wheel ships the en-us model).

Three modes:

- **phrases**: a list of phrases (optionally with ``{slot}`` placeholders) compiled to a JSGF
  grammar; the decoder can only answer one of them (or, with ``sequence=True``, several in a row).
  Exact on clear speech, including espeak-ng speech through an 8 kHz mu-law phone line.
- **grammar**: your own JSGF grammar text.
- **free form**: the en-us trigram language model. Any English, but poor on synthetic and
  telephone speech (see docs/local-backend.md).

Audio is PCM16 mono at 8, 16, 24 or 48 kHz; it is resampled to the decoder's 16 kHz.
Streaming: :meth:`Recognizer.start`, :meth:`Recognizer.feed` (any chunk size, typically 20 ms;
returns a partial hypothesis when it changed), :meth:`Recognizer.finish` (the final one). Partial
hypotheses come from the live decoding pass; in the grammar modes the final one comes from a second
pass over the whole utterance (``final_pass``), which is more accurate on short utterances.

Cost (measured on the machine named in docs/local-backend.md): grammar modes 0.03-0.17 s of CPU
per second of audio (both passes), free form 0.3-0.6 s per second; creating a recogniser loads the
acoustic model (0.3-0.7 s). A Recognizer is not thread-safe; :class:`AsyncRecognizer` runs all decoding of one
recogniser in one worker thread so the event loop only waits for results.
"""

from __future__ import annotations

import asyncio
import enum
import pickle
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxline.audio.resample import Resampler

from .grammar import Slot, build_jsgf, normalise, phrase_regex, phrase_slots, slot_value

__all__ = [
    "DECODER_RATE",
    "AsyncRecognizer",
    "Hypothesis",
    "RecognitionMode",
    "Recognizer",
    "RecognizerUnavailableError",
]

DECODER_RATE = 16000
_INPUT_RATES = (8000, 16000, 24000, 48000)
_SEARCH = "voxline"


class RecognizerUnavailableError(RuntimeError):
    """pocketsphinx is not installed."""


class RecognitionMode(enum.StrEnum):
    PHRASES = "phrases"
    GRAMMAR = "grammar"
    FREE_FORM = "free_form"


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """What was heard. ``text`` is lower case words (``""`` when nothing was recognised).

    ``phrase`` is the phrase of the list that matched (phrase mode, final hypotheses) and
    ``slots`` the values of its placeholders (digit slots as digit strings).
    ``audio_ms`` is the audio fed into this utterance so far.
    """

    text: str
    final: bool
    audio_ms: float
    phrase: str | None = None
    slots: Mapping[str, str] | None = None


def _decoder_class() -> Any:
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RecognizerUnavailableError(
            "speech recognition needs pocketsphinx: pip install 'voxline[local]'"
        ) from exc
    return Decoder


class Recognizer:
    """A pocketsphinx decoder for one stream of utterances (one call leg).

    Build it with :meth:`from_phrases`, :meth:`from_grammar` or :meth:`free_form`.
    ``input_rate`` is the rate of the PCM16 you feed. Construction loads the model (~0.5 s, blocking):
    in asyncio code use :meth:`AsyncRecognizer.create`.
    """

    def __init__(
        self,
        mode: RecognitionMode,
        *,
        input_rate: int = DECODER_RATE,
        grammar: str | None = None,
        phrases: Sequence[str] = (),
        slots: Mapping[str, Slot] | None = None,
        partial_interval_ms: int = 200,
        final_pass: bool | None = None,
        noise_floor: float = 16.0,
        max_utterance_ms: int = 60_000,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if input_rate not in _INPUT_RATES:
            raise ValueError(f"input_rate must be one of {_INPUT_RATES}, got {input_rate}")
        if noise_floor < 0:
            raise ValueError(f"noise_floor must be >= 0, got {noise_floor}")
        if partial_interval_ms < 0:
            raise ValueError(f"partial_interval_ms must be >= 0, got {partial_interval_ms}")
        if mode is not RecognitionMode.FREE_FORM and not grammar:
            raise ValueError(f"{mode.value} mode needs a grammar")
        self.mode = mode
        self.input_rate = input_rate
        self.grammar = grammar
        self.partial_interval_ms = partial_interval_ms
        self._phrases = list(phrases)
        self._slots = dict(slots or {})
        self._patterns = [(p, phrase_regex(p, self._slots)) for p in self._phrases]
        decoder_cls = _decoder_class()
        kwargs: dict[str, Any] = {"samprate": DECODER_RATE, "loglevel": "FATAL"}
        kwargs.update(model_kwargs or {})
        self._decoder = decoder_cls(**kwargs)
        if grammar is not None:
            self._check_words(grammar)
            try:
                self._decoder.add_jsgf_string(_SEARCH, grammar)
            except ValueError as exc:
                raise ValueError(f"the JSGF grammar was rejected by pocketsphinx: {exc}") from exc
            self._decoder.activate_search(_SEARCH)
        self._resampler = Resampler(input_rate, DECODER_RATE) if input_rate != DECODER_RATE else None
        # The second pass pays off in grammar modes (cheap, much more accurate on short utterances);
        # with the language model it costs 1-4x real time and changes nothing measurable.
        self.final_pass = final_pass if final_pass is not None else mode is not RecognitionMode.FREE_FORM
        self.noise_floor = noise_floor
        self._noise = np.random.default_rng(0)
        self._max_utterance_bytes = max_utterance_ms * DECODER_RATE * 2 // 1000
        self._utterance = bytearray()  # decoder-rate audio of the utterance, for the final pass
        self._active = False
        self._fed_bytes = 0
        self._since_partial = 0
        self._last_partial = ""

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_phrases(
        cls,
        phrases: Sequence[str],
        *,
        slots: Mapping[str, Slot] | None = None,
        sequence: bool = False,
        input_rate: int = DECODER_RATE,
        partial_interval_ms: int = 200,
        final_pass: bool | None = None,
    ) -> Recognizer:
        """Recognise one of ``phrases`` (``sequence=True``: one or more of them in a row)."""
        jsgf = build_jsgf(phrases, slots, sequence=sequence)
        return cls(
            RecognitionMode.PHRASES,
            input_rate=input_rate,
            grammar=jsgf,
            phrases=phrases,
            slots=slots,
            partial_interval_ms=partial_interval_ms,
            final_pass=final_pass,
        )

    @classmethod
    def from_grammar(
        cls,
        jsgf: str,
        *,
        input_rate: int = DECODER_RATE,
        partial_interval_ms: int = 200,
        final_pass: bool | None = None,
    ) -> Recognizer:
        """Recognise what a JSGF grammar (text, with a ``public`` rule) accepts."""
        return cls(
            RecognitionMode.GRAMMAR,
            input_rate=input_rate,
            grammar=jsgf,
            partial_interval_ms=partial_interval_ms,
            final_pass=final_pass,
        )

    @classmethod
    def free_form(
        cls, *, input_rate: int = DECODER_RATE, partial_interval_ms: int = 200, final_pass: bool = False
    ) -> Recognizer:
        """Recognise any English with the bundled en-us language model (slow, approximate)."""
        return cls(
            RecognitionMode.FREE_FORM,
            input_rate=input_rate,
            partial_interval_ms=partial_interval_ms,
            final_pass=final_pass,
        )

    def _check_words(self, jsgf: str) -> None:
        """Name an unknown word now: pocketsphinx would only log it and never recognise it."""
        unknown: list[str] = []
        for line in jsgf.splitlines():
            if "=" not in line:
                continue
            expansion = line.split("=", 1)[1]
            for token in expansion.replace(";", " ").replace("|", " ").split():
                word = token.strip("()[]*+")
                if not word or word.startswith(("<", "/", "{")) or word in unknown:
                    continue
                if self._decoder.lookup_word(word) is None:
                    unknown.append(word)
        if unknown:
            raise ValueError(
                f"words not in the pronunciation dictionary: {', '.join(unknown)} "
                "(it is lower case; spell numbers as words, or use a digits slot)"
            )

    # -- streaming --------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    def start(self) -> None:
        """Begin an utterance (ends an unfinished one silently)."""
        if self._active:
            self._decoder.end_utt()
        if self._resampler is not None:
            self._resampler.reset()
        self._decoder.start_utt()
        self._noise = np.random.default_rng(0)  # same audio, same result, whatever came before
        self._utterance.clear()
        self._active = True
        self._fed_bytes = 0
        self._since_partial = 0
        self._last_partial = ""

    def _audio_ms(self) -> float:
        return self._fed_bytes / (2 * self.input_rate) * 1000.0

    def feed(self, pcm: bytes) -> Hypothesis | None:
        """Decode a chunk of PCM16 at ``input_rate``; a partial hypothesis when it changed.

        Partial hypotheses are computed at most every ``partial_interval_ms`` of audio.
        """
        if not self._active:
            self.start()
        if len(pcm) & 1:
            raise ValueError(f"PCM16 chunks have an even number of bytes, got {len(pcm)}")
        self._fed_bytes += len(pcm)
        data = self._resampler.process(pcm) if self._resampler is not None else pcm
        if data:
            data = self._with_noise_floor(data)
            self._decoder.process_raw(data)
            if self.final_pass and len(self._utterance) < self._max_utterance_bytes:
                self._utterance += data
        self._since_partial += len(pcm)
        if self._since_partial * 1000 < self.partial_interval_ms * 2 * self.input_rate:
            return None
        self._since_partial = 0
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if text == self._last_partial:
            return None
        self._last_partial = text
        return Hypothesis(text, final=False, audio_ms=self._audio_ms())

    def _with_noise_floor(self, data: bytes) -> bytes:
        """Add a faint noise floor (~-66 dBFS): the acoustic model has never heard digital silence,
        and synthetic or gated audio is full of it (exact zeros wreck the cepstral mean)."""
        if not self.noise_floor:
            return data
        samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
        samples += self._noise.normal(0.0, self.noise_floor, samples.size)
        return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()

    def finish(self) -> Hypothesis:
        """End the utterance and return the final hypothesis (``text == ""`` when nothing matched)."""
        if not self._active:
            return Hypothesis("", final=True, audio_ms=0.0)
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail:
                tail = self._with_noise_floor(tail)
                self._decoder.process_raw(tail)
                self._utterance += tail
        self._decoder.end_utt()
        self._active = False
        hyp = self._decoder.hyp()
        if self.final_pass and self._utterance:
            # The streaming pass normalises cepstra with a running mean that is still settling during a
            # short utterance; decoding the whole utterance again with its own mean is far more
            # accurate (grammar modes cost ~1% of real time, so the second pass is cheap).
            self._decoder.start_utt()
            self._decoder.process_raw(bytes(self._utterance), full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp() or hyp
            self._utterance.clear()
        text = normalise(hyp.hypstr) if hyp is not None else ""
        phrase, slots = self._match(text)
        return Hypothesis(text, final=True, audio_ms=self._audio_ms(), phrase=phrase, slots=slots)

    def _match(self, text: str) -> tuple[str | None, dict[str, str] | None]:
        for phrase, pattern in self._patterns:
            m = pattern.match(text)
            if m is not None:
                values = {name: slot_value(self._slots[name], m.group(name)) for name in phrase_slots(phrase)}
                return phrase, values
        return None, None

    def recognize(self, pcm: bytes, chunk_ms: int = 20) -> Hypothesis:
        """Decode one whole utterance (fed in ``chunk_ms`` pieces, like a live stream)."""
        self.start()
        step = self.input_rate * 2 * chunk_ms // 1000
        view = memoryview(pcm)
        for i in range(0, len(pcm), step):
            self.feed(bytes(view[i : i + step]))
        return self.finish()


class _WorkerProcess:
    """A recogniser in a child process (``voxline.local._asr_worker``), one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls) -> _WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voxline.local._asr_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _exchange(self, payload: bytes) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write(len(payload).to_bytes(4, "big") + payload)
            await self.proc.stdin.drain()
            try:
                header = await self.proc.stdout.readexactly(4)
                body = await self.proc.stdout.readexactly(int.from_bytes(header, "big"))
            except asyncio.IncompleteReadError:
                raise RuntimeError(
                    f"the recogniser process ended (exit code {self.proc.returncode}); see its stderr"
                ) from None
        ok, value = pickle.loads(body)
        if not ok:
            raise value
        return value

    async def call(self, method: str, *args: Any) -> Any:
        if self.proc.returncode is not None:
            raise RuntimeError("the recogniser process is closed")
        # Shielded: a cancelled caller must not leave a half-read reply in the pipe.
        return await asyncio.shield(self._exchange(pickle.dumps((method, args))))

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()  # the worker exits at end of input

    async def aclose(self, timeout_s: float = 5.0) -> None:
        self.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class AsyncRecognizer:
    """A :class:`Recognizer` driven from asyncio, off the event loop.

    Two ways to run it:

    - :meth:`create`: in one dedicated worker **thread**. pocketsphinx keeps the GIL while it decodes,
      so the loop still stalls while one long call runs: measured up to ~0.15 s for a 2-3 s utterance
      in the grammar modes (the whole-utterance final pass is one call) and ~0.1-0.2 s in free form
      (its end-of-utterance search), more for longer audio. Fine for tests and light use.
    - :meth:`in_process`: in one dedicated worker **process** (``python -m voxline.local._asr_worker``):
      the loop never waits for the decoder. Costs a Python process (about 1 s to start, ~100 MB) per
      recogniser; the factory and its arguments must be picklable (``Recognizer.from_phrases`` with
      plain lists and :class:`Slot` values are).

    Feed audio in batches (e.g. every 100-200 ms of the stream), or the whole utterance when the VAD
    says it ended; each call is one hop to the worker.
    """

    def __init__(self, recognizer: Recognizer | None, *, _worker: _WorkerProcess | None = None) -> None:
        self.recognizer = recognizer
        self._worker = _worker
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxline-asr") if _worker is None else None
        )

    @classmethod
    async def create(cls, factory: Any, /, *args: Any, **kwargs: Any) -> AsyncRecognizer:
        """Build the recogniser off the loop (loading the model takes ~0.5 s); decode in a thread.

        ``await AsyncRecognizer.create(Recognizer.from_phrases, phrases, input_rate=8000)``
        """
        loop = asyncio.get_running_loop()
        recognizer = await loop.run_in_executor(None, lambda: factory(*args, **kwargs))
        if not isinstance(recognizer, Recognizer):
            raise TypeError(f"factory must return a Recognizer, got {type(recognizer).__name__}")
        return cls(recognizer)

    @classmethod
    async def in_process(cls, factory: Any, /, *args: Any, **kwargs: Any) -> AsyncRecognizer:
        """Build the recogniser in a new worker process and decode there.

        ``await AsyncRecognizer.in_process(Recognizer.from_phrases, phrases, input_rate=8000)``.
        Errors of the factory (a bad phrase, an unknown word) are raised here as they are.
        """
        worker = await _WorkerProcess.start()
        try:
            await worker.call("__create__", factory, args, kwargs)
        except BaseException:
            await worker.aclose()
            raise
        return cls(None, _worker=worker)

    @property
    def pid(self) -> int | None:
        """The worker process id (``in_process``), else None."""
        return self._worker.proc.pid if self._worker is not None else None

    async def _run(self, method: str, *args: Any) -> Any:
        if self._worker is not None:
            return await self._worker.call(method, *args)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, getattr(self.recognizer, method), *args
        )

    async def start(self) -> None:
        await self._run("start")

    async def feed(self, pcm: bytes) -> Hypothesis | None:
        result: Hypothesis | None = await self._run("feed", pcm)
        return result

    async def finish(self) -> Hypothesis:
        result: Hypothesis = await self._run("finish")
        return result

    async def recognize(self, pcm: bytes) -> Hypothesis:
        result: Hypothesis = await self._run("recognize", pcm)
        return result

    def close(self) -> None:
        """Release the worker thread or process (pending work finishes first, in the background)."""
        if self._worker is not None:
            self._worker.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """Like :meth:`close`, and wait until a worker process has exited."""
        self.close()
        if self._worker is not None:
            await self._worker.aclose()
