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
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from .grammar import (
    Slot,
    build_jsgf,
    normalise,
    phrase_regex,
    phrase_slots,
    phrase_words,
    slot_pattern,
    slot_value,
)

__all__ = [
    "FunctionCallSpec",
    "Intent",
    "ModuleResponder",
    "ReplyKind",
    "ReplySpec",
    "Responder",
    "RulesError",
    "RulesResponder",
    "Vocabulary",
    "load_responder",
]

log = logging.getLogger("voxline.local.responder")

ReplyKind = Literal["greeting", "reprompt", "intent", "fallback", "follow_up", "custom"]

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


@dataclass(frozen=True, slots=True)
class FunctionCallSpec:
    """A function call the agent makes: the server assigns the ``call_id``."""

    name: str
    arguments: Mapping[str, Any]

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """What the agent does next. ``text`` may be empty (say nothing, e.g. only call a function)."""

    text: str
    function_calls: tuple[FunctionCallSpec, ...] = ()
    kind: ReplyKind = "custom"
    intent: str | None = None

    @classmethod
    def coerce(cls, value: Any, source: str) -> ReplySpec:
        """A ReplySpec from a user function's result: a ReplySpec, a string, or a dict
        ``{"text": ..., "function_calls": [{"name": ..., "arguments": {...}}]}``."""
        if isinstance(value, ReplySpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            text = value.get("text", "")
            calls = value.get("function_calls", [])
            if not isinstance(text, str):
                raise TypeError(f"{source}: reply 'text' must be a string, got {type(text).__name__}")
            if not isinstance(calls, Sequence) or isinstance(calls, str):
                raise TypeError(f"{source}: reply 'function_calls' must be a list")
            specs: list[FunctionCallSpec] = []
            for call in calls:
                if isinstance(call, FunctionCallSpec):
                    specs.append(call)
                    continue
                if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                    raise TypeError(f"{source}: each function call needs a string 'name', got {call!r}")
                arguments = call.get("arguments", {})
                if isinstance(arguments, str):
                    arguments = json.loads(arguments)
                if not isinstance(arguments, Mapping):
                    raise TypeError(
                        f"{source}: function call 'arguments' must be an object, got {arguments!r}"
                    )
                specs.append(FunctionCallSpec(call["name"], dict(arguments)))
            intent = value.get("intent")
            return cls(text, tuple(specs), intent=intent if isinstance(intent, str) else None)
        raise TypeError(
            f"{source}: respond() must return a ReplySpec, a str or a dict, got {type(value).__name__}"
        )


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What callers are expected to say: the recogniser's phrase list (with slots)."""

    phrases: tuple[str, ...]
    slots: Mapping[str, Slot] = field(default_factory=dict)

    def jsgf(self, *, sequence: bool = False) -> str:
        return build_jsgf(self.phrases, self.slots, sequence=sequence)


@runtime_checkable
class Responder(Protocol):
    """The interface the offline backend drives."""

    @property
    def vocabulary(self) -> Vocabulary | None:
        """Phrases for the recogniser; ``None`` means free-form recognition."""
        ...

    async def respond(self, conversation: Sequence[Mapping[str, Any]]) -> ReplySpec: ...


# -- conversation items -------------------------------------------------------------------------------
def _message_text(item: Mapping[str, Any]) -> str:
    parts = item.get("content")
    texts: list[str] = []
    if isinstance(parts, Sequence) and not isinstance(parts, str):
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            for key in ("transcript", "text"):
                value = part.get(key)
                if isinstance(value, str) and value:
                    texts.append(value)
                    break
    return " ".join(texts)


def _item_type(item: Mapping[str, Any]) -> str:
    kind = item.get("type", "message")
    return kind if isinstance(kind, str) else ""


def last_user_text(conversation: Sequence[Mapping[str, Any]]) -> str | None:
    """The transcript/text of the last user message, or None if there is none."""
    for item in reversed(conversation):
        if _item_type(item) == "message" and item.get("role") == "user":
            return _message_text(item)
    return None


# -- templates ------------------------------------------------------------------------------------------
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?::(spaced))?\}")


def template_names(template: str) -> list[str]:
    return [m.group(1) for m in _TEMPLATE.finditer(template)]


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def render(template: str, context: Mapping[str, Any]) -> str:
    """``{name}``, ``{output.status}``; ``{name:spaced}`` separates characters ("1234" -> "1 2 3 4",
    so text-to-speech reads digits one by one). Missing values render as ``unknown``."""

    def sub(m: re.Match[str]) -> str:
        value = _lookup(context, m.group(1))
        if value is None:
            log.warning("template %r: no value for {%s}", template, m.group(1))
            return "unknown"
        text = value if isinstance(value, str) else json.dumps(value)
        return " ".join(text) if m.group(2) == "spaced" else text

    return _TEMPLATE.sub(sub, template)


def _render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole is not None and whole.group(2) is None:
            found = _lookup(context, whole.group(1))
            return found if found is not None else render(value, context)
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: _render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context) for v in value]
    return value


# -- rules ----------------------------------------------------------------------------------------------
class RulesError(ValueError):
    """A rules file that cannot be used: ``file`` and ``line`` (1-based, or None) say where."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    phrases: tuple[str, ...]
    keywords: frozenset[str] = frozenset()
    reply: str = ""
    function_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    follow_up: str | None = None
    line: int | None = None

    @property
    def required_slots(self) -> frozenset[str]:
        """Slots present in every phrase (the only ones replies may use)."""
        sets = [frozenset(phrase_slots(p)) for p in self.phrases]
        return frozenset.intersection(*sets) if sets else frozenset()


@dataclass(slots=True)
class _Doc:
    """A YAML document as plain values, with the line of every node by path."""

    value: Any
    lines: dict[tuple[str | int, ...], int]


def _yaml() -> Any:
    # Imported by name: PyYAML ships no type information, and it is an optional dependency.
    try:
        return importlib.import_module("yaml")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("rules files need PyYAML: pip install 'voxline[local]'") from exc


def _compose(text: str, source: str) -> _Doc:
    yaml = _yaml()
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        lines: dict[tuple[str | int, ...], int] = {}

        def walk(node: Any, path: tuple[str | int, ...]) -> Any:
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                result: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str):
                        raise RulesError(
                            source, key_node.start_mark.line + 1, f"keys must be strings, got {key!r}"
                        )
                    if key in result:
                        raise RulesError(source, key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    result[key] = walk(value_node, (*path, key))
                return result
            if isinstance(node, yaml.SequenceNode):
                return [walk(child, (*path, i)) for i, child in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        value = walk(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(source, line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(source, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return _Doc(value, lines)


class _Reader:
    """Typed access to the document that reports errors at the offending node's line."""

    def __init__(self, doc: _Doc, source: str) -> None:
        self.doc = doc
        self.source = source

    def line(self, path: tuple[str | int, ...]) -> int | None:
        while path and path not in self.doc.lines:
            path = path[:-1]
        return self.doc.lines.get(path)

    def error(self, path: tuple[str | int, ...], message: str) -> RulesError:
        where = ".".join(str(p) for p in path) or "document"
        return RulesError(self.source, self.line(path), f"{where}: {message}")

    def mapping(self, value: Any, path: tuple[str | int, ...], allowed: set[str] | None) -> Mapping[str, Any]:
        """A mapping; with ``allowed``, any other key is an error (it is probably a typo)."""
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if allowed is not None and key not in allowed:
                raise self.error((*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        return value

    def string(self, value: Any, path: tuple[str | int, ...], *, required: bool = False) -> str | None:
        if value is None:
            if required:
                raise self.error(path, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            hint = (
                " (quote text that starts with '{', YAML reads it as a mapping)"
                if isinstance(value, Mapping)
                else ""
            )
            raise self.error(path, f"expected a non-empty string, got {_kind(value)}{hint}")
        return value

    def strings(self, value: Any, path: tuple[str | int, ...], *, required: bool = False) -> list[str]:
        if value is None:
            if required:
                raise self.error(path, "is required (a list of strings)")
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (required and not value):
            raise self.error(path, f"expected a non-empty list of strings, got {_kind(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            text = self.string(item, (*path, i), required=True)
            assert text is not None
            out.append(text)
        return out

    def integer(self, value: Any, path: tuple[str | int, ...], default: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(path, f"expected a positive integer, got {value!r}")
        return int(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


_TOP_KEYS = {"agent", "greeting", "reprompt", "fallback", "min_score", "slots", "intents"}
_INTENT_KEYS = {"name", "phrases", "keywords", "reply", "function_call", "function_calls", "follow_up"}
_SLOT_KEYS = {"type", "count", "min", "max", "values"}


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
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(str(path), None, f"cannot read the rules file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise RulesError(str(path), None, f"not UTF-8 text: {exc}") from None
        return cls.from_text(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<rules>") -> RulesResponder:
        doc = _compose(text, source)
        r = _Reader(doc, source)
        top = r.mapping(doc.value, (), _TOP_KEYS)
        greeting = r.string(top.get("greeting"), ("greeting",), required=True)
        fallback = r.string(top.get("fallback"), ("fallback",), required=True)
        assert greeting is not None and fallback is not None
        reprompt = r.string(top.get("reprompt"), ("reprompt",))
        agent = r.string(top.get("agent"), ("agent",))
        min_score = top.get("min_score", 0.5)
        if isinstance(min_score, bool) or not isinstance(min_score, int | float) or not 0 < min_score <= 1:
            raise r.error(("min_score",), f"expected a number in (0, 1], got {min_score!r}")
        slots = cls._read_slots(r, top.get("slots"))
        raw_intents = top.get("intents")
        if not isinstance(raw_intents, list) or not raw_intents:
            raise r.error(("intents",), f"expected a non-empty list of intents, got {_kind(raw_intents)}")
        intents: list[Intent] = []
        names: set[str] = set()
        for i, raw in enumerate(raw_intents):
            intent = cls._read_intent(r, raw, ("intents", i), slots)
            if intent.name in names:
                raise r.error(("intents", i, "name"), f"duplicate intent name {intent.name!r}")
            names.add(intent.name)
            intents.append(intent)
        for key in ("greeting", "fallback", "reprompt"):
            value = top.get(key)
            if isinstance(value, str) and template_names(value):
                raise r.error((key,), f"{{...}} placeholders are not available here: {value!r}")
        return cls(
            greeting=greeting,
            fallback=fallback,
            intents=intents,
            slots=slots,
            reprompt=reprompt,
            min_score=float(min_score),
            agent=agent,
            source=source,
        )

    @staticmethod
    def _read_slots(r: _Reader, raw: Any) -> dict[str, Slot]:
        if raw is None:
            return {}
        slots_map = r.mapping(raw, ("slots",), None)
        slots: dict[str, Slot] = {}
        for name, spec in slots_map.items():
            path: tuple[str | int, ...] = ("slots", name)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise r.error(path, f"slot names are identifiers, got {name!r}")
            spec = r.mapping(spec, path, _SLOT_KEYS)
            kind = spec.get("type")
            if kind == "digits":
                count = spec.get("count")
                lo = r.integer(spec.get("min", count), (*path, "min" if "min" in spec else "count"), 1)
                hi = r.integer(spec.get("max", count), (*path, "max" if "max" in spec else "count"), lo)
                if hi < lo:
                    raise r.error(path, f"max ({hi}) is less than min ({lo})")
                if hi > 20:
                    raise r.error(path, f"at most 20 digits, got {hi}")
                slots[name] = Slot.digit_string(lo, hi)
            elif kind == "choice":
                values = r.strings(spec.get("values"), (*path, "values"), required=True)
                for j, value in enumerate(values):
                    if not normalise(value):
                        raise r.error((*path, "values", j), f"value {value!r} has no words")
                slots[name] = Slot.choice(values)
            else:
                raise r.error((*path, "type"), f"slot type must be 'digits' or 'choice', got {kind!r}")
        return slots

    @staticmethod
    def _read_intent(r: _Reader, raw: Any, path: tuple[str | int, ...], slots: Mapping[str, Slot]) -> Intent:
        spec = r.mapping(raw, path, _INTENT_KEYS)
        name = r.string(spec.get("name"), (*path, "name"), required=True)
        assert name is not None
        phrases = r.strings(spec.get("phrases"), (*path, "phrases"), required=True)
        for j, phrase in enumerate(phrases):
            ppath = (*path, "phrases", j)
            for slot in phrase_slots(phrase):
                if slot not in slots:
                    raise r.error(
                        ppath, f"phrase {phrase!r} uses slot {{{slot}}}, which is not defined under 'slots'"
                    )
            if not normalise(re.sub(r"\{[^}]*\}", " ", phrase)) and not phrase_slots(phrase):
                raise r.error(ppath, f"phrase {phrase!r} has no words")
        keywords = frozenset(
            w for k in r.strings(spec.get("keywords"), (*path, "keywords")) for w in normalise(k).split()
        )
        reply = r.string(spec.get("reply"), (*path, "reply")) or ""
        calls_raw: list[tuple[Any, tuple[str | int, ...]]] = []
        if "function_call" in spec and "function_calls" in spec:
            raise r.error((*path, "function_calls"), "use either function_call or function_calls, not both")
        if "function_call" in spec:
            calls_raw.append((spec["function_call"], (*path, "function_call")))
        elif "function_calls" in spec:
            raw_calls = spec["function_calls"]
            if not isinstance(raw_calls, list) or not raw_calls:
                raise r.error((*path, "function_calls"), f"expected a non-empty list, got {_kind(raw_calls)}")
            calls_raw.extend((c, (*path, "function_calls", k)) for k, c in enumerate(raw_calls))
        calls: list[tuple[str, Mapping[str, Any]]] = []
        for call, cpath in calls_raw:
            call = r.mapping(call, cpath, {"name", "arguments"})
            fname = r.string(call.get("name"), (*cpath, "name"), required=True)
            assert fname is not None
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fname):
                raise r.error(
                    (*cpath, "name"), f"function names are 1-64 of a-z, A-Z, 0-9, _ and -, got {fname!r}"
                )
            arguments = call.get("arguments", {})
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, Mapping):
                raise r.error((*cpath, "arguments"), f"expected a mapping, got {_kind(arguments)}")
            calls.append((fname, dict(arguments)))
        follow_up = r.string(spec.get("follow_up"), (*path, "follow_up"))
        if not reply and not calls:
            raise r.error(path, f"intent {name!r} needs a reply, a function_call, or both")
        if follow_up is not None and not calls:
            raise r.error(
                (*path, "follow_up"), "a follow_up is spoken after a function's output: add a function_call"
            )
        intent = Intent(
            name=name,
            phrases=tuple(phrases),
            keywords=keywords,
            reply=reply,
            function_calls=tuple(calls),
            follow_up=follow_up,
            line=r.line(path),
        )
        # Placeholders must have a value whichever phrase matched.
        available = intent.required_slots
        for template, tpath in [(reply, (*path, "reply"))] + [
            (v, (*cp, "arguments", k))
            for (_, args), (_, cp) in zip(calls, calls_raw, strict=True)
            for k, v in _flatten_strings(args)
        ]:
            for ref in template_names(template):
                if ref not in available:
                    raise r.error(
                        tpath,
                        f"{{{ref}}} is not a slot present in every phrase of intent {name!r}"
                        + (f" (available: {', '.join(sorted(available))})" if available else ""),
                    )
        if follow_up is not None:
            argument_names = {k for _, args in calls for k in args}
            for ref in template_names(follow_up):
                head = ref.split(".", 1)[0]
                if head != "output" and head not in available and head not in argument_names:
                    raise r.error(
                        (*path, "follow_up"),
                        f"{{{ref}}} is neither 'output', an 'output.<field>', a slot nor a function argument",
                    )
        return intent

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
            kind = _item_type(item)
            if kind == "message" and item.get("role") == "assistant":
                assistant_spoke = True
            if kind in ("function_call", "function_call_output") or (
                kind == "message" and item.get("role") in ("user", "assistant")
            ):
                last = item
        if last is None:
            return ReplySpec(self.greeting, kind="greeting")
        kind = _item_type(last)
        if kind == "function_call_output":
            return self._follow_up(conversation, last)
        if kind == "message" and last.get("role") == "user":
            return self.match(_message_text(last))
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
            FunctionCallSpec(name, _render_value(args, values)) for name, args in intent.function_calls
        )
        return ReplySpec(render(intent.reply, values), calls, kind="intent", intent=intent.name)

    def _follow_up(
        self, conversation: Sequence[Mapping[str, Any]], output_item: Mapping[str, Any]
    ) -> ReplySpec:
        call_id = output_item.get("call_id")
        call: Mapping[str, Any] | None = None
        for item in conversation:
            if _item_type(item) == "function_call" and item.get("call_id") == call_id:
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


def _flatten_strings(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(path, string) for every string inside a nested argument template."""
    if isinstance(value, str):
        return [(prefix, value)]
    if isinstance(value, Mapping):
        return [
            pair
            for k, v in value.items()
            for pair in _flatten_strings(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _flatten_strings(v, f"{prefix}.{i}")]
    return []


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
