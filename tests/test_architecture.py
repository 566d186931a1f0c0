"""Architecture rules that import-linter does not check (docs/architecture.md).

- No module reaches into another object's private name: ``x._name`` where ``x`` is not ``self``,
  ``cls`` or ``super()`` and ``_name`` is defined nowhere in the same module, nor imports one from
  another voxline module (``from .m import _name``). What crosses a module boundary is public; a
  private name is the business of the module that defines it.
- Every top-level part of ``voxline`` has its place in the layers contract (pyproject.toml), and the
  diagram of docs/architecture.md is that contract.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "voxline"

# namedtuple's public API is spelled with an underscore.
PUBLIC_UNDERSCORED = frozenset({"_asdict", "_field_defaults", "_fields", "_make", "_replace"})

# Private access across modules that is still there, as (file under src/voxline, attribute) pairs. The
# files are being reworked by issue 14's other parts (one media path, one pacer; the carrier endpoint
# split): each entry goes when its file stops doing it, and the test fails on an entry that no longer
# occurs, so this list only shrinks. Do not add to it: make the name public instead.
KNOWN: frozenset[tuple[str, str]] = frozenset()


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_names(tree: ast.AST) -> set[str]:
    """Every name the module defines: functions, classes, assignment targets, imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.partition(".")[0])
    return names


def is_own(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def private_access(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, expression, name) for each access to a private name the module does not define, and each
    private name it imports from another voxline module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    own = defined_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("voxline")):
            for alias in node.names:
                if is_private(alias.name):
                    yield (
                        node.lineno,
                        f"from {'.' * node.level}{node.module or ''} import {alias.name}",
                        alias.name,
                    )
        elif (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and node.attr not in PUBLIC_UNDERSCORED
            and node.attr not in own
            and not is_own(node.value)
        ):
            yield node.lineno, ast.unparse(node), node.attr


def all_private_access() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        for line, expression, attribute in private_access(path):
            found.setdefault((relative, attribute), []).append(f"{relative}:{line}: {expression}")
    return found


def test_the_scan_finds_private_access_and_leaves_own_names_alone(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os as _os\n"
        "class A:\n"
        "    _ours = 1\n"
        "    def f(self, other, point):\n"
        "        self._x = other._x\n"  # _x is assigned in this module: its own name
        "        super()._y()\n"
        "        cls = type(self)\n"
        "        cls._z, other.__dict__, point._replace(), A._ours, _os.sep\n"
        "        return other._theirs, other.b._deep\n"
        "from .sibling import _helper, public\n"
        "from voxline.x import _y\n"
        "from os import _exit\n",
        encoding="utf-8",
    )
    assert sorted((line, expr) for line, expr, _ in private_access(module)) == [
        (9, "other._theirs"),
        (9, "other.b._deep"),
        (10, "from .sibling import _helper"),
        (11, "from voxline.x import _y"),
    ]


def test_no_module_reaches_into_another_objects_private_names() -> None:
    found = all_private_access()
    new = sorted(line for key in set(found) - KNOWN for line in found[key])
    assert not new, "private names used across modules (make them public):\n" + "\n".join(new)


def test_the_known_private_access_list_is_still_accurate() -> None:
    gone = sorted(KNOWN - set(all_private_access()))
    assert not gone, f"no longer occurs, remove from KNOWN: {gone}"


# -- the layers ---------------------------------------------------------------------------------------


def contracts() -> list[dict[str, Any]]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(pyproject["tool"]["importlinter"]["contracts"])


def layers_contract() -> list[str]:
    [layers] = [c["layers"] for c in contracts() if c["type"] == "layers"]
    return [str(layer) for layer in layers]


def test_every_top_level_part_of_voxline_has_a_layer() -> None:
    placed = {name.strip() for layer in layers_contract() for name in re.split(r"[|:]", layer)}
    parts = {
        f"voxline.{path.stem if path.is_file() else path.name}"
        for path in SRC.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").is_file()) and path.name != "__init__.py"
    }
    # The public face (loads everything lazily) and ``python -m voxline`` (the CLI) sit above them all.
    parts -= {"voxline.__main__"}
    assert parts - placed == set(), f"place these in the layers contract (pyproject.toml): {parts - placed}"
    assert placed - parts == set(), placed - parts


def documented_layers() -> list[str]:
    """The layers drawn in docs/architecture.md: the first ``text`` block under "## The layers"."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("\n## The layers\n", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    return [line.partition(" #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_architecture_page_draws_the_layers_contract() -> None:
    def normal(layer: str) -> str:
        return " ".join(layer.split())

    assert [normal(layer) for layer in documented_layers()] == [normal(layer) for layer in layers_contract()]
