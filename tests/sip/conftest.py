"""An illegal dialog state change is a bug, but the core and the endpoint catch and log what a
message handler raises (one message lost, the endpoint goes on): a test of this directory fails
when such a ``DialogTransitionError`` was logged, whatever the test itself checks."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from voxline.sip.dialog import DialogTransitionError


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], DialogTransitionError):
            self.errors.append(f"{record.getMessage()}: {record.exc_info[1]}")


@pytest.fixture(autouse=True)
def no_illegal_dialog_transitions() -> Iterator[None]:
    handler = _Collect()
    logger = logging.getLogger("voxline")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert handler.errors == [], handler.errors
