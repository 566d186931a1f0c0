"""Shared test policy: tests that need an external peer skip locally and fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Path of an external program a test needs (sipp, baresip, espeak-ng, ...)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run .ci/run, which installs the test peers)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        message = f"Python package {name!r} is not installed (pip install -e '.[dev,local]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
