"""The error for a missing dependency of the ``voxline[testing]`` extra."""

from __future__ import annotations

# What the extra adds (jsonschema brings referencing); anything else missing is not ours to explain.
TESTING_EXTRA_MODULES = ("jsonschema", "referencing")


def missing_testing_extra(exc: ImportError) -> ImportError | None:
    """The ImportError naming the extra, when ``exc`` is about one of its modules; else None."""
    missing = (exc.name or "").partition(".")[0]
    if missing not in TESTING_EXTRA_MODULES:
        return None
    return ImportError(
        "voxline.testing needs the optional dependencies of the 'voxline[testing]' extra "
        f"(missing: {missing}); install them with: pip install 'voxline[testing]'",
        name=missing,
    )
