"""CPU per call-minute of WebRTC (Opus) calls next to SIP/RTP G.711 and 24 kHz calls, on one machine.

``python bench/webrtc_cost.py [--calls 10] [--duration 20]`` (``make bench-webrtc``): for each path a
fresh ``voxline run bench/scenario.py`` against the bench's fake Realtime server (bench/fake_server.py,
its own process), N callers in their own process (bench/callers.py for SIP/RTP, bench/webrtc_callers.py
for WebRTC), and the bridge process's utime + stime over the measured window, after the ramp and a
warm-up. The callers speak the same pattern (two 400 ms utterances per 6 s, the second a barge-in).
Writes ``bench/results/webrtc.json`` and prints a markdown table (docs/webrtc.md quotes one run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host import cpu_model
from run import ROOT, cpu_seconds, free_port, rss_mb, socket, stop, wait_port

BENCH = ROOT / "bench"
PY = sys.executable
PATHS = {
    "SIP/RTP G.711 (μ-law pass-through)": ("rtp", "g711"),
    "SIP/RTP, model at 24 kHz (μ-law ↔ PCM16 transcoding)": ("rtp", "pcm24k"),
    "WebRTC (Opus 48 kHz ↔ PCM16 24 kHz)": ("webrtc", "g711"),
}


def measure(
    name: str, kind: str, audio: str, n: int, args: argparse.Namespace, work: Path
) -> dict[str, object]:
    fake_port, http_port, sip_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    fake = subprocess.Popen(
        [
            PY,
            str(BENCH / "fake_server.py"),
            "--port",
            str(fake_port),
            "--out",
            str(work / f"{kind}-{audio}-fake.json"),
        ],
        cwd=ROOT,
    )
    wait_port(fake_port, fake)
    env = dict(
        os.environ,
        OPENAI_BASE_URL=f"http://127.0.0.1:{fake_port}/",
        OPENAI_API_KEY="sk-bench",
        BENCH_AUDIO=audio,
    )
    voxline = str(Path(PY).parent / "voxline")
    cmd = [voxline, "run", str(BENCH / "scenario.py"), "--http", f"127.0.0.1:{http_port}"]
    cmd += ["--sip", f"127.0.0.1:{sip_port}", "--rtp-host", "127.0.0.1", "--max-calls", str(max(2 * n, 100))]
    sut = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_port(http_port, sut, timeout=60)
        time.sleep(1.0)
        rss0 = rss_mb(sut.pid)
        ramp = max(2.0, n / 5)
        start = time.monotonic_ns() + 1_000_000_000
        measure_at = start + int((ramp + args.warmup) * 1e9)
        end = measure_at + int(args.duration * 1e9)
        out = work / f"{kind}-{audio}-callers.json"
        if kind == "webrtc":
            ccmd = [PY, str(BENCH / "webrtc_callers.py"), "--url", f"http://127.0.0.1:{http_port}/webrtc"]
            ccmd += ["--count", str(n), "--ramp-s", str(ramp), "--end-ns", str(end), "--out", str(out)]
        else:
            ccmd = [PY, str(BENCH / "callers.py"), "--kind", "rtp", "--target", f"127.0.0.1:{sip_port}"]
            ccmd += ["--count", str(n), "--total", str(n), "--start-ns", str(start), "--ramp-s", str(ramp)]
            ccmd += ["--measure-ns", str(measure_at), "--end-ns", str(end), "--out", str(out)]
        callers = subprocess.Popen(ccmd, cwd=ROOT, env=env)
        time.sleep(max(0.0, (measure_at - time.monotonic_ns()) / 1e9))
        cpu0 = cpu_seconds(sut.pid)
        time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
        cpu = cpu_seconds(sut.pid) - cpu0
        rss = rss_mb(sut.pid) - rss0
        callers.wait(60)
        if kind == "webrtc":
            # Every caller connected and heard its answers (frames decoded), or the figure is void.
            received = json.loads(out.read_text())["frames_received"]
            if min(received) < 50 * args.duration / 2:
                raise RuntimeError(f"a WebRTC caller received too little audio: {received}")
    finally:
        stop(sut)
        stop(fake)
    return {
        "path": name,
        "calls": n,
        "window_s": args.duration,
        "cpu_s": round(cpu, 3),
        "cpu_s_per_call_minute": round(cpu / (n * args.duration / 60), 3),
        "rss_growth_mb_per_call": round(rss / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="voxline-bench-webrtc-") as tmp:
        for name, (kind, audio) in PATHS.items():
            results.append(measure(name, kind, audio, args.calls, args, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    out = BENCH / "results" / "webrtc.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "results": results}, indent=2) + "\n"
    )
    print(f"\n{args.calls} calls, {args.duration:g} s measured, {cpu_model()}, {os.cpu_count()} cores\n")
    print("| path | CPU s per call-minute | × SIP/RTP G.711 | RSS growth per call (MB) |")
    print("|---|---:|---:|---:|")
    base = float(results[0]["cpu_s_per_call_minute"])  # type: ignore[arg-type]
    for r in results:
        per = float(r["cpu_s_per_call_minute"])  # type: ignore[arg-type]
        print(f"| {r['path']} | {per:.3f} | {per / base:.1f}× | {r['rss_growth_mb_per_call']} |")


if __name__ == "__main__":
    main()
