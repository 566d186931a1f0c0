"""MkDocs hook of voxline's site: the tables that must not drift from the code are generated here,
from the code, at build time.

- ``<!-- voxline:run-flags -->``: every option of ``voxline run`` (the argparse parser of voxline.cli);
- ``<!-- voxline:run-settings -->``: every setting of ``RuntimeConfig``: TOML key, ``VOXLINE_*``
  variable, default;
- ``<!-- voxline:events -->``: every event constant (the enums) with its value and provider type.

Links from a page to a file of the repository outside docs/ (``../deploy/...``) become links to that
file on GitHub, so they are checked as files exist (by tests/docs) without being site pages.
"""

from __future__ import annotations

import argparse
import dataclasses
import posixpath
import re
from pathlib import Path
from typing import Any

REPO_BLOB = "https://github.com/voxline/voxline/blob/main/"
ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def _cell(text: object) -> str:
    # Help texts are plain text: [x][y] must not read as a Markdown reference link.
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text.replace("[", "\\[").replace("]", "\\]")


def run_parser() -> argparse.ArgumentParser:
    from voxline.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]  # type: ignore[no-any-return]
    raise RuntimeError("voxline's parser has no run command")


def run_flags() -> list[tuple[str, str, str]]:
    """``(options, argument, help)`` of every visible option of ``voxline run``."""
    rows = []
    for action in run_parser()._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if action.nargs == 0:
            argument = ""
        elif action.choices:
            argument = "|".join(str(c) for c in action.choices)
        else:
            argument = action.metavar or action.dest.upper()
        rows.append((", ".join(action.option_strings), str(argument), action.help or ""))
    return rows


def flags_table() -> str:
    lines = ["| Option | Argument | What it does |", "| --- | --- | --- |"]
    for options, argument, text in run_flags():
        options_md = ", ".join(f"`{o}`" for o in options.split(", "))
        lines.append(f"| {options_md} | {f'`{argument}`' if argument else ''} | {_cell(text)} |")
    return "\n".join(lines)


def settings() -> list[tuple[str, str, str]]:
    """``(TOML key, environment variable, default)`` of every ``RuntimeConfig`` setting."""
    from voxline.runtime.server import RuntimeConfig

    rows = []
    for f in dataclasses.fields(RuntimeConfig):
        if f.name == "extra":
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        else:
            default = f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        rows.append((f.name, f"VOXLINE_{f.name.upper()}", "" if shown in (None, "") else str(shown)))
    return rows


def settings_table() -> str:
    lines = ["| TOML key (`[run]`) | Environment variable | Default |", "| --- | --- | --- |"]
    for key, env, default in settings():
        lines.append(f"| `{key}` | `{env}` | {f'`{_cell(default)}`' if default else '(none)'} |")
    return "\n".join(lines)


def events_table() -> str:
    from voxline.events import AppEvents, CallEvents
    from voxline.openai.events import (
        ADDITIONS,
        ALL_EVENT_ENUMS,
        CHAT_COMPLETIONS_TYPES,
        REALTIME_SERVER_TYPES,
        RESPONSES_SERVER_TYPES,
    )

    provider: dict[str, list[str]] = {}
    for table in (REALTIME_SERVER_TYPES, RESPONSES_SERVER_TYPES, CHAT_COMPLETIONS_TYPES):
        for wire, constant in table.items():
            provider.setdefault(str(constant), []).append(wire)
    out = []
    for enum in (AppEvents, CallEvents, *ALL_EVENT_ENUMS):
        prefix = "" if enum in (AppEvents, CallEvents) else "OpenAI."
        out += [f"### {prefix}{enum.__name__}", ""]
        out += [
            "| Reference constant | voxline (Python) | Value | Provider event type |",
            "| --- | --- | --- | --- |",
        ]
        for member in enum:
            python = f"`{prefix}{enum.__name__}.{member.name}`"
            # voxline's own constants: the OpenAI additions and the call's quality record.
            own = member in ADDITIONS or member is CallEvents.QualityRecord
            reference = "(voxline's own)" if own else python
            wires = ", ".join(f"`{w}`" for w in provider.get(str(member), []))
            out.append(f"| {reference} | {python} | `{member.value}` | {wires} |")
        out.append("")
    return "\n".join(out)


_MARKERS = {
    "<!-- voxline:run-flags -->": flags_table,
    "<!-- voxline:run-settings -->": settings_table,
    "<!-- voxline:events -->": events_table,
}


def _repository_links(markdown: str, src_uri: str) -> str:
    page_dir = posixpath.dirname(src_uri)

    def replace(match: re.Match[str]) -> str:
        target, _, anchor = match.group(1).partition("#")
        resolved = posixpath.normpath(posixpath.join("docs", page_dir, target))
        if resolved.startswith("docs/") or not target:
            return match.group(0)
        if not (ROOT / resolved).exists():
            raise ValueError(f"{src_uri}: the link {target} names no file of the repository ({resolved})")
        return f"]({REPO_BLOB}{resolved}{'#' + anchor if anchor else ''})"

    return _LINK.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, make in _MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return _repository_links(markdown, page.file.src_uri)
