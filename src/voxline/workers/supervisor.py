"""The supervisor of ``voxline run --workers N``: N worker processes, the SIP front, restarts, drain.

Each worker is a fresh interpreter (``python -m voxline run ... --worker-index i``, a subprocess:
nothing of the supervisor's event loop or state is inherited) running a full runtime with the same
scenario and settings, plus what makes it worker ``i``: SIP on a loopback port of its own (the front
forwards to it), the shared HTTP port (``SO_REUSEPORT``: the kernel spreads connections), a slice of
the RTP port range, a metrics listener of its own. Once listening it prints one line
``VOXLINE_WORKER {json}`` on its stdout (its index, pid and addresses); the supervisor reads it, tells
the front, and prints ``worker i (pid P): SIP ..., metrics ...``. Its other stdout lines are passed
on with a ``[worker i]`` prefix; its stderr (the logs) is the supervisor's.

A worker that dies is started again after a backoff (0.5 s, doubled per death in the last minute,
at most 10 s). One that dies before it announced itself ``max_startup_failures`` times in a row
(a broken scenario, a port taken) makes the supervisor give up: it stops the others and exits 1
with a message naming the worker and its exit code. SIGTERM or SIGINT: the front answers OPTIONS
503, every worker gets SIGTERM (a drain: its running calls end within ``--grace``), and the
supervisor exits 0 when all have exited 0. Workers get SIGTERM as well if the supervisor dies
(``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import secrets
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._tasks import background
from .frontio import FrontServer

__all__ = ["ANNOUNCE", "SipFrontSpec", "Supervisor", "WorkerSpec", "split_port_range", "supervise"]

log = logging.getLogger("voxline.workers")

ANNOUNCE = "VOXLINE_WORKER "
"""The prefix of the line a worker prints once it listens (JSON after it)."""


@dataclass(frozen=True, slots=True)
class SipFrontSpec:
    host: str
    port: int
    transports: tuple[str, ...]
    allow_sources: Sequence[str] | None


@dataclass(slots=True)
class WorkerSpec:
    """``command(i)``: worker i's argv; ``env``: its environment."""

    count: int
    command: Callable[[int], list[str]]
    env: dict[str, str]
    sip: SipFrontSpec | None = None
    max_startup_failures: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    announce: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    # Called once the front listens, before the workers start (the CLI prints where it listens).
    on_listening: Callable[[Supervisor], None] | None = None
    http_port: int | None = None  # the HTTP port the workers share (for the start-up line)


def split_port_range(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``low..high`` cut in ``parts`` slices that do not overlap, each of an even number of ports
    (RTP takes even ports). Raises ValueError when a slice would be smaller than 2 ports."""
    size = (high - low + 1) // parts // 2 * 2
    if size < 2:
        raise ValueError(f"rtp_ports {low}-{high} is too small for {parts} workers (at least 2 ports each)")
    return [(low + i * size, low + (i + 1) * size - 1) for i in range(parts)]


@dataclass(slots=True)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    announced: bool = False
    startup_failures: int = 0
    deaths: list[float] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)


def _parent_death_signal() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Supervisor:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.workers = [_Worker(i) for i in range(spec.count)]
        self.front: FrontServer | None = None
        self._stopping = False
        self._gave_up: str | None = None
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        spec = self.spec
        if spec.sip is not None:
            self.front = FrontServer(
                spec.sip.host,
                spec.sip.port,
                spec.sip.transports,
                workers=spec.count,
                secret=secrets.token_bytes(32),
                allow_sources=spec.sip.allow_sources,
            )
            await self.front.start()
        if spec.on_listening is not None:
            spec.on_listening(self)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            for worker in self.workers:
                await self._start(worker)
            await self._done.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self.front is not None:
                await self.front.close()
        if self._gave_up is not None:
            print(f"voxline run: {self._gave_up}", file=sys.stderr, flush=True)
            return 1
        codes = [w.process.returncode if w.process else 0 for w in self.workers]
        return 0 if all(code == 0 for code in codes) else 1

    @property
    def sip_port(self) -> int | None:
        return self.front.port if self.front is not None else None

    def stop(self) -> None:
        """A drain: the front says not ready, every worker gets SIGTERM."""
        if self._stopping:
            return
        self._stopping = True
        if self.front is not None and self.front.core is not None:
            self.front.core.draining = True
        log.info("supervisor: draining %d workers", len(self.workers))
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        self._check_done()

    def _check_done(self) -> None:
        if self._stopping and all(
            w.process is None or w.process.returncode is not None for w in self.workers
        ):
            self._done.set()

    async def _start(self, worker: _Worker) -> None:
        if self._stopping:
            return
        worker.announced = False
        worker.process = await asyncio.create_subprocess_exec(
            *self.spec.command(worker.index),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=self.spec.env,
            preexec_fn=_parent_death_signal if sys.platform == "linux" else None,
        )
        self._spawn(self._watch(worker, worker.process))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = background(coro, name="voxline-workers")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text.startswith(ANNOUNCE):
                self._announced(worker, process, text[len(ANNOUNCE) :])
            else:
                self.spec.announce(f"[worker {worker.index}] {text}")
        code = await process.wait()
        if self.front is not None:
            self.front.set_worker(worker.index, None)
        if self._stopping:
            log.info("worker %d (pid %d) exited with code %d", worker.index, process.pid, code)
            self._check_done()
            return
        now = time.monotonic()
        if worker.announced:
            worker.startup_failures = 0
        else:
            worker.startup_failures += 1
            if worker.startup_failures >= self.spec.max_startup_failures:
                self._give_up(
                    f"worker {worker.index} exited with code {code} before it was listening, "
                    f"{worker.startup_failures} times in a row: giving up (see its messages above)"
                )
                return
        worker.deaths = [t for t in worker.deaths if now - t < 60.0] + [now]
        delay = min(self.spec.backoff_initial_s * 2 ** (len(worker.deaths) - 1), self.spec.backoff_max_s)
        print(
            f"voxline: worker {worker.index} (pid {process.pid}) exited with code {code}; "
            f"starting it again in {delay:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(delay)
        await self._start(worker)

    def _announced(self, worker: _Worker, process: asyncio.subprocess.Process, payload: str) -> None:
        try:
            info = json.loads(payload)
        except ValueError:
            log.warning("worker %d: bad announcement %r", worker.index, payload[:200])
            return
        worker.announced = True
        worker.info = info
        sip = info.get("sip")
        if self.front is not None and isinstance(sip, list) and len(sip) == 2:
            self.front.set_worker(worker.index, (str(sip[0]), int(sip[1])))
        parts = [f"SIP {sip[0]}:{sip[1]}"] if isinstance(sip, list) else []
        metrics = info.get("metrics")
        if isinstance(metrics, list):
            parts.append(f"metrics http://{metrics[0]}:{metrics[1]}/metrics")
        if info.get("rtp_ports"):
            parts.append(f"RTP ports {info['rtp_ports']}")
        self.spec.announce(f"voxline: worker {worker.index} (pid {process.pid}) running: {', '.join(parts)}")

    def _give_up(self, message: str) -> None:
        self._gave_up = message
        self.stop()


def supervise(spec: WorkerSpec) -> int:
    """Run the supervisor until every worker has exited; its exit code."""

    async def main() -> int:
        return await Supervisor(spec).run()

    return asyncio.run(main())
