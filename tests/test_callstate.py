"""``CallState`` lives at the bottom of the package: it imports nothing of voxline, and the runtime's
``CallState`` is the same object."""

from __future__ import annotations

import ast
from pathlib import Path

import voxline.callstate
import voxline.runtime.call
from voxline.callstate import CallState


def test_the_runtime_call_state_is_the_bottom_level_one() -> None:
    assert voxline.runtime.call.CallState is CallState
    assert [s.value for s in CallState] == ["alerting", "progressing", "connected", "ended"]


def test_callstate_imports_nothing_of_voxline() -> None:
    tree = ast.parse(Path(voxline.callstate.__file__).read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
    assert imported and all(not name.startswith((".", "voxline")) for name in imported), imported
