"""The offline backend's "brain": what the agent says next, from rules or from your own Python.

A responder gets the conversation so far, as a list of items in the OpenAI Realtime item shape
(``{"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": ...}]}``,
``{"type": "function_call", ...}``, ``{"type": "function_call_output", "call_id", "output"}``) and
returns a :class:`ReplySpec`: the text to speak and the function calls to make.

- :class:`RulesResponder` reads a small YAML file (see ``examples/agent_rules.yaml`` and
  docs/local-backend.md): a greeting, a fallback, intents with example phrases, replies, function
  calls and a follow-up after the function's output. The same phrases become the speech
  recogniser's phrase list (:attr:`RulesResponder.vocabulary`). Errors name the file and line.
- :class:`ModuleResponder` wraps a Python file exposing ``respond(conversation)``.
- Anything with ``async respond(conversation) -> ReplySpec`` fits the :class:`Responder` protocol
  (a Chat Completions-backed responder, for instance).

One module per concept: the reply types and the conversation items (:mod:`.replies`), the rules
file (:mod:`.rules`: reading, checking, templates) and, here, the responders. Every name of the
first two is importable from here too.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .grammar import Slot, normalise, phrase_regex, phrase_slots, phrase_words, slot_pattern, slot_value

# The reply types (.replies) and the rules file (.rules) have their own modules; their names are
# importable from here as before.
from .replies import (
    FunctionCallSpec,
    ReplyKind,
    ReplySpec,
    Responder,
    Vocabulary,
    item_type,
    last_user_text,
    message_text,
)
from .rules import Intent, Rules, RulesError, parse_rules, read_rules, render, render_value, template_names

__all__ = [
    "FunctionCallSpec",
    "Intent",
    "ModuleResponder",
    "ReplyKind",
    "ReplySpec",
    "Responder",
    "Rules",
    "RulesError",
    "RulesResponder",
    "Vocabulary",
    "last_user_text",
    "load_responder",
    "parse_rules",
    "read_rules",
    "render",
    "template_names",
]

log = logging.getLogger("voxline.local.responder")

# Words that say nothing about what the caller wants; left out of keyword scoring.
STOPWORDS = frozenset(
    (
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "is",
        "are",
        "am",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "will",
        "shall",
        "should",
        "may",
        "might",
        "to",
        "of",
        "for",
        "in",
        "on",
        "at",
        "by",
        "with",
        "about",
        "from",
        "and",
        "or",
        "but",
        "so",
        "if",
        "then",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "please",
        "like",
        "want",
        "wanted",
        "need",
        "know",
        "tell",
        "let",
        "just",
        "some",
        "any",
        "have",
        "has",
        "had",
        "get",
        "i'd",
        "i'll",
        "i've",
        "it's",
        "that's",
        "we're",
        "you're",
        "what's",
        "where's",
        "when's",
    )
)


class RulesResponder:
    """A scripted agent loaded from a YAML rules file (see the module doc and docs/local-backend.md)."""

    def __init__(
        self,
        *,
        greeting: str,
        fallback: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot] | None = None,
        reprompt: str | None = None,
        min_score: float = 0.5,
        agent: str | None = None,
        source: str = "<rules>",
    ) -> None:
        self.agent = agent
        self.greeting = greeting
        self.fallback = fallback
        self.reprompt = reprompt or fallback
        self.intents = tuple(intents)
        self.slots = dict(slots or {})
        self.min_score = min_score
        self.source = source
        self._patterns = [
            [(p, phrase_regex(p, self.slots)) for p in intent.phrases] for intent in self.intents
        ]
        self._vocab: list[frozenset[str]] = []
        self._slot_words: list[frozenset[str]] = []
        for intent in self.intents:
            words = set(intent.keywords)
            filler: set[str] = set()
            for phrase in intent.phrases:
                words.update(w for w in phrase_words(phrase) if w not in STOPWORDS)
                for name in phrase_slots(phrase):
                    slot = self.slots[name]
                    filler.update(w for words_ in slot.words for w in words_.split())
                    if slot.digits:
                        filler.add("oh")
            self._vocab.append(frozenset(words))
            self._slot_words.append(frozenset(filler))

    # -- loading ----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> RulesResponder:
        return cls.from_rules(read_rules(path))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<rules>") -> RulesResponder:
        return cls.from_rules(parse_rules(text, source=source))

    @classmethod
    def from_rules(cls, rules: Rules) -> RulesResponder:
        return cls(
            greeting=rules.greeting,
            fallback=rules.fallback,
            intents=rules.intents,
            slots=rules.slots,
            reprompt=rules.reprompt,
            min_score=rules.min_score,
            agent=rules.agent,
            source=rules.source,
        )

    # -- what the recogniser should listen for -----------------------------------------------------
    @property
    def vocabulary(self) -> Vocabulary:
        phrases: list[str] = []
        for intent in self.intents:
            for phrase in intent.phrases:
                if phrase not in phrases:
                    phrases.append(phrase)
        return Vocabulary(tuple(phrases), dict(self.slots))

    # -- replying ------------------------------------------------------------------------------------
    async def respond(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec:
        return self.reply(conversation)

    def reply(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec:
        """The next reply for ``conversation`` (Realtime items, oldest first)."""
        last: Mapping[str, Any] | None = None
        assistant_spoke = False
        for item in conversation:
            kind = item_type(item)
            if kind == "message" and item.get("role") == "assistant":
                assistant_spoke = True
            if kind in ("function_call", "function_call_output") or (
                kind == "message" and item.get("role") in ("user", "assistant")
            ):
                last = item
        if last is None:
            return ReplySpec(self.greeting, kind="greeting")
        kind = item_type(last)
        if kind == "function_call_output":
            return self._follow_up(conversation, last)
        if kind == "message" and last.get("role") == "user":
            return self.match(message_text(last))
        return ReplySpec(
            self.reprompt if assistant_spoke else self.greeting,
            kind="reprompt" if assistant_spoke else "greeting",
        )

    def match(self, utterance: str) -> ReplySpec:
        """The reply to what the caller said (the fallback when nothing matches)."""
        text = normalise(utterance)
        if not text:
            return ReplySpec(self.fallback, kind="fallback")
        for intent, patterns in zip(self.intents, self._patterns, strict=True):
            for phrase, pattern in patterns:
                m = pattern.match(text)
                if m is not None:
                    values = {n: slot_value(self.slots[n], m.group(n)) for n in phrase_slots(phrase)}
                    return self._intent_reply(intent, values)
        best: tuple[float, int, int] | None = None  # (score, overlap, -index): earlier intents win ties
        best_intent: Intent | None = None
        best_values: dict[str, str] = {}
        words = set(text.split()) - STOPWORDS
        for index, intent in enumerate(self.intents):
            found = self._find_slots(intent, text)
            if found is None:
                continue
            considered = words - self._slot_words[index] if intent.required_slots else words
            if not considered:
                continue
            overlap = len(considered & self._vocab[index])
            score = overlap / len(considered)
            candidate = (score, overlap, -index)
            if score >= self.min_score and (best is None or candidate > best):
                best, best_intent, best_values = candidate, intent, found
        if best_intent is None:
            return ReplySpec(self.fallback, kind="fallback")
        return self._intent_reply(best_intent, best_values)

    def _find_slots(self, intent: Intent, text: str) -> dict[str, str] | None:
        """Slot values found anywhere in the text; None if a required slot has no value."""
        values: dict[str, str] = {}
        for name in intent.required_slots:
            m = re.search(rf"(?:^|(?<= )){slot_pattern(name, self.slots[name])}(?:$|(?= ))", text)
            if m is None:
                return None
            values[name] = slot_value(self.slots[name], m.group(name))
        return values

    def _intent_reply(self, intent: Intent, values: Mapping[str, str]) -> ReplySpec:
        calls = tuple(
            FunctionCallSpec(name, render_value(args, values)) for name, args in intent.function_calls
        )
        return ReplySpec(render(intent.reply, values), calls, kind="intent", intent=intent.name)

    def _follow_up(
        self, conversation: Sequence[Mapping[str, Any]], output_item: Mapping[str, Any]
    ) -> ReplySpec:
        call_id = output_item.get("call_id")
        call: Mapping[str, Any] | None = None
        for item in conversation:
            if item_type(item) == "function_call" and item.get("call_id") == call_id:
                call = item
        if call is None:
            log.warning("function_call_output %r has no matching function_call in the conversation", call_id)
            return ReplySpec("", kind="follow_up")
        name = call.get("name")
        intent = next((i for i in self.intents if any(n == name for n, _ in i.function_calls)), None)
        if intent is None or intent.follow_up is None:
            return ReplySpec("", kind="follow_up", intent=intent.name if intent else None)
        context: dict[str, Any] = {}
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        if isinstance(arguments, Mapping):
            context.update(arguments)
        output = output_item.get("output")
        if isinstance(output, str):
            try:
                context["output"] = json.loads(output)
            except ValueError:
                context["output"] = output
        else:
            context["output"] = output
        return ReplySpec(render(intent.follow_up, context), kind="follow_up", intent=intent.name)


class ModuleResponder:
    """A responder written in Python: a file exposing ``respond(conversation)``.

    ``respond`` may be a plain or an ``async`` function and returns a :class:`ReplySpec`, a string or
    a dict (see :meth:`ReplySpec.coerce`). Optional module attributes: ``PHRASES`` (list of strings)
    and ``SLOTS`` (name -> :class:`Slot`) for the recogniser.
    """

    def __init__(
        self,
        respond: Any,
        *,
        phrases: Sequence[str] = (),
        slots: Mapping[str, Slot] | None = None,
        source: str = "<module>",
    ) -> None:
        if not callable(respond):
            raise TypeError(f"{source}: respond must be callable, got {type(respond).__name__}")
        self._respond = respond
        self.source = source
        self._vocabulary = Vocabulary(tuple(phrases), dict(slots or {})) if phrases else None

    @classmethod
    def load(cls, path: str | Path) -> ModuleResponder:
        path = Path(path)
        spec = importlib.util.spec_from_file_location(f"voxline_responder_{abs(hash(str(path)))}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"{path}: cannot load as a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        respond = getattr(module, "respond", None)
        if respond is None:
            raise ValueError(f"{path}: the module defines no respond(conversation) function")
        phrases = getattr(module, "PHRASES", ())
        if isinstance(phrases, str) or not all(isinstance(p, str) for p in phrases):
            raise ValueError(f"{path}: PHRASES must be a list of strings")
        return cls(respond, phrases=list(phrases), slots=getattr(module, "SLOTS", None), source=str(path))

    @property
    def vocabulary(self) -> Vocabulary | None:
        return self._vocabulary

    async def respond(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec:
        result = self._respond(list(conversation))
        if inspect.isawaitable(result):
            result = await result
        return ReplySpec.coerce(result, self.source)


def load_responder(path: str | Path) -> RulesResponder | ModuleResponder:
    """A responder from a rules file (``.yaml``/``.yml``) or a Python file (``.py``)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return RulesResponder.load(path)
    if suffix == ".py":
        return ModuleResponder.load(path)
    raise ValueError(
        f"{path}: a responder is a .yaml/.yml rules file or a .py module, not {suffix or 'no suffix'!r}"
    )
