"""Header and idle timeouts on the HTTP listener (issue 13.13), over loopback: connections whose
request headers never end, and idle keep-alive connections, are closed and counted; a WebSocket
and a request in its handler are never timed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from voxline.carriers.http_guard import GuardedSite, HttpGuard, HttpListener, start_http_site
from voxline.testing.carrier_callers import TwilioTestCaller

from .conftest import ServerFactory
from .test_endpoint_guards import assert_no_tracebacks
from .test_twilio_endpoint import prompt

PARTIAL = b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\n"  # no blank line: the headers go on


async def read_to_eof(reader: asyncio.StreamReader, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(": ") for h in lines[1:]) if k.lower() == "content-length"
    )
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def test_connections_whose_headers_never_end_get_408_and_are_closed(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's repro: 30 connections sending headers that never end were all still open after
    24 s. Now each is closed at the header timeout however it trickles; one that sends nothing is
    closed too, without a response."""
    caplog.set_level(logging.INFO, logger="voxline.carriers.http")
    guard = HttpGuard(header_timeout_s=0.5, idle_timeout_s=5.0)
    server = await make_server(guard=guard)
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(35)]
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(PARTIAL)
        try:
            for i in range(100):  # a header line every 50 ms does not push the deadline back
                await asyncio.sleep(0.05)
                writer.write(b"X-Slow-%d: 1\r\n" % i)
        except ConnectionError:
            pass

    trickles = [asyncio.create_task(trickle(w)) for _, w in connections[:30]]
    healthy = asyncio.create_task(run_call(server.ws_url("/twilio"), 1500))  # outlives the timeout
    answers = [await read_to_eof(r, 3.0) for r, _ in connections]
    elapsed = loop.time() - started
    for task in trickles:
        task.cancel()
    for _, writer in connections:
        writer.close()
    assert all(a.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for a in answers[:30])
    assert answers[30:] == [b""] * 5
    assert 0.5 <= elapsed < 2.0
    assert guard.stats["header_timeouts"] == 35
    await healthy
    logged = [r for r in caplog.records if "header_timeouts" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO
    assert_no_tracebacks(caplog)


async def run_call(url: str, ms: int) -> None:
    audio = prompt(ms, seed=7)
    caller = TwilioTestCaller(url, audio, done_when=lambda c: len(c.received) == len(audio))
    await caller.run()
    assert caller.errors == [] and bytes(caller.received) == audio and caller.close_code == 1000


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    make_server: ServerFactory,
) -> None:
    guard = HttpGuard(header_timeout_s=5.0, idle_timeout_s=0.4)
    server = await make_server(guard=guard, stream_url="wss://h/twilio")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    loop = asyncio.get_running_loop()
    try:
        for _ in range(3):  # requests 0.25 s apart keep the connection: each resets the idle timer
            writer.write(b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _ = await read_response(reader)
            assert status == 200
            answered = loop.time()
            await asyncio.sleep(0.25)
        assert await read_to_eof(reader, 2.0) == b""
        assert 0.35 <= loop.time() - answered < 1.5
    finally:
        writer.close()
    assert guard.stats["idle_timeouts"] == 1 and guard.stats["header_timeouts"] == 0
    assert server.endpoints.stats["webhooks"] == 3


async def test_the_header_timer_runs_from_the_first_byte_of_the_next_request(
    make_server: ServerFactory,
) -> None:
    guard = HttpGuard(header_timeout_s=0.3, idle_timeout_s=5.0)
    server = await make_server(guard=guard, stream_url="wss://h/twilio")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        await asyncio.sleep(0.5)  # idle longer than the header timeout: fine, it is not a request
        writer.write(PARTIAL)
        assert (await read_to_eof(reader, 2.0)).startswith(b"HTTP/1.1 408")
    finally:
        writer.close()
    assert (guard.stats["header_timeouts"], guard.stats["idle_timeouts"]) == (1, 0)


async def test_websockets_and_requests_in_their_handler_are_not_timed(make_server: ServerFactory) -> None:
    guard = HttpGuard(header_timeout_s=0.2, idle_timeout_s=0.2)
    server = await make_server(guard=guard)
    await run_call(server.ws_url("/twilio"), 1200)  # six times both timeouts
    assert guard.stats["header_timeouts"] == guard.stats["idle_timeouts"] == 0


@pytest.fixture
async def slow_app() -> AsyncIterator[HttpListener]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/slow", slow)
    listener = await start_http_site(app, "127.0.0.1", 0, HttpGuard(header_timeout_s=0.2, idle_timeout_s=0.2))
    yield listener
    await listener.runner.cleanup()


async def test_a_slow_handler_is_not_cut_off(slow_app: HttpListener) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_app.port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await read_response(reader) == (200, b"done")
    finally:
        writer.close()
    assert slow_app.guard.stats["header_timeouts"] == slow_app.guard.stats["idle_timeouts"] == 0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ],
    ids=["broken-chunks", "header-too-long", "bad-header-name", "negative-length"],
)
async def test_requests_aiohttp_refuses_get_400_and_a_count_not_a_traceback(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """aiohttp logs each request it cannot parse at ERROR, with a traceback."""
    caplog.set_level(logging.INFO, logger="voxline.carriers.http")
    server = await make_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request_bytes)
        answer = await read_to_eof(reader, 5.0)
    finally:
        writer.close()
    assert answer.split(b"\r\n")[0].split()[1] == b"400"
    assert server.guard is not None and server.guard.stats["bad_requests"] == 1
    assert any("bad_requests" in r.getMessage() for r in caplog.records)
    assert_no_tracebacks(caplog)


async def test_a_guarded_site_needs_the_middleware_and_sane_timeouts() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        with pytest.raises(RuntimeError, match="guard_middleware"):
            GuardedSite(runner, "127.0.0.1", 0, HttpGuard())
    finally:
        await runner.cleanup()
    for bad in (0, -1.0, True, "10"):
        with pytest.raises(ValueError, match="header_timeout_s"):
            HttpGuard(header_timeout_s=bad)  # type: ignore[arg-type]
    HttpGuard(header_timeout_s=None, idle_timeout_s=None)  # no timeouts: allowed


async def test_cleanup_stops_listening(slow_app: HttpListener) -> None:
    port = slow_app.port
    await slow_app.runner.cleanup()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
