"""The user agent core's modules import one way: config and dialog at the bottom, then the shared
context, then the UAS and the UAC (which know nothing of each other), then the core facade."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import voxline.sip

SIP = Path(voxline.sip.__file__).parent
CORE_PARTS = {"config", "dialog", "context", "uas", "uac", "core"}


def sip_imports(module: str) -> set[str]:
    """The ``voxline.sip`` modules ``module`` imports (relative imports of level 1)."""
    tree = ast.parse((SIP / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_sip_modules_have_no_import_cycle() -> None:
    modules = [p.stem for p in SIP.glob("*.py") if p.stem != "__init__"]
    graph = {m: sip_imports(m) for m in modules}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert set(order) >= CORE_PARTS


def test_each_part_of_the_core_imports_only_what_is_below_it() -> None:
    below = {
        "config": set(),
        "dialog": set(),
        "context": {"config", "dialog"},
        "uas": {"context", "dialog"},
        "uac": {"context", "dialog"},
        "core": {"config", "context", "dialog", "uas", "uac"},
    }
    for module, allowed in below.items():
        assert sip_imports(module) & CORE_PARTS <= allowed, module
    assert "endpoint" not in set().union(*(sip_imports(m) for m in CORE_PARTS))
