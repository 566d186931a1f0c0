"""Print every dependency of pyproject.toml pinned to its floor (``name==floor``), one per line.

Usage::

    python tools/min_requirements.py [--extras local,testing,dev] > constraints.txt

CI installs voxline with these as pip constraints and runs a test subset (``.ci/min-versions``), so a
floor in pyproject.toml is one that has been installed and run. A dependency without a ``>=`` floor
is an error: every floor must be stated to be tested.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*$")


def floors(extras: list[str] | None = None) -> dict[str, str]:
    """``{distribution name: floor}`` of the base dependencies and the named extras (all by default)."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    chosen = list(optional) if extras is None else extras
    unknown = set(chosen) - set(optional)
    if unknown:
        raise SystemExit(f"unknown extras: {', '.join(sorted(unknown))}")
    requirements = list(project.get("dependencies", []))
    for extra in chosen:
        requirements += optional[extra]
    result: dict[str, str] = {}
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} has no plain '>=' floor to test")
        name, floor = match.group(1).lower().replace("_", "-"), match.group(2)
        if result.get(name, floor) != floor:
            raise SystemExit(f"pyproject.toml: {name} has two floors ({result[name]} and {floor})")
        result[name] = floor
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", help="comma-separated extras (default: all)")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()] if args.extras else None
    for name, floor in sorted(floors(extras).items()):
        print(f"{name}=={floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
