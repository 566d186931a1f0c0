"""Speech recognition with pocketsphinx on espeak-ng speech: phone line (8 kHz mu-law) and 24 kHz."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from voxline.audio import PCM16_16K, PCM16_24K, PCMU_8K
from voxline.audio.g711 import ulaw_decode
from voxline.local.asr import AsyncRecognizer, Hypothesis, RecognitionMode, Recognizer
from voxline.local.grammar import Slot

pytestmark = pytest.mark.usefixtures("pocketsphinx")

SENTENCES = [
    "hello",
    "what are your opening hours",
    "check my order one two three four",
    "thank you goodbye",
]
PHRASES = [
    "hello",
    "good morning",
    "what are your opening hours",
    "when are you open",
    "check my order {order_id}",
    "where is my order",
    "thank you goodbye",
    "goodbye",
]
SLOTS = {"order_id": Slot.digit_string(4)}

Speech = Callable[..., bytes]


def phone_line(speech: Speech, text: str) -> bytes:
    """espeak-ng speech as a phone call carries it: 8 kHz mu-law, decoded back to PCM16."""
    return ulaw_decode(speech(text, PCMU_8K))


@pytest.fixture(scope="module")
def phone_recognizer() -> Recognizer:
    return Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=8000)


@pytest.fixture(scope="module")
def wideband_recognizer() -> Recognizer:
    return Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=24000)


@pytest.mark.parametrize("text", SENTENCES)
def test_phrase_list_exact_through_mulaw_phone_line(
    speech: Speech, phone_recognizer: Recognizer, text: str
) -> None:
    hyp = phone_recognizer.recognize(phone_line(speech, text))
    assert hyp.final
    assert hyp.text == text


@pytest.mark.parametrize("text", SENTENCES)
def test_phrase_list_exact_at_24khz(speech: Speech, wideband_recognizer: Recognizer, text: str) -> None:
    assert wideband_recognizer.recognize(speech(text, PCM16_24K)).text == text


def test_four_sentences_in_one_stream_with_a_sequence_grammar(speech: Speech) -> None:
    paragraph = ". ".join(SENTENCES) + "."
    expected = " ".join(SENTENCES)
    phone = Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=8000, sequence=True)
    assert phone.recognize(phone_line(speech, paragraph)).text == expected
    wide = Recognizer.from_phrases(PHRASES, slots=SLOTS, input_rate=24000, sequence=True)
    assert wide.recognize(speech(paragraph, PCM16_24K)).text == expected


def test_matched_phrase_and_digit_slot(speech: Speech, phone_recognizer: Recognizer) -> None:
    hyp = phone_recognizer.recognize(phone_line(speech, "check my order four two one nine"))
    assert hyp.text == "check my order four two one nine"
    assert hyp.phrase == "check my order {order_id}"
    assert hyp.slots == {"order_id": "4219"}
    plain = phone_recognizer.recognize(phone_line(speech, "where is my order"))
    assert (plain.phrase, plain.slots) == ("where is my order", {})


def test_jsgf_grammar_mode(speech: Speech) -> None:
    jsgf = """#JSGF V1.0;
grammar callback;
public <request> = please call me back ( today | tomorrow ) ( morning | evening );
"""
    rec = Recognizer.from_grammar(jsgf, input_rate=16000)
    assert rec.mode is RecognitionMode.GRAMMAR
    hyp = rec.recognize(speech("please call me back tomorrow morning", PCM16_16K))
    assert hyp.text == "please call me back tomorrow morning"
    assert hyp.phrase is None


def test_streaming_gives_partials_then_the_final(speech: Speech, wideband_recognizer: Recognizer) -> None:
    audio = speech("what are your opening hours", PCM16_24K)
    frame = 24000 * 2 * 20 // 1000
    wideband_recognizer.start()
    partials: list[Hypothesis] = []
    for i in range(0, len(audio), frame):
        hyp = wideband_recognizer.feed(audio[i : i + frame])
        if hyp is not None:
            partials.append(hyp)
    final = wideband_recognizer.finish()
    assert partials, "no partial hypothesis during a 1.7 s utterance"
    assert all(not p.final for p in partials)
    assert [p.audio_ms for p in partials] == sorted(p.audio_ms for p in partials)
    assert len({p.text for p in partials}) == len(partials)  # only changes are reported
    assert "what" in partials[-1].text
    assert final.final and final.text == "what are your opening hours"
    assert final.audio_ms == pytest.approx(len(audio) / 48)
    assert not wideband_recognizer.active


def test_recognizer_is_reusable_across_utterances(speech: Speech, phone_recognizer: Recognizer) -> None:
    results = [
        phone_recognizer.recognize(phone_line(speech, t)).text for t in ["goodbye", "hello", "goodbye"]
    ]
    assert results == ["goodbye", "hello", "goodbye"]


def test_finish_without_audio_is_empty(phone_recognizer: Recognizer) -> None:
    assert phone_recognizer.finish() == Hypothesis("", final=True, audio_ms=0.0)


def test_free_form_mode_hears_words(speech: Speech) -> None:
    # The language model is approximate on synthetic speech (see docs/local-backend.md): assert
    # that real words come out, not an exact transcript.
    rec = Recognizer.free_form(input_rate=24000)
    assert rec.mode is RecognitionMode.FREE_FORM
    hyp = rec.recognize(speech("what are your opening hours", PCM16_24K))
    assert {"what", "are", "your", "opening"} <= set(hyp.text.split())


def test_unknown_word_is_named() -> None:
    with pytest.raises(ValueError, match="voxlinezz"):
        Recognizer.from_phrases(["hello voxlinezz"])
    # Phrases are normalised, grammars are taken as written: the dictionary is lower case.
    assert Recognizer.from_phrases(["Hello World!"]).grammar is not None
    with pytest.raises(ValueError, match=r"Hello, World .*lower case"):
        Recognizer.from_grammar("#JSGF V1.0;\ngrammar g;\npublic <a> = Hello World;\n")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="input_rate"):
        Recognizer.from_phrases(["hello"], input_rate=11025)
    with pytest.raises(ValueError, match="slot"):
        Recognizer.from_phrases(["check {nothing}"])
    with pytest.raises(ValueError, match="JSGF"):
        Recognizer.from_grammar("this is not jsgf")
    rec = Recognizer.from_phrases(["hello"])
    with pytest.raises(ValueError, match="even"):
        rec.feed(b"\x00")


async def test_async_recognizer_decodes_off_the_loop(speech: Speech) -> None:
    rec = await AsyncRecognizer.create(Recognizer.from_phrases, PHRASES, slots=SLOTS, input_rate=8000)
    audio = phone_line(speech, "when are you open")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        hyp = await rec.recognize(audio)
        await rec.start()
        await rec.feed(audio[: len(audio) // 2])
        await rec.feed(audio[len(audio) // 2 :])
        streamed = await rec.finish()
    finally:
        done.set()
        await task
        rec.close()
    assert hyp.text == "when are you open" == streamed.text
    assert ticks > 0  # the loop kept running while the worker thread decoded


async def test_async_create_rejects_a_non_recognizer() -> None:
    with pytest.raises(TypeError, match="Recognizer"):
        await AsyncRecognizer.create(lambda: "nope")


async def test_async_recognizer_in_a_worker_process(speech: Speech) -> None:
    rec = await AsyncRecognizer.in_process(Recognizer.from_phrases, PHRASES, slots=SLOTS, input_rate=8000)
    try:
        assert rec.pid is not None and rec.pid != os.getpid()
        audio = phone_line(speech, "check my order four two one nine")
        hyp = await rec.recognize(audio)
        assert (hyp.text, hyp.phrase, hyp.slots) == (
            "check my order four two one nine",
            "check my order {order_id}",
            {"order_id": "4219"},
        )
        await rec.start()
        for i in range(0, len(audio), 3200):  # 200 ms batches
            await rec.feed(audio[i : i + 3200])
        assert (await rec.finish()).text == "check my order four two one nine"
        # A caller that gives up mid-call does not leave the next call a stale reply.
        cancelled = asyncio.create_task(rec.recognize(phone_line(speech, "goodbye")))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (await rec.recognize(phone_line(speech, "when are you open"))).text == "when are you open"
    finally:
        await rec.aclose()
    assert rec._worker is not None and rec._worker.proc.returncode == 0
    with pytest.raises(RuntimeError, match="closed"):
        await rec.recognize(b"")


async def test_worker_process_raises_the_factory_error() -> None:
    with pytest.raises(ValueError, match="voxlinezz"):
        await AsyncRecognizer.in_process(Recognizer.from_phrases, ["hello voxlinezz"])
