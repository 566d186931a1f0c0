"""voxline's pytest plugin (entry point ``pytest11``): test your own scenario over real sockets.

Fixtures (all function-scoped; their names start with ``voxline_`` so they never shadow a project's
own):

``voxline_realtime``
    A started :class:`~voxline.testing.FakeRealtimeServer`: script the model with
    ``voxline_realtime.script(ScriptedResponse(...))``.
``voxline_runtime``
    An async factory: ``rt = await voxline_runtime("agent.py", sip=True, http=True, **settings)``
    starts ``voxline run`` on loopback ports with the fake wired in and returns a
    :class:`~voxline.testing.harness.RunningRuntime`; shut down after the test.
``voxline_caller``
    The callers: ``await voxline_caller.twilio(rt, say="Hello")``, ``.sip(rt, wav="hello.wav")``,
    ``.voxengine(rt, audio=ulaw)``; each returns a :class:`~voxline.testing.harness.Heard`.
``voxline_conversation``
    An async factory: ``model = await voxline_conversation()`` is the
    :class:`~voxline.testing.harness.Conversation` of the fake's first session, with
    ``assert_received``, ``assert_tool_output``, ``assert_truncated``...

The async fixtures need ``pytest-asyncio`` (``pip install 'voxline[testing]'``); the plugin loads
nothing of voxline until a fixture is used, so it costs a project that does not use it nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .harness import Conversation, RunningRuntime
    from .realtime_server import FakeRealtimeServer

_asyncio_fixture: Any
try:
    from pytest_asyncio import fixture as _asyncio_fixture
except ImportError:  # the fixtures below say so when used
    _asyncio_fixture = None


def _async_fixture(function: Any) -> Any:
    if _asyncio_fixture is None:

        def missing() -> None:
            pytest.fail("voxline's fixtures need pytest-asyncio: pip install 'voxline[testing]'")

        missing.__name__ = function.__name__
        missing.__doc__ = function.__doc__
        return pytest.fixture(missing)
    return _asyncio_fixture(function)


class Callers:
    """``voxline_caller``: one method per transport (see :mod:`voxline.testing.harness`)."""

    async def twilio(self, rt: RunningRuntime, **options: Any) -> Any:
        from .harness import twilio_call

        return await twilio_call(rt, **options)

    async def sip(self, rt: RunningRuntime, **options: Any) -> Any:
        from .harness import sip_call

        return await sip_call(rt, **options)

    async def voxengine(self, rt: RunningRuntime, **options: Any) -> Any:
        from .harness import voxengine_call

        return await voxengine_call(rt, **options)


@_async_fixture
async def voxline_realtime() -> AsyncIterator[FakeRealtimeServer]:
    """A started fake OpenAI Realtime server on 127.0.0.1 (validates every client event)."""
    from .realtime_server import FakeRealtimeServer

    async with FakeRealtimeServer() as server:
        yield server
    server.assert_no_violations()


@_async_fixture
async def voxline_runtime(
    voxline_realtime: FakeRealtimeServer,
) -> AsyncIterator[Callable[..., Awaitable[RunningRuntime]]]:
    """``await voxline_runtime(scenario, sip=True, http=True, **settings)``: the runtime, started."""
    from contextlib import AsyncExitStack

    from .harness import running

    async with AsyncExitStack() as stack:

        async def start(scenario: str | Path, **options: Any) -> RunningRuntime:
            return await stack.enter_async_context(running(scenario, voxline_realtime, **options))

        yield start


@pytest.fixture
def voxline_caller() -> Callers:
    """Callers per transport: ``.twilio(rt, say=...)``, ``.sip(rt, ...)``, ``.voxengine(rt, ...)``."""
    return Callers()


@_async_fixture
async def voxline_conversation(
    voxline_realtime: FakeRealtimeServer,
) -> AsyncIterator[Callable[..., Awaitable[Conversation]]]:
    """``await voxline_conversation()``: what the model saw of the fake's first session."""
    from .harness import Conversation

    async def first(timeout: float = 10.0) -> Conversation:
        return await Conversation.of(voxline_realtime, timeout)

    yield first
