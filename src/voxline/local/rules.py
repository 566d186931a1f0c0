"""The rules file of :class:`~voxline.local.responder.RulesResponder`: reading, checking, templates.

A small YAML file (see ``examples/agent_rules.yaml`` and docs/local-backend.md): a greeting, a
fallback, intents with example phrases, replies, function calls and a follow-up after the function's
output, slots (digits, choices) the phrases and replies use. :func:`parse_rules` reads and checks it
into :class:`Rules`; every error is a :class:`RulesError` naming the file and line. Replies and
arguments are templates (``{name}``, ``{output.status}``, ``{name:spaced}``): :func:`render`.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grammar import Slot, normalise, phrase_slots

__all__ = [
    "Intent",
    "Rules",
    "RulesError",
    "parse_rules",
    "read_rules",
    "render",
    "render_value",
    "template_names",
]

log = logging.getLogger("voxline.local.responder")


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


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole is not None and whole.group(2) is None:
            found = _lookup(context, whole.group(1))
            return found if found is not None else render(value, context)
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
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


@dataclass(frozen=True, slots=True)
class Rules:
    """A rules file, read and checked."""

    greeting: str
    fallback: str
    intents: tuple[Intent, ...]
    slots: Mapping[str, Slot]
    reprompt: str | None
    min_score: float
    agent: str | None
    source: str


def read_rules(path: str | Path) -> Rules:
    """Read and check a rules file; :class:`RulesError` names the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(str(path), None, f"cannot read the rules file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RulesError(str(path), None, f"not UTF-8 text: {exc}") from None
    return parse_rules(text, source=str(path))


def parse_rules(text: str, *, source: str = "<rules>") -> Rules:
    """Read and check a rules file's text; :class:`RulesError` names ``source`` and the line."""
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
    slots = _read_slots(r, top.get("slots"))
    raw_intents = top.get("intents")
    if not isinstance(raw_intents, list) or not raw_intents:
        raise r.error(("intents",), f"expected a non-empty list of intents, got {_kind(raw_intents)}")
    intents: list[Intent] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_intents):
        intent = _read_intent(r, raw, ("intents", i), slots)
        if intent.name in names:
            raise r.error(("intents", i, "name"), f"duplicate intent name {intent.name!r}")
        names.add(intent.name)
        intents.append(intent)
    for key in ("greeting", "fallback", "reprompt"):
        value = top.get(key)
        if isinstance(value, str) and template_names(value):
            raise r.error((key,), f"{{...}} placeholders are not available here: {value!r}")
    return Rules(
        greeting=greeting,
        fallback=fallback,
        intents=tuple(intents),
        slots=slots,
        reprompt=reprompt,
        min_score=float(min_score),
        agent=agent,
        source=source,
    )


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
