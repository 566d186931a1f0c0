"""Text normalisation and JSGF grammar building shared by the recogniser and the responder.

Pure functions, no pocketsphinx import: the responder builds its phrase list here and the
recogniser turns it into a decoder search.

A *phrase* is plain text, optionally with ``{slot}`` placeholders (``"check order {order_id}"``).
A :class:`Slot` says which words may fill a placeholder and how many of them (a four-digit order
number is ``Slot.digits(4)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DIGIT_WORDS",
    "Slot",
    "build_jsgf",
    "normalise",
    "phrase_regex",
    "phrase_slots",
    "phrase_words",
    "slot_pattern",
    "slot_value",
]

# Spoken digits; "oh" is how people (and espeak-ng's listeners) say zero in numbers.
DIGIT_WORDS: Mapping[str, str] = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keep letters, digits and the apostrophe of "don't"/"i'm" (the dictionary has those words).
_NON_WORD = re.compile(r"[^a-z0-9' ]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, punctuation removed, digits spelled out, single spaces.

    ``"Order 42, please!"`` -> ``"order four two please"``. Transcripts and phrases are compared
    in this form.
    """
    lowered = text.lower().replace("-", " ")
    lowered = _NON_WORD.sub(" ", lowered)
    lowered = re.sub(r"\d", lambda m: f" {_DIGIT_NAMES[int(m.group(0))]} ", lowered)
    words = [w.strip("'") for w in _SPACES.split(lowered)]
    return " ".join(w for w in words if w)


@dataclass(frozen=True, slots=True)
class Slot:
    """Words that may fill a ``{placeholder}``: ``min_count``..``max_count`` of ``words``.

    ``digits`` slots turn the spoken words into a digit string (``"one two"`` -> ``"12"``).
    """

    words: tuple[str, ...]
    min_count: int = 1
    max_count: int = 1
    digits: bool = False

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError("Slot.words must not be empty")
        if not 1 <= self.min_count <= self.max_count:
            raise ValueError(
                "Slot counts must satisfy 1 <= min_count <= max_count, "
                f"got {self.min_count}..{self.max_count}"
            )

    @classmethod
    def digit_string(cls, min_count: int, max_count: int | None = None) -> Slot:
        """A run of spoken digits, e.g. ``Slot.digit_string(4)`` for a four-digit order number."""
        words = tuple(w for w in DIGIT_WORDS if w != "oh")  # "oh" is accepted when matching text
        return cls(words, min_count, max_count if max_count is not None else min_count, digits=True)

    @classmethod
    def choice(cls, words: Iterable[str]) -> Slot:
        """Exactly one of ``words`` (each may be several words, e.g. ``"new york"``)."""
        return cls(tuple(normalise(w) for w in words))


def phrase_slots(phrase: str) -> list[str]:
    """Placeholder names in a phrase, in order."""
    return _PLACEHOLDER.findall(phrase)


def phrase_words(phrase: str) -> list[str]:
    """The normalised words of a phrase, placeholders left out."""
    return normalise(_PLACEHOLDER.sub(" ", phrase)).split()


def phrase_regex(phrase: str, slots: Mapping[str, Slot]) -> re.Pattern[str]:
    """A regex matching the normalised text of the phrase; each slot is a named group."""
    parts: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(phrase):
        literal = normalise(phrase[pos : m.start()])
        if literal:
            parts.append(re.escape(literal))
        name = m.group(1)
        slot = slots.get(name)
        if slot is None:
            raise ValueError(f"phrase {phrase!r} uses slot {{{name}}} which is not defined")
        parts.append(slot_pattern(name, slot))
        pos = m.end()
    tail = normalise(phrase[pos:])
    if tail:
        parts.append(re.escape(tail))
    return re.compile("^" + " ".join(parts) + "$")


def slot_pattern(name: str, slot: Slot) -> str:
    """A regex group named ``name`` matching the slot's words in normalised text."""
    words = [*slot.words, "oh"] if slot.digits else list(slot.words)
    word = "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"
    return f"(?P<{name}>{word}(?: {word}){{{slot.min_count - 1},{slot.max_count - 1}}})"


def slot_value(slot: Slot, spoken: str) -> str:
    """The value of a filled slot: a digit string for digit slots, else the words."""
    if slot.digits:
        return "".join(DIGIT_WORDS[w] for w in spoken.split())
    return spoken


def _jsgf_words(text: str) -> str:
    return " ".join(normalise(text).split())


def build_jsgf(
    phrases: Sequence[str],
    slots: Mapping[str, Slot] | None = None,
    *,
    sequence: bool = False,
    name: str = "phrases",
) -> str:
    """A JSGF grammar accepting exactly one of ``phrases`` (or, with ``sequence``, one or more in a row).

    Phrases are normalised; ``{slot}`` placeholders become rules built from ``slots``. Raises
    ``ValueError`` naming the phrase when it is empty or uses an undefined slot.
    """
    slots = slots or {}
    if not phrases:
        raise ValueError("phrases must not be empty")
    alternatives: list[str] = []
    used: dict[str, Slot] = {}
    for phrase in phrases:
        parts: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(phrase):
            literal = _jsgf_words(phrase[pos : m.start()])
            if literal:
                parts.append(literal)
            slot_name = m.group(1)
            if slot_name not in slots:
                raise ValueError(f"phrase {phrase!r} uses slot {{{slot_name}}} which is not defined")
            used[slot_name] = slots[slot_name]
            parts.append(f"<slot_{slot_name}>")
            pos = m.end()
        tail = _jsgf_words(phrase[pos:])
        if tail:
            parts.append(tail)
        if not parts:
            raise ValueError(f"phrase {phrase!r} has no words")
        alternative = " ".join(parts)
        if alternative not in alternatives:
            alternatives.append(alternative)
    top = "( " + " | ".join(alternatives) + " )"
    lines = [
        "#JSGF V1.0;",
        f"grammar {name};",
        f"public <utterance> = {top}+;" if sequence else f"public <utterance> = {top};",
    ]
    for slot_name, slot in used.items():
        word = "( " + " | ".join(slot.words) + " )"
        required = " ".join([word] * slot.min_count)
        optional = " ".join([f"[ {word} ]"] * (slot.max_count - slot.min_count))
        lines.append(f"<slot_{slot_name}> = {(required + ' ' + optional).strip()};")
    return "\n".join(lines) + "\n"
