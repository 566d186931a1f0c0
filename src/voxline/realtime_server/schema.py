"""Validation of Realtime client events against OpenAI's official schemas, with OpenAI-shaped answers.

The schemas are vendored package data (``schemas/realtime_client_events.json``, written by
``tools/vendor_openai_schemas.py`` from https://github.com/openai/openai-openapi). They are validated with
``jsonschema`` (Draft 2020-12); ``#/components/schemas/...`` references resolve through a ``referencing``
registry that holds the vendored document.

Adaptations are made in memory when loading, because the spec is OpenAPI, not plain JSON Schema:
``nullable: true`` and ``default: null`` mean the value may be ``null``, and ``oneOf`` is read as
``anyOf`` (several of the spec's unions overlap, e.g. ``response.conversation``). The spec declares no
``additionalProperties: false``, but OpenAI rejects unknown fields (``unknown_parameter``), so after a
schema passes, unknown keys of every object schema that lists ``properties`` are reported too.

Each problem comes back as a :class:`~voxline.realtime_server.validation.SchemaProblem` whose
``code``/``message``/``param`` are what OpenAI puts in its ``error`` event (``invalid_value``,
``missing_required_parameter``, ``invalid_type``, ``unknown_parameter``, ``integer_below_min_value`` ...).
:class:`ClientEventValidator` is the :class:`~voxline.realtime_server.validation.EventValidator` the
Realtime server uses by default.

Needs ``jsonschema`` (in the ``voxline[testing]`` and ``voxline[local]`` extras); moved here from
``voxline.testing.schema``, which re-exports it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

try:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "voxline.realtime_server.schema validates client events with jsonschema, which is not installed "
        f"(missing: {exc.name}); install it with: pip install 'voxline[testing]' "
        "(or 'voxline[local]' for the embedded offline backend)",
        name=exc.name,
    ) from exc

from .validation import SchemaProblem, format_param

__all__ = [
    "ACCEPTED_EVENT_TYPES",
    "DOCUMENT_ID",
    "ClientEventValidator",
    "SchemaProblem",
    "default_validator",
    "format_param",
    "load_vendored_document",
]

DOCUMENT_ID = "urn:voxline:openai:realtime-client-events"
_REF_PREFIX = "#/components/schemas/"

# What the live GA endpoint accepts over WebSocket, in the order its rejection message lists them.
# session.close and session.input_audio_buffer.append are listed live but undocumented (no schema):
# the fake answers them like unknown types, which a test sees as a violation.
ACCEPTED_EVENT_TYPES: tuple[str, ...] = (
    "session.update",
    "session.close",
    "input_audio_buffer.append",
    "session.input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)

_SCHEMA_BY_TYPE: dict[str, str] = {
    "session.update": "RealtimeClientEventSessionUpdate",
    "input_audio_buffer.append": "RealtimeClientEventInputAudioBufferAppend",
    "input_audio_buffer.commit": "RealtimeClientEventInputAudioBufferCommit",
    "input_audio_buffer.clear": "RealtimeClientEventInputAudioBufferClear",
    "conversation.item.create": "RealtimeClientEventConversationItemCreate",
    "conversation.item.truncate": "RealtimeClientEventConversationItemTruncate",
    "conversation.item.delete": "RealtimeClientEventConversationItemDelete",
    "conversation.item.retrieve": "RealtimeClientEventConversationItemRetrieve",
    "response.create": "RealtimeClientEventResponseCreate",
    "response.cancel": "RealtimeClientEventResponseCancel",
}


def _quote_list(values: Sequence[Any]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def load_vendored_document() -> dict[str, Any]:
    """The vendored schema document, read as package data (works from a wheel)."""
    text = (
        resources.files("voxline.realtime_server")
        .joinpath("schemas/realtime_client_events.json")
        .read_text("utf-8")
    )
    document: dict[str, Any] = json.loads(text)
    return document


def _adapt(node: Any) -> Any:
    """OpenAPI -> JSON Schema: absolute $refs, and ``nullable``/``default: null`` admit null."""
    if isinstance(node, list):
        return [_adapt(v) for v in node]
    if not isinstance(node, dict):
        return node
    # oneOf -> anyOf: the spec's unions overlap (``conversation`` is oneOf a string and an enum of strings,
    # so "auto" would match both and fail); OpenAPI tooling reads them as "one of these shapes".
    out = {("anyOf" if k == "oneOf" else k): _adapt(v) for k, v in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        out["$ref"] = DOCUMENT_ID + ref
    admits_null = out.pop("nullable", False) is True or ("default" in out and out["default"] is None)
    if admits_null:
        return {"anyOf": [out, {"type": "null"}]}
    return out


class ClientEventValidator:
    """Validates one decoded client event (a JSON value) and explains what is wrong, OpenAI-style."""

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        raw = dict(document) if document is not None else load_vendored_document()
        self.header: dict[str, Any] = dict(raw.get("x-vendored", {}))
        adapted = _adapt(raw)
        adapted["$id"] = DOCUMENT_ID
        self._schemas: dict[str, Any] = adapted["components"]["schemas"]
        resource = Resource.from_contents(adapted, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_ID, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    # -- public ----------------------------------------------------------------------------------------

    def schema_name(self, event_type: str) -> str | None:
        """The schema a client event type is validated against (None: not accepted over WebSocket)."""
        return _SCHEMA_BY_TYPE.get(event_type)

    def validate(self, event: Any) -> list[SchemaProblem]:
        """Every problem of ``event``; empty when OpenAI would accept it. The first one is the answer."""
        if not isinstance(event, dict):
            return [
                SchemaProblem("invalid_event", f"Expected an object, but got {_type_name(event)} instead.")
            ]
        if "type" not in event:
            return [SchemaProblem("invalid_event", "The 'type' field is missing.")]
        event_type = event["type"]
        name = _SCHEMA_BY_TYPE.get(event_type) if isinstance(event_type, str) else None
        if name is None:
            if not isinstance(event_type, str):
                return [
                    SchemaProblem(
                        "invalid_type",
                        "Invalid type for 'type': expected a string, "
                        f"but got {_type_name(event_type)} instead.",
                        "type",
                    )
                ]
            return [
                SchemaProblem(
                    "invalid_value",
                    f"Invalid value: '{event_type}'. "
                    f"Supported values are: {_quote_list(ACCEPTED_EVENT_TYPES)}.",
                    "type",
                )
            ]
        validator = self._validator(name)
        errors = sorted(validator.iter_errors(event), key=lambda e: list(e.absolute_path))
        if errors:
            return [self._explain(self._pick_leaf(e), e) for e in errors]
        unknown: list[SchemaProblem] = []
        self._unknown_parameters(event, {"$ref": f"{DOCUMENT_ID}{_REF_PREFIX}{name}"}, [], unknown)
        return unknown

    def validate_as(self, instance: Any, name: str) -> list[SchemaProblem]:
        """Every problem of ``instance`` against the vendored schema ``name`` (a REST body such as
        ``RealtimeSessionCreateRequestGA`` or ``RealtimeCallReferRequest``), ``param`` relative to it."""
        if name not in self._schemas:
            raise KeyError(f"no vendored schema {name!r}")
        validator = self._validator(name)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            return [self._explain(self._pick_leaf(e), e) for e in errors]
        unknown: list[SchemaProblem] = []
        self._unknown_parameters(instance, {"$ref": f"{DOCUMENT_ID}{_REF_PREFIX}{name}"}, [], unknown)
        return unknown

    # -- schema errors -> OpenAI errors -----------------------------------------------------------------

    def _validator(self, name: str) -> Draft202012Validator:
        validator = self._validators.get(name)
        if validator is None:
            schema = {"$ref": f"{DOCUMENT_ID}{_REF_PREFIX}{name}"}
            validator = Draft202012Validator(schema, registry=self._registry)
            self._validators[name] = validator
        return validator

    def _resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and len(schema) == 1:
            ref: str = schema["$ref"]
            if not ref.startswith(DOCUMENT_ID + _REF_PREFIX):
                break
            schema = self._schemas[ref[len(DOCUMENT_ID + _REF_PREFIX) :]]
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            merged = dict(schema)
            target = self._resolve({"$ref": merged.pop("$ref")})
            if isinstance(target, dict):
                return {**target, **merged}
        return schema

    def _discriminates(self, branch: Any, instance: Any) -> int:
        """How well a union branch fits by its const/enum-valued properties (-1: contradicted)."""
        branch = self._resolve(branch)
        if branch == {"type": "null"} and instance is not None:
            return -2  # a nullable object's null branch never explains a wrong object
        if not isinstance(branch, dict) or not isinstance(instance, dict):
            return 0
        for key in ("anyOf", "oneOf"):
            if key in branch and "properties" not in branch:
                return max((self._discriminates(b, instance) for b in branch[key]), default=0)
        score = 0
        for prop, sub in branch.get("properties", {}).items():
            sub = self._resolve(sub)
            if prop not in instance or not isinstance(sub, dict):
                continue
            allowed = sub.get("enum", [sub["const"]] if "const" in sub else None)
            if allowed is None or len(allowed) > 3:
                continue
            if instance[prop] in allowed:
                score += 1
            else:
                return -1
        return score

    def _pick_leaf(self, error: ValidationError) -> ValidationError:
        """Descend through anyOf/oneOf to the error of the branch the instance was meant to match."""
        while error.validator in ("anyOf", "oneOf") and error.context:
            branches: list[Any] = list(error.validator_value)
            by_branch: dict[int, list[ValidationError]] = {}
            for sub in error.context:
                by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
            scores = {i: self._discriminates(branches[i], error.instance) for i in by_branch}
            best = max(scores.values())
            candidates = [i for i in by_branch if scores[i] == best]
            # Among equally fitting branches, the one whose errors lie deepest says most.
            chosen = max(candidates, key=lambda i: (max(len(e.absolute_path) for e in by_branch[i]), -i))
            error = min(by_branch[chosen], key=lambda e: (-len(e.absolute_path), len(e.schema_path)))
        return error

    @staticmethod
    def _allowed_values(top: ValidationError, path: list[str | int]) -> list[Any]:
        """Every enum/const value any union branch allows at ``path`` (for a complete "Supported values")."""
        allowed: list[Any] = []
        queue = deque([top])
        while queue:
            error = queue.popleft()
            queue.extend(error.context or [])
            if error.validator in ("enum", "const") and list(error.absolute_path) == path:
                values = error.validator_value if error.validator == "enum" else [error.validator_value]
                allowed.extend(v for v in values if v not in allowed)
        return allowed

    def _explain(self, error: ValidationError, top: ValidationError) -> SchemaProblem:
        path = list(error.absolute_path)
        param = format_param(path) or None
        where = param or "event"
        value = error.instance
        kind = error.validator
        if kind == "required":
            missing = next((r for r in error.validator_value if r not in (value or {})), "")
            full = format_param([*path, missing])
            return SchemaProblem("missing_required_parameter", f"Missing required parameter: '{full}'.", full)
        if kind == "additionalProperties" and isinstance(value, dict):
            # additionalProperties: false (the SIP call-control bodies): OpenAI's unknown_parameter.
            props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            extra = next((k for k in value if k not in props), "")
            full = format_param([*path, extra])
            return SchemaProblem("unknown_parameter", f"Unknown parameter: '{full}'.", full)
        if kind in ("enum", "const"):
            allowed = self._allowed_values(top, path)
            if (
                len(allowed) == 1
                and isinstance(allowed[0], int)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                # A single allowed integer (audio/pcm rate 24000) is reported as a range, like live.
                return self._range_problem(param, where, value, allowed[0], value < allowed[0], integer=True)
            return SchemaProblem(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {_quote_list(allowed)}.",
                param,
            )
        if kind == "type":
            expected = error.validator_value
            names = [expected] if isinstance(expected, str) else list(expected)
            wanted = " or ".join(_EXPECTED.get(n, n) for n in names)
            return SchemaProblem(
                "invalid_type",
                f"Invalid type for '{where}': expected {wanted}, but got {_type_name(value)} instead.",
                param,
            )
        if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            integer = isinstance(value, int)
            return self._range_problem(param, where, value, error.validator_value, "inimum" in kind, integer)
        if kind == "maxLength":
            return SchemaProblem(
                "string_above_max_length",
                f"Invalid '{where}': string too long. Expected a string with maximum length "
                f"{error.validator_value}, but got a string with length {len(value)} instead.",
                param,
            )
        if kind == "minItems":
            return SchemaProblem(
                "array_below_min_length",
                f"Invalid '{where}': array too short. Expected an array with minimum length "
                f"{error.validator_value}, but got an array with length {len(value)} instead.",
                param,
            )
        if kind == "pattern":
            return SchemaProblem(
                "invalid_value",
                f"Invalid '{where}': string does not match pattern. "
                f"Expected a string that matches the pattern '{error.validator_value}'.",
                param,
            )
        return SchemaProblem("invalid_value", f"Invalid '{where}': {error.message}", param)

    @staticmethod
    def _range_problem(
        param: str | None, where: str, value: Any, bound: Any, below: bool, integer: bool
    ) -> SchemaProblem:
        noun = "integer" if integer else "decimal"
        if below:
            return SchemaProblem(
                f"{noun}_below_min_value",
                f"Invalid '{where}': {noun} below minimum value. Expected a value >= {bound}, "
                f"but got {value} instead.",
                param,
            )
        return SchemaProblem(
            f"{noun}_above_max_value",
            f"Invalid '{where}': {noun} above maximum value. "
            f"Expected a value <= {bound}, but got {value} instead.",
            param,
        )

    # -- unknown parameters ------------------------------------------------------------------------------

    def _is_valid(self, instance: Any, schema: Any) -> bool:
        return bool(Draft202012Validator(schema, registry=self._registry).is_valid(instance))

    def _unknown_parameters(
        self, instance: Any, schema: Any, path: list[str | int], out: list[SchemaProblem]
    ) -> None:
        schema = self._resolve(schema)
        if not isinstance(schema, dict):
            return
        for key in ("anyOf", "oneOf"):
            if key in schema:
                for branch in schema[key]:
                    if self._is_valid(instance, branch):
                        self._unknown_parameters(instance, branch, path, out)
                        break
        for branch in schema.get("allOf", []):
            self._unknown_parameters(instance, branch, path, out)
        if isinstance(instance, dict) and "properties" in schema:
            props: dict[str, Any] = schema["properties"]
            extra = schema.get("additionalProperties")
            for key, value in instance.items():
                if key in props:
                    self._unknown_parameters(value, props[key], [*path, key], out)
                elif isinstance(extra, dict):
                    self._unknown_parameters(value, extra, [*path, key], out)
                elif extra is None and "patternProperties" not in schema:
                    param = format_param([*path, key])
                    out.append(SchemaProblem("unknown_parameter", f"Unknown parameter: '{param}'.", param))
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for index, value in enumerate(instance):
                self._unknown_parameters(value, schema["items"], [*path, index], out)


@cache
def default_validator() -> ClientEventValidator:
    """One shared validator over the vendored schemas (loading them takes a few milliseconds)."""
    return ClientEventValidator()
