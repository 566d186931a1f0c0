"""Names a package loads on first use (PEP 562), so importing one part of voxline does not import
the rest, nor the network packages the rest is built on."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: ``where`` maps each public name to
    the module that defines it under that name (relative to ``package`` when it starts with a dot),
    or, written ``"module:"``, to the module itself; a name is looked up once, then kept in
    ``namespace``."""

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, whole, _ = target.partition(":")
        module = importlib.import_module(module_name, package)
        value = module if whole else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
