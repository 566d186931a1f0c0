"""Fire-and-forget tasks that are neither lost to the garbage collector nor silent when they fail."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("voxline")

_running: set[asyncio.Task[Any]] = set()


def background(
    awaitable: Awaitable[Any],
    *,
    name: str,
    context: contextvars.Context | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    """Run ``awaitable`` in a task kept alive until done; an exception goes to ``on_error`` or the log."""

    async def run() -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            else:
                log.error("background task %s failed", name, exc_info=exc)

    task = asyncio.get_running_loop().create_task(run(), name=name, context=context)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
