"""Run the voxline benchmark: N simulated callers -> bridge under test -> fake Realtime server.

``python bench/run.py`` (``make bench``) runs, on loopback, for each configuration a capacity search
over N and writes raw JSON to ``bench/results/`` and a markdown report (``bench/results/report.md``).
Configurations: voxline G.711 pass-through and 24 kHz transcoding, Twilio Media Streams and SIP/RTP
callers; Pipecat (its own virtualenv) with Twilio callers. See ``docs/benchmarks.md`` for what is
measured and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host import cpu_model

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
PIPECAT_PY = BENCH / ".venv-pipecat" / "bin" / "python"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LATENCY_BOUND_MS = 5.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (its threads included), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process."""
    return sum(cpu_times(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def family(pid: int) -> list[int]:
    """A process and its descendants (voxline run --workers: the supervisor and its workers)."""
    out = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
            for child in f.read().split():
                out += family(int(child))
    return out


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def hist_percentile(bins: Counter[int], q: float) -> float | None:
    total = sum(bins.values())
    if not total:
        return None
    want = q / 100 * total
    seen = 0
    for key in sorted(bins):
        seen += bins[key]
        if seen >= want:
            return key / 10
    return max(bins) / 10


@dataclass
class Config:
    name: str
    bridge: str  # voxline | pipecat
    kind: str  # twilio | rtp
    audio: str  # g711 | pcm24k
    steps: list[int]
    label: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 0  # voxline run --workers N (0: the flag not given)
    srtp: bool = False  # rtp: SRTP (SDES, AES_CM_128_HMAC_SHA1_80) between the callers and voxline


@dataclass
class Step:
    n: int
    result: dict[str, Any] = field(default_factory=dict)


def match_after(starts: list[int], ends: list[int], limit_ns: int) -> list[int]:
    """For each start, the first end at or after it (within ``limit_ns``): the differences in ns."""
    out: list[int] = []
    j = 0
    ends = sorted(ends)
    for t in sorted(starts):
        while j < len(ends) and ends[j] < t:
            j += 1
        if j < len(ends) and ends[j] - t <= limit_ns:
            out.append(ends[j] - t)
    return out


def _niced(nice: int, rt: int = 0) -> Any:
    """preexec_fn: real-time round-robin priority ``rt`` (root), else niceness ``nice``."""

    def apply() -> None:
        if rt:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(rt))
        elif nice:
            os.nice(nice)

    return apply


def run_step(
    cfg: Config, n: int, args: argparse.Namespace, workdir: Path, profile: bool | str = False
) -> dict[str, Any]:
    tag = f"{cfg.name}-n{n}"
    fake_port = free_port()
    fake_out = [workdir / f"{tag}-fake{i}.json" for i in range(args.fake_procs)]
    fakes = []
    for i in range(args.fake_procs):
        cmd = [PY, str(BENCH / "fake_server.py"), "--port", str(fake_port), "--out", str(fake_out[i])]
        cmd += ["--answer-ms", str(args.answer_ms)]
        if args.fake_procs > 1:
            cmd.append("--reuse-port")
        fakes.append(subprocess.Popen(cmd, cwd=ROOT, preexec_fn=_niced(args.nice, args.rt)))
    for fake in fakes:
        wait_port(fake_port, fake)
    http_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    # The bridge one real-time priority above its load generators: they cannot starve it.
    sut_priority = _niced(args.nice, args.rt + 1 if args.rt else 0)
    env = dict(os.environ, OPENAI_BASE_URL=f"http://127.0.0.1:{fake_port}/", OPENAI_API_KEY="sk-bench")
    env["BENCH_AUDIO"] = cfg.audio
    env.update(cfg.env)
    env["BENCH_GC_OUT"] = str(workdir / f"{tag}-gc.json")
    if cfg.bridge == "voxline":
        voxline = str(Path(PY).parent / "voxline")
        cmd = [voxline, "run", str(BENCH / "scenario.py"), "--http", f"127.0.0.1:{http_port}"]
        cmd += [
            "--sip",
            f"127.0.0.1:{sip_port}",
            "--rtp-host",
            "127.0.0.1",
            "--max-calls",
            str(max(n * 2, 100)),
        ]
        if cfg.workers:
            cmd += ["--workers", str(cfg.workers)]
        if cfg.srtp:
            cmd += ["--srtp", "require"]
        if args.debug_cprofile:
            cmd = [PY, "-m", "cProfile", "-o", str(workdir / f"{tag}-cprofile-sut.prof"), *cmd]
        sut = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, preexec_fn=sut_priority)
    elif cfg.bridge == "passthrough":
        cmd = [str(BENCH / "passthrough_bridge.py"), "--port", str(http_port)]
        if args.debug_cprofile:
            cmd = ["-m", "cProfile", "-o", str(workdir / f"{tag}-cprofile-sut.prof"), *cmd]
        sut = subprocess.Popen(
            [PY, *cmd], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, preexec_fn=sut_priority
        )
    else:
        cmd = [str(PIPECAT_PY), str(BENCH / "pipecat_bridge.py"), "--port", str(http_port)]
        cmd += ["--realtime-url", f"ws://127.0.0.1:{fake_port}/v1/realtime?model=gpt-realtime"]
        sut = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, preexec_fn=sut_priority)
    try:
        wait_port(http_port, sut, timeout=60)
        time.sleep(1.0)
        if cfg.workers > 1:
            time.sleep(2.0)  # every worker listening (the first one opens the shared port)
        sut_pids = family(sut.pid)  # with --workers: the supervisor and every worker
        rss0 = sum(rss_mb(p) for p in sut_pids)
        # Always split the calls over the caller processes: one process handling every call showed its
        # own stalls in the p99 at 10 calls (voxline sends 20 ms frames and marks: ~8x the messages).
        procs = max(1, min(args.caller_procs, n))
        ramp = max(2.0, n / args.ramp_rate)
        start = time.monotonic_ns() + 1_000_000_000
        measure = start + int((ramp + args.warmup) * 1e9)
        end = measure + int(args.duration * 1e9)
        if cfg.kind == "twilio":
            target = f"ws://127.0.0.1:{http_port}" + ("/ws" if cfg.bridge == "pipecat" else "/twilio")
        else:
            target = f"127.0.0.1:{sip_port}"
        callers = []
        outs = []
        per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        first = 0
        for i, count in enumerate(per):
            out = workdir / f"{tag}-callers{i}.json"
            outs.append(out)
            cmd = [PY, str(BENCH / "callers.py"), "--kind", cfg.kind, "--target", target]
            cmd += ["--count", str(count), "--first-index", str(first), "--total", str(n), "--prefix", "c"]
            cmd += ["--start-ns", str(start), "--ramp-s", str(ramp), "--measure-ns", str(measure)]
            cmd += ["--end-ns", str(end), "--out", str(out)]
            if cfg.srtp:
                cmd.append("--srtp")
            callers.append(subprocess.Popen(cmd, cwd=ROOT, preexec_fn=_niced(args.nice, args.rt)))
            first += count
        time.sleep(max(0.0, (measure - time.monotonic_ns()) / 1e9))
        pids = {"sut": sut_pids, "fake": [f.pid for f in fakes], "callers": [c.pid for c in callers]}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        cpu0["machine"] = machine_busy_seconds()
        cpu0["sut_system"] = sum(cpu_times(p)[1] for p in sut_pids)
        t0 = time.monotonic()
        spies = []
        if profile:
            targets = {"sut": sut.pid}
            if profile == "all":  # --debug-profile: the load generators too
                targets.update(fake=fakes[0].pid, callers=callers[0].pid)
            for what, pid in targets.items():
                spy_out = workdir / f"{tag}-profile-{what}.txt"
                cmd = [
                    str(Path(PY).parent / "py-spy"),
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(int(args.duration) - 1),
                ]
                cmd += ["-f", "raw", "-o", str(spy_out), "-r", "250", "--nonblocking"]
                # Above the bench's processes, or the sampler itself starves on a busy machine.
                spies.append(
                    subprocess.Popen(
                        cmd,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        preexec_fn=_niced(args.nice, args.rt + 10 if args.rt else 0),
                    )
                )
        scraper = None
        # With workers /metrics is per worker, not on the HTTP port: not scraped here.
        if (
            cfg.bridge == "voxline"
            and cfg.env.get("VOXLINE_METRICS") != "off"
            and args.scrape_s > 0
            and cfg.workers < 2
        ):
            scraper = Scraper(f"http://127.0.0.1:{http_port}/metrics", args.scrape_s)
            scraper.start()
        rss_peak = rss0
        while time.monotonic_ns() < end - 300_000_000:
            time.sleep(0.5)
            rss_peak = max(rss_peak, sum(rss_mb(p) for p in sut_pids))
        if scraper is not None:
            scraper.stop()
        cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        cpu1["machine"] = machine_busy_seconds()
        cpu1["sut_system"] = sum(cpu_times(p)[1] for p in sut_pids)
        window = time.monotonic() - t0
        for c in callers:
            c.wait(timeout=60)
        for spy in spies:
            spy.wait(timeout=30)
    finally:
        for f in fakes:
            stop(f)
        stop(sut)
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    fake_reports = [json.loads(o.read_text()) for o in fake_out if o.exists()]
    r = analyse(cfg, n, results, fake_reports, cpu0, cpu1, window, rss0, rss_peak, measure, end)
    r["metrics"] = cfg.env.get("VOXLINE_METRICS", "on") if cfg.bridge == "voxline" else None
    r["workers"] = cfg.workers or 1
    r["sut_processes"] = len(sut_pids)
    r["idle_mb_per_process"] = round(rss0 / len(sut_pids), 1)
    cprofile = workdir / f"{tag}-cprofile-sut.prof"
    if args.debug_cprofile and cprofile.exists():
        # Every function call the bridge made, start-up included: a count that does not move with
        # the machine's load, unlike the CPU figures (which cProfile inflates: not comparable).
        r["python_calls"] = sum(stat[1] for stat in pstats.Stats(str(cprofile)).stats.values())
    if scraper is not None:
        r["metrics_scrapes"] = {"ok": scraper.ok, "failed": scraper.failed, "bytes": scraper.last_bytes}
    gc_file = workdir / f"{tag}-gc.json"
    if gc_file.exists():
        pauses = json.loads(gc_file.read_text())
        times_file = Path(str(gc_file) + ".t")
        times = json.loads(times_file.read_text()) if times_file.exists() else []
        inside = [p for p, t in zip(pauses, times, strict=False) if measure <= t <= end]
        full = [ms for gen, ms in pauses if gen == 2]
        r["gc"] = {
            "collections": len(pauses),
            "gen2": len(full),
            "gen2_max_ms": round(max(full), 1) if full else None,
            "max_ms": round(max((ms for _, ms in pauses), default=0.0), 1),
            # Collections during the measured window (gen 1 and 2 are recorded; gen 0 mostly not).
            "in_window": {
                "gen2": sum(1 for gen, _ in inside if gen == 2),
                "max_ms": round(max((ms for _, ms in inside), default=0.0), 1),
                "over_5ms": sum(1 for _, ms in inside if ms > 5),
            },
        }
    return r


class Scraper(threading.Thread):
    """GET /metrics every ``interval_s`` in the measured window, as a Prometheus server would (its
    default interval is 60 s, 15 s is common: every 5 s by default here costs more, not less)."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval_s = interval_s
        self.ok = self.failed = self.last_bytes = 0
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    self.last_bytes = len(response.read())
                self.ok += 1
            except OSError:
                self.failed += 1

    def stop(self) -> None:
        self._stopped.set()
        self.join(10)


def analyse(
    cfg: Config,
    n: int,
    results: list[dict[str, Any]],
    fakes: list[dict[str, Any]],
    cpu0: dict[str, float],
    cpu1: dict[str, float],
    window: float,
    rss0: float,
    rss_peak: float,
    measure: int,
    end: int,
) -> dict[str, Any]:
    def inside(t: int) -> bool:
        return measure <= t <= end

    seen: dict[str, dict[str, Any]] = {}
    for report in fakes:
        for call in report["calls"]:
            if call["call"]:
                seen[call["call"]] = call
    up: list[int] = []
    down: list[int] = []
    barge: list[int] = []
    onsets = answers = barge_expected = 0
    frames_sent = 0
    appended_ms = 0.0
    errors: list[str] = []
    lateness: Counter[int] = Counter()
    gaps: Counter[int] = Counter()
    frames = late = lost = late_ticks = 0
    connected = 0
    for result in results:
        for key, value in result["lateness_bins"].items():
            lateness[int(key)] += value
        for key, value in result["gap_bins"].items():
            gaps[int(key)] += value
        frames += result["frames"]
        late += result["late_frames"]
        lost += result["lost_packets"]
        late_ticks += result["late_ticks"]
        for caller in result["callers"]:
            errors.extend(caller["errors"])
            fake = seen.get(caller["name"])
            if caller["connected_ns"]:
                connected += 1
            if fake is None:
                continue
            my_onsets = [t for t in caller["onsets"] if inside(t)]
            onsets += len(my_onsets)
            up += match_after(my_onsets, fake["speech_started"], 1_000_000_000)
            deltas = [t for t in fake["first_delta"] if inside(t)]
            answers += len(deltas)
            down += match_after(deltas, caller["heard"], 1_000_000_000)
            # Barge-in: speech_started while the caller hears an answer -> clear (Twilio) / audio stops (RTP).
            stops = caller["clears"] if cfg.kind == "twilio" else caller["stops"]
            heard = caller["heard"]
            for t in fake["speech_started"]:
                if not inside(t):
                    continue
                playing = any(h < t for h in heard) and not any(
                    s < t and s > max(h for h in heard if h < t) for s in stops
                )
                if playing:
                    barge_expected += 1
                    barge += match_after([t], stops, 1_000_000_000)
            frames_sent += caller["frames_sent"]
            appended_ms += fake["appended_ms"]
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    # The kernel's share of the bridge's CPU (socket system calls): what no Python change removes.
    sut_system = cpu.pop("sut_system")
    # Everything else the machine ran meanwhile (other users' jobs, the kernel's softirq work ...).
    cpu["other"] = max(0.0, cpu.pop("machine") - cpu["sut"] - cpu["fake"] - cpu["callers"])
    call_minutes = n * window / 60
    ms = [x / 1e6 for x in up]
    md = [x / 1e6 for x in down]
    mb = [x / 1e6 for x in barge]
    violations = sum(f.get("violation_count", 0) for f in fakes)
    result = {
        "config": cfg.name,
        "bridge": cfg.bridge,
        "kind": cfg.kind,
        "audio": cfg.audio,
        "n": n,
        "connected": connected,
        "window_s": round(window, 2),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_cores": {k: round(v / window, 3) for k, v in cpu.items()},
        "cpu_s_per_call_minute": round(cpu["sut"] / call_minutes, 4) if call_minutes else None,
        "sut_system_share": round(sut_system / cpu["sut"], 3) if cpu["sut"] else None,
        "calls_per_core_by_cpu": round(n * window / cpu["sut"], 1) if cpu["sut"] else None,
        "rss_mb": {"idle": round(rss0, 1), "peak": round(rss_peak, 1)},
        "mb_per_call": round((rss_peak - rss0) / n, 3),
        "up_ms": summary(ms),
        "down_ms": summary(md),
        "barge_ms": summary(mb),
        "onsets": onsets,
        "answers": answers,
        "barge_expected": barge_expected,
        "outbound_frames": frames,
        "late_frames": late,
        "lateness_p99_ms": hist_percentile(lateness, 99),
        "lateness_max_ms": max(lateness) / 10 if lateness else None,
        "gap_p99_ms": hist_percentile(gaps, 99),
        "gap_max_ms": max(gaps) / 10 if gaps else None,
        "lost_packets": lost,
        "inbound_missing_ms": round(frames_sent * 20 - appended_ms),
        "caller_late_ticks": late_ticks,
        "fake_violations": violations,
        "fake_violation_samples": [v for f in fakes for v in f.get("violations", [])][:5],
        "fake_internal_errors": [v for f in fakes for v in f.get("internal_errors", [])][:3],
        "errors": errors[:10],
        "error_count": len(errors),
    }
    result["holds"] = holds(result)
    result["keeps_up"] = keeps_up(result)
    return result


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": round(min(values), 2),
        "p10": round(percentile(values, 10) or 0, 2),
        "p50": round(percentile(values, 50) or 0, 2),
        "p90": round(percentile(values, 90) or 0, 2),
        "p99": round(percentile(values, 99) or 0, 2),
        "max": round(max(values), 2),
    }


def holds(r: dict[str, Any]) -> bool:
    """The issue's capacity criterion: p99 added latency <= 5 ms each way and no late frames (plus every
    call up, every utterance seen and every answer heard)."""
    down = r["down_ms"]
    return bool(
        keeps_up(r)
        and r["late_frames"] == 0
        and r["up_ms"].get("p99", 1e9) <= LATENCY_BOUND_MS
        and down.get("p99", 1e9) <= LATENCY_BOUND_MS
    )


LATE_FRACTION = 0.001


def keeps_up(r: dict[str, Any]) -> bool:
    """The bridge keeps up with real time: every call up, >= 98 % of utterances seen and answers heard,
    at most 0.1 % of the frames to callers late (> 40 ms behind schedule), no error."""
    up, down = r["up_ms"], r["down_ms"]
    return bool(
        r["connected"] == r["n"]
        and up.get("n", 0) >= r["onsets"] - max(1, 0.02 * r["onsets"])
        and down.get("n", 0) >= r["answers"] - max(1, 0.02 * r["answers"])
        and r["late_frames"] <= LATE_FRACTION * r["outbound_frames"]
        and r["error_count"] == 0
    )


def configs(args: argparse.Namespace) -> list[Config]:
    steps = [int(s) for s in args.steps.split(",")]
    pc_steps = [int(s) for s in args.pipecat_steps.split(",")]
    out = [
        Config(
            "voxline-twilio-g711",
            "voxline",
            "twilio",
            "g711",
            steps,
            "voxline, Twilio callers, G.711 pass-through",
        ),
        # The same path with telemetry off (voxline run --metrics off): the cost of the metrics, which
        # the other voxline configurations have on (the default) and scraped (--scrape-s).
        Config(
            "voxline-twilio-g711-metrics-off",
            "voxline",
            "twilio",
            "g711",
            steps,
            "voxline, Twilio callers, G.711 pass-through, metrics off",
            {"VOXLINE_METRICS": "off"},
        ),
        Config(
            "voxline-twilio-pcm24k",
            "voxline",
            "twilio",
            "pcm24k",
            steps,
            "voxline, Twilio callers, 24 kHz PCM",
        ),
        Config(
            "voxline-rtp-g711",
            "voxline",
            "rtp",
            "g711",
            steps,
            "voxline, SIP/RTP callers, G.711 pass-through",
        ),
        Config(
            "voxline-rtp-g711-metrics-off",
            "voxline",
            "rtp",
            "g711",
            steps,
            "voxline, SIP/RTP callers, G.711 pass-through, metrics off",
            {"VOXLINE_METRICS": "off"},
        ),
        # The same path with SRTP (SDES keys, AES_CM_128_HMAC_SHA1_80) both ways: what encryption costs.
        Config(
            "voxline-rtp-g711-srtp",
            "voxline",
            "rtp",
            "g711",
            steps,
            "voxline, SIP/RTP callers, G.711 pass-through, SRTP",
            srtp=True,
        ),
        Config(
            "voxline-rtp-pcm24k", "voxline", "rtp", "pcm24k", steps, "voxline, SIP/RTP callers, 24 kHz PCM"
        ),
        Config("pipecat-twilio", "pipecat", "twilio", "pcm24k", pc_steps, "Pipecat, Twilio callers"),
        Config(
            "passthrough-twilio",
            "passthrough",
            "twilio",
            "g711",
            steps,
            "bare pass-through bridge (control), Twilio callers, μ-law straight through",
        ),
        # The optional event loop (voxline run --event-loop uvloop), beside the default.
        Config(
            "voxline-twilio-g711-uvloop",
            "voxline",
            "twilio",
            "g711",
            steps,
            "voxline, Twilio callers, G.711 pass-through, on uvloop",
            {"VOXLINE_EVENT_LOOP": "uvloop"},
        ),
        Config(
            "voxline-rtp-g711-uvloop",
            "voxline",
            "rtp",
            "g711",
            steps,
            "voxline, SIP/RTP callers, G.711 pass-through, on uvloop",
            {"VOXLINE_EVENT_LOOP": "uvloop"},
        ),
        # The control on uvloop too: voxline on uvloop against a bridge on the same loop.
        Config(
            "passthrough-twilio-uvloop",
            "passthrough",
            "twilio",
            "g711",
            steps,
            "bare pass-through bridge (control), Twilio callers, on uvloop",
            {"BENCH_EVENT_LOOP": "uvloop"},
        ),
    ]
    # voxline run --workers 1 and --workers 2 side by side (the workers step of `make bench`): the
    # supervisor and its workers are measured together (CPU and memory of the whole process tree).
    for kind, callers in (("twilio", "Twilio"), ("rtp", "SIP/RTP")):
        for workers in (1, 2):
            out.append(
                Config(
                    f"voxline-{kind}-g711-workers{workers}",
                    "voxline",
                    kind,
                    "g711",
                    steps,
                    f"voxline --workers {workers}, {callers} callers, G.711 pass-through",
                    workers=workers,
                )
            )
    if args.only:
        wanted = set(args.only.split(","))
        return [c for c in out if c.name in wanted]
    return out


def machine() -> dict[str, Any]:
    pipecat = ""
    if PIPECAT_PY.exists():
        with contextlib.suppress(Exception):
            pipecat = subprocess.run(
                [str(PIPECAT_PY), "-c", "import importlib.metadata as m; print(m.version('pipecat-ai'))"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pipecat": pipecat,
        "voxline_commit": commit,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", default="10,25,50,75,100,125,150,200,250,300", help="N values for voxline")
    parser.add_argument("--pipecat-steps", default="5,10,15,20,25,35,50", help="N values for Pipecat")
    parser.add_argument("--reference-n", type=int, default=10, help="the N the comparison table is taken at")
    parser.add_argument("--only", help="comma-separated config names")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the ramp before measuring")
    parser.add_argument("--ramp-rate", type=float, default=40.0, help="calls started per second")
    parser.add_argument("--answer-ms", type=int, default=2500)
    parser.add_argument("--caller-procs", type=int, default=2)
    parser.add_argument("--fake-procs", type=int, default=1)
    parser.add_argument(
        "--nice", type=int, default=-15, help="niceness of every bench process (root: keeps other jobs off)"
    )
    parser.add_argument(
        "--rt",
        type=int,
        default=10,
        help="SCHED_RR priority of every bench process (root; 0: use --nice): a shared machine's other "
        "jobs cannot delay them; the kernel's RT throttling still leaves others 5%%",
    )
    parser.add_argument(
        "--scrape-s", type=float, default=5.0, help="GET voxline's /metrics this often (0: never)"
    )
    parser.add_argument("--keep-going", action="store_true", help="run every step even after one fails")
    parser.add_argument("--profile", action="store_true", help="py-spy voxline at its last holding step")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--debug-profile", help="profile every process of each step: 'all'")
    parser.add_argument(
        "--debug-cprofile",
        action="store_true",
        help="run the bridge (voxline or the bare one) under cProfile and report its function calls "
        "(python_calls; <workdir>/<step>-cprofile-sut.prof); its CPU figures are then not comparable",
    )
    parser.add_argument("--workdir", help="where per-step files go (default: a new temporary directory)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="voxline-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "args": vars(args), "configs": []}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"bench-{stamp}.json"
    for cfg in configs(args):
        entry: dict[str, Any] = {
            "name": cfg.name,
            "label": cfg.label,
            "kind": cfg.kind,
            "bridge": cfg.bridge,
            "audio": cfg.audio,
            "steps": [],
            "capacity": None,  # largest N meeting the latency bound (holds)
            "capacity_realtime": None,  # largest N keeping up (no late frames, all answered)
        }
        report["configs"].append(entry)
        strict_ok = True
        failures = 0
        for n in cfg.steps:
            print(f"[bench] {cfg.name} N={n} ...", flush=True)
            r = run_step(cfg, n, args, workdir, args.debug_profile or False)
            entry["steps"].append(r)
            print(
                f"[bench]   up p50/p99 {r['up_ms'].get('p50')}/{r['up_ms'].get('p99')} ms, down "
                f"{r['down_ms'].get('p50')}/{r['down_ms'].get('p99')} ms, barge {r['barge_ms'].get('p50')}/"
                f"{r['barge_ms'].get('p99')} ms, late {r['late_frames']}/{r['outbound_frames']}, cpu "
                f"{r['cpu_cores']}, {r['cpu_s_per_call_minute']} s/call-min, {r['mb_per_call']} MB/call, "
                f"holds={r['holds']} keeps_up={r['keeps_up']}",
                flush=True,
            )
            if "python_calls" in r:
                calls = r["python_calls"]
                print(f"[bench]   {calls:,} calls in the bridge (cProfile, builtins too)", flush=True)
            path.write_text(json.dumps(report, indent=1))
            strict_ok = strict_ok and r["holds"]
            if strict_ok:
                entry["capacity"] = n
            if r["keeps_up"]:
                entry["capacity_realtime"] = n
                failures = 0
            else:
                # Two failing steps in a row end the search (one may be noise on a shared machine).
                failures += 1
                if failures >= 2 and not args.keep_going:
                    break
        if (
            args.profile
            and cfg.bridge == "voxline"
            and cfg.kind == "twilio"
            and shutil.which(str(Path(PY).parent / "py-spy"))
        ):
            n = entry["capacity_realtime"] or cfg.steps[0]
            print(f"[bench] profiling {cfg.name} at N={n}", flush=True)
            r = run_step(cfg, n, args, workdir, profile=True)
            prof = workdir / f"{cfg.name}-n{n}-profile-sut.txt"
            entry["profile"] = {"n": n, "step": r, "top": top_functions(prof) if prof.exists() else []}
            path.write_text(json.dumps(report, indent=1))
    path.write_text(json.dumps(report, indent=1))
    (out / "latest.json").write_text(json.dumps(report, indent=1))
    from render import render

    md = render(report)
    (out / "report.md").write_text(md)
    print(md)
    print(f"[bench] raw results: {path}")


IDLE = ("EpollSelector.select", "BaseEventLoop._run_once")


def top_functions(path: Path, limit: int = 25) -> list[dict[str, Any]]:
    """Self and total shares per function (line numbers merged) from py-spy's collapsed stacks, of the
    samples where the process was busy (a stack ending in the event loop's ``select`` is idle)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1].startswith(IDLE[0]):
            idle += count
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    top: list[dict[str, Any]] = [
        {
            "function": name,
            "self_pct": round(100 * c / samples, 1),
            "total_pct": round(100 * total[name] / samples, 1),
        }
        for name, c in own.most_common(limit)
    ]
    by_total = [
        {"function": name, "total_pct": round(100 * c / samples, 1)}
        for name, c in total.most_common(limit + 10)
    ]
    return [*top, {"samples": samples, "idle_samples": idle, "by_total": by_total}]


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (file.py)``; site-packages paths shortened."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "python3.11/", "python3.12/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
