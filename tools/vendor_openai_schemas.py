"""Vendor the OpenAI Realtime client-event schemas into voxline's package data.

Usage::

    python tools/vendor_openai_schemas.py path/to/openapi.json            # (re)write the vendored file
    python tools/vendor_openai_schemas.py path/to/openapi.json --check    # exit 1 if it is out of date

Reads OpenAI's official OpenAPI document (https://github.com/openai/openai-openapi, ``openapi.json``),
takes every ``components.schemas`` entry named ``RealtimeClientEvent*`` (and the SIP call-control
request bodies ``RealtimeCallReferRequest`` / ``RealtimeCallRejectRequest``) plus everything they reference,
transitively, and writes them verbatim to
``src/voxline/realtime_server/schemas/realtime_client_events.json`` under a header that records where
they came from. ``voxline.realtime_server.schema`` loads that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ORIGIN_REPOSITORY = "https://github.com/openai/openai-openapi"
DEFAULT_COMMIT = "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
ROOT_PREFIX = "RealtimeClientEvent"
# The REST bodies of OpenAI SIP call control (the fake of voxline.testing checks them).
EXTRA_ROOTS = ("RealtimeCallReferRequest", "RealtimeCallRejectRequest")
REF_PREFIX = "#/components/schemas/"
DOCUMENT_ID = "urn:voxline:openai:realtime-client-events"
DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "src/voxline/realtime_server/schemas/realtime_client_events.json"
)


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(REF_PREFIX):
                    raise ValueError(f"unsupported $ref {value!r} (only {REF_PREFIX}... is vendored)")
                found.add(value[len(REF_PREFIX) :])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def closure(schemas: dict[str, Any], roots: list[str]) -> list[str]:
    """Names of the roots and every schema they reference, transitively, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise ValueError(f"schema {name!r} is referenced but missing from the spec")
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo.extend(found - seen)
    return sorted(seen)


def build(spec_bytes: bytes, commit: str) -> dict[str, Any]:
    spec = json.loads(spec_bytes)
    schemas: dict[str, Any] = spec["components"]["schemas"]
    roots = sorted(name for name in schemas if name.startswith(ROOT_PREFIX) or name in EXTRA_ROOTS)
    if not roots:
        raise ValueError(f"the spec has no {ROOT_PREFIX}* schemas")
    names = closure(schemas, roots)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": DOCUMENT_ID,
        "x-vendored": {
            "origin_repository": ORIGIN_REPOSITORY,
            "commit": commit,
            "path": "openapi.json",
            "spec_sha256": hashlib.sha256(spec_bytes).hexdigest(),
            "spec_version": spec.get("info", {}).get("version"),
            "licence": "MIT",
            "generated_by": "tools/vendor_openai_schemas.py",
            "roots": roots,
            "note": (
                "components.schemas entries copied verbatim: the RealtimeClientEvent* schemas, the SIP "
                "call refer/reject request bodies and every schema they reference, transitively. "
                "Generated file; do not edit by hand."
            ),
        },
        "components": {"schemas": {name: schemas[name] for name in names}},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="path to OpenAI's openapi.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vendored file to write")
    parser.add_argument("--commit", default=DEFAULT_COMMIT, help="openai-openapi commit the spec comes from")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    args = parser.parse_args(argv)
    text = render(build(args.spec.read_bytes(), args.commit))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run {Path(__file__).name} {args.spec}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    count = len(json.loads(text)["components"]["schemas"])
    print(f"wrote {args.out} ({count} schemas)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
