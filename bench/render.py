"""Render a bench JSON report as markdown: ``python bench/render.py bench/results/latest.json``."""

from __future__ import annotations

import json
import sys
from typing import Any

Step = dict[str, Any]


def _step(entry: dict[str, Any] | None, n: int | None) -> Step | None:
    if entry is None or n is None:
        return None
    return next((s for s in entry["steps"] if s["n"] == n), None)


def _capacity_step(entry: dict[str, Any] | None) -> Step | None:
    return _step(entry, entry["capacity_realtime"]) if entry else None


def _pair(d: dict[str, Any], a: str = "p50", b: str = "p99") -> str:
    if not d.get("n"):
        return "–"
    return f"{d[a]:g} / {d[b]:g}"


def _ratio(a: float | None, b: float | None, digits: int = 1) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.{digits}f}×"


def _num(x: Any, fmt: str = "g") -> str:
    return "–" if x is None else format(x, fmt)


def _cores(s: Step) -> str:
    c = s["cpu_cores"]
    return f"{c['sut']:.2f} / {c['fake']:.2f} / {c['callers']:.2f} / {c.get('other', 0):.2f}"


def comparison(report: dict[str, Any]) -> list[str]:
    by = {e["name"]: e for e in report["configs"]}
    ref = int(report["args"].get("reference_n", 10))
    vg, v24, pc, bare = (
        by.get("voxline-twilio-g711"),
        by.get("voxline-twilio-pcm24k"),
        by.get("pipecat-twilio"),
        by.get("passthrough-twilio"),
    )
    cols = [vg, v24, pc, bare]
    at = [_step(e, ref) for e in cols]
    cap = [_capacity_step(e) for e in cols]

    def cell(steps: list[Step | None], f: Any) -> list[str]:
        return [f(s) if s is not None else "–" for s in steps]

    def get(s: Step | None, *keys: str) -> Any:
        v: Any = s
        for k in keys:
            if v is None:
                return None
            v = v.get(k)
        return v

    def row(name: str, cells: list[str], values: list[Any] | None = None, digits: int = 1) -> str:
        ratios = ["", ""]
        if values is not None:
            ratios = [_ratio(values[2], values[0], digits), _ratio(values[0], values[3], digits)]
        return f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |"

    lines = [
        "| Twilio callers (μ-law 8 kHz) | voxline, G.711 pass-through | voxline, 24 kHz PCM | Pipecat "
        f"{report['machine'].get('pipecat', '')} | bare pass-through (control) | Pipecat ÷ voxline G.711 "
        "| voxline G.711 ÷ bare |",
        "|---|---|---|---|---|---|---|",
    ]
    caps = [e["capacity_realtime"] if e else None for e in cols]
    lines.append(
        row(
            "calls carried in real time on this 2-core VM, with the callers and the fake server on it "
            "(largest N tried: ≤ 0.1 % frames late, every utterance answered)",
            [_num(c) for c in caps],
            caps,
            2,
        )
    )
    lines.append(
        row(
            "… CPU of the bridge process at that N (cores)",
            cell(cap, lambda s: f"{s['cpu_cores']['sut']:.2f}"),
        )
    )
    cpc = [get(s, "calls_per_core_by_cpu") for s in cap]
    lines.append(
        row(
            "calls per core by CPU cost at that N (N ÷ cores the bridge used)", [_num(c) for c in cpc], cpc, 2
        )
    )
    last = [e["steps"][-1] if e and e["steps"] else None for e in cols]
    lpc = [get(s, "calls_per_core_by_cpu") for s in last]
    lines.append(
        row(
            "calls per core by CPU cost at the busiest step (N)",
            cell(last, lambda s: f"{_num(s['calls_per_core_by_cpu'])} (N = {s['n']})"),
            lpc,
            2,
        )
    )
    strict = [e["capacity"] if e else None for e in cols]
    lines.append(
        row(
            "largest N with p99 added latency ≤ 5 ms both ways and no late frame",
            [_num(c) if c else "none" for c in strict],
        )
    )
    lines.append(f"| **at N = {ref} calls (all four)** | | | | | | |")
    cpu = [get(s, "cpu_s_per_call_minute") for s in at]
    lines.append(row("CPU seconds per call-minute (bridge process)", [_num(c, ".3f") for c in cpu], cpu))
    for name, key in (
        ("added latency caller → model, p50 / p99 (ms)", "up_ms"),
        ("added latency model → caller (first audio), p50 / p99 (ms)", "down_ms"),
        ("barge-in: `speech_started` sent → Twilio `clear` received, p50 / p99 (ms)", "barge_ms"),
    ):
        values = [get(s, key) for s in at]
        lines.append(row(name, [_pair(v) if v else "–" for v in values], [get(s, key, "p50") for s in at]))
    mem = [get(s, "mb_per_call") for s in at]
    lines.append(row("memory per call (RSS growth ÷ N, MB)", [_num(m, ".3f") for m in mem], mem))
    lines.append(
        row(
            "outbound frame lateness p99 / gap p99 (ms)",
            cell(at, lambda s: f"{_num(s['lateness_p99_ms'])} / {_num(s['gap_p99_ms'])}"),
        )
    )
    lines.append(
        row(
            "late frames (the player ran dry > 40 ms) / media messages",
            cell(at, lambda s: f"{s['late_frames']} / {s['outbound_frames']}"),
        )
    )
    lines.append(row("CPU cores: bridge / fake server / callers / rest of the machine", cell(at, _cores)))
    return lines


def _share(s: Step) -> str:
    share = s.get("sut_system_share")  # absent in runs before it was recorded
    return f" ({share:.0%})" if share is not None else ""


def steps_table(entry: dict[str, Any]) -> list[str]:
    lines = [
        f"#### {entry['label']}",
        "",
        "| N | up p50/p99 | down p50/p99 | barge p50/p99 | late / frames | lateness p99 | gap p99 | "
        "CPU s/call-min (kernel share) | calls/core | MB/call | GC gen2 max | cores bridge/fake/callers/rest "
        "| caller lag | real time | ≤ 5 ms |",
        "|" + "---|" * 15,
    ]
    for s in entry["steps"]:
        gc = s.get("gc") or {}
        lines.append(
            f"| {s['n']} | {_pair(s['up_ms'])} | {_pair(s['down_ms'])} | {_pair(s['barge_ms'])} "
            f"| {s['late_frames']} / {s['outbound_frames']} | {_num(s['lateness_p99_ms'])} "
            f"| {_num(s['gap_p99_ms'])} | {_num(s['cpu_s_per_call_minute'], '.3f')}{_share(s)} "
            f"| {_num(s['calls_per_core_by_cpu'])} | {s['mb_per_call']:.3f} "
            f"| {_num(gc.get('gen2_max_ms'))} | {_cores(s)} | {s['caller_late_ticks']} "
            f"| {'yes' if s['keeps_up'] else 'no'} "
            f"| {'yes' if s['holds'] else 'no'} |"
        )
    lines.append("")
    return lines


def sip_table(report: dict[str, Any]) -> list[str]:
    by = {e["name"]: e for e in report["configs"]}
    entries = [by.get("voxline-rtp-g711"), by.get("voxline-rtp-pcm24k")]
    if not any(entries):
        return []
    ref = int(report["args"].get("reference_n", 25))
    lines = [
        "| SIP/RTP callers (PCMU) | voxline, G.711 pass-through | voxline, 24 kHz PCM |",
        "|---|---|---|",
        "| calls carried in real time (largest N tried) | "
        + " | ".join(_num(e["capacity_realtime"]) if e else "–" for e in entries)
        + " |",
    ]
    caps = [_capacity_step(e) for e in entries]
    lines.append(
        "| calls per core by CPU cost at that N | "
        + " | ".join(_num(s["calls_per_core_by_cpu"]) if s else "–" for s in caps)
        + " |"
    )
    at = [_step(e, ref) for e in entries]
    for name, key in (
        ("caller → model p50 / p99 (ms)", "up_ms"),
        ("model → caller p50 / p99 (ms)", "down_ms"),
        ("barge-in `speech_started` → RTP audio stops, p50 / p99 (ms)", "barge_ms"),
    ):
        lines.append(f"| {name}, N = {ref} | " + " | ".join(_pair(s[key]) if s else "–" for s in at) + " |")
    lines.append(
        f"| CPU s per call-minute, N = {ref} | "
        + " | ".join(_num(s["cpu_s_per_call_minute"], ".3f") if s else "–" for s in at)
        + " |"
    )
    lines.append(
        f"| lost packets / late frames, N = {ref} | "
        + " | ".join(f"{s['lost_packets']} / {s['late_frames']}" if s else "–" for s in at)
        + " |"
    )
    return lines


def workers_table(report: dict[str, Any]) -> list[str]:
    """--workers 1 against --workers 2, and what 16 cores would carry (on paper, from per-core figures)."""
    entries = [e for e in report["configs"] if e["name"].endswith(("-workers1", "-workers2"))]
    if not entries:
        return []
    cores = report["machine"].get("cores") or 0
    lines = [
        f"Callers and the fake Realtime server run on the same {cores} cores as voxline: the columns "
        "give the cores each used at the largest N carried in real time.",
        "",
        "| configuration | calls in real time | CPU s per call-minute | voxline cores | callers' cores | "
        "fake server's cores | MB per call | processes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    per_core: list[float] = []
    mb: list[float] = []
    idle: list[float] = []
    for e in entries:
        s = _capacity_step(e)
        if s is None:
            lines.append(f"| {e['label']} | – | – | – | – | – | – | – |")
            continue
        c = s["cpu_cores"]
        lines.append(
            f"| {e['label']} | {e['capacity_realtime']} | {_num(s['cpu_s_per_call_minute'], '.3f')} | "
            f"{_num(c.get('sut'), '.2f')} | {_num(c.get('callers'), '.2f')} | {_num(c.get('fake'), '.2f')} | "
            f"{_num(s['mb_per_call'], '.2f')} | {s.get('sut_processes', 1)} |"
        )
        if e["name"].endswith("-workers2") and s["cpu_s_per_call_minute"]:
            per_core.append(60.0 / s["cpu_s_per_call_minute"])
            mb.append(s["mb_per_call"])
            idle.append(s.get("idle_mb_per_process") or 0.0)
    if per_core:
        calls = min(per_core)
        lines += [
            "",
            f"**16 cores, on paper**: one core carries about {calls:.0f} calls by CPU cost with "
            f"`--workers 2` (60 s ÷ the CPU seconds per call-minute, the worse of the two caller kinds); "
            f"`--workers 16` on 16 such cores with nothing else on them: about {16 * calls:.0f} calls, "
            f"{16 * calls * max(mb):.0f} MB of memory for the calls plus {max(idle):.0f} MB per "
            "process idle (17 of them: the supervisor and 16 workers). "
            "Linear scaling is assumed (workers share nothing but the kernel); keep ~30 % headroom "
            "for bursts and the event-loop lag that precedes late frames.",
        ]
    return lines


def metrics_table(report: dict[str, Any]) -> list[str]:
    """CPU per call-minute with telemetry on (the default, /metrics scraped) and off, at every N both ran."""
    by = {e["name"]: e for e in report["configs"]}
    lines = []
    for on_name, label in (("voxline-twilio-g711", "Twilio"), ("voxline-rtp-g711", "SIP/RTP")):
        on, off = by.get(on_name), by.get(f"{on_name}-metrics-off")
        if not on or not off:
            continue
        off_steps = {s["n"]: s for s in off["steps"]}
        for s in on["steps"]:
            o = off_steps.get(s["n"])
            if o is None:
                continue
            a, b = s["cpu_s_per_call_minute"], o["cpu_s_per_call_minute"]
            scrapes = (s.get("metrics_scrapes") or {}).get("ok", 0)
            lines.append(
                f"| {label} | {s['n']} | {_num(a, '.3f')} | {_num(b, '.3f')} | {_ratio(a, b, 3)} | "
                f"{_pair(s['up_ms'])} / {_pair(o['up_ms'])} | {_pair(s['down_ms'])} / {_pair(o['down_ms'])} "
                f"| {scrapes} |"
            )
    if not lines:
        return []
    return [
        "| path | N | CPU s per call-minute, metrics on | metrics off | on ÷ off | caller → model p50 / p99 "
        "(ms), on / off | model → caller p50 / p99 (ms), on / off | scrapes |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
    ]


def srtp_table(report: dict[str, Any]) -> list[str]:
    """CPU per call-minute of SIP/RTP calls with plain RTP and with SRTP, at every N both ran."""
    by = {e["name"]: e for e in report["configs"]}
    plain, srtp = by.get("voxline-rtp-g711"), by.get("voxline-rtp-g711-srtp")
    if not plain or not srtp:
        return []
    lines = []
    srtp_steps = {s["n"]: s for s in srtp["steps"]}
    for s in plain["steps"]:
        o = srtp_steps.get(s["n"])
        if o is None:
            continue
        a, b = s["cpu_s_per_call_minute"], o["cpu_s_per_call_minute"]
        lines.append(
            f"| {s['n']} | {_num(a, '.3f')} | {_num(b, '.3f')} | {_ratio(b, a, 3)} | "
            f"{_pair(s['up_ms'])} / {_pair(o['up_ms'])} | {_pair(s['down_ms'])} / {_pair(o['down_ms'])} |"
        )
    if not lines:
        return []
    return [
        "| N | CPU s per call-minute, plain RTP | SRTP | SRTP ÷ plain | caller → model p50 / p99 (ms), "
        "plain / SRTP | model → caller p50 / p99 (ms), plain / SRTP |",
        "|---|---|---|---|---|---|",
        *lines,
    ]


def gc_table(report: dict[str, Any]) -> list[str]:
    by = {e["name"]: e for e in report["configs"]}
    shipped, frozen = by.get("voxline-twilio-g711"), by.get("voxline-twilio-g711-gcfreeze")
    if not shipped or not frozen:
        return []
    lines = [
        "| N | as shipped: up p99 / down p99 / barge p99 (ms) | late frames | full GCs in window (max ms) "
        "| with gc.freeze(): up p99 / down p99 / barge p99 (ms) | late frames "
        "| full GCs in window (max ms) |",
        "|---|---|---|---|---|---|---|",
    ]

    def cells(s: Step | None) -> str:
        if s is None:
            return "– | – | –"
        w = (s.get("gc") or {}).get("in_window") or {}
        return (
            f"{s['up_ms'].get('p99')} / {s['down_ms'].get('p99')} / {s['barge_ms'].get('p99')} "
            f"| {s['late_frames']} / {s['outbound_frames']} | {w.get('gen2', '–')} ({w.get('max_ms', '–')})"
        )

    for n in sorted({s["n"] for s in shipped["steps"]} | {s["n"] for s in frozen["steps"]}):
        lines.append(f"| {n} | {cells(_step(shipped, n))} | {cells(_step(frozen, n))} |")
    lines.append("")
    return lines


def profile_section(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for entry in report["configs"]:
        prof = entry.get("profile")
        if not prof or not prof.get("top"):
            continue
        top = [t for t in prof["top"] if "function" in t]
        samples = next((t["samples"] for t in prof["top"] if "samples" in t), 0)
        lines += [
            f"#### Profile: {entry['label']}, N = {prof['n']} ({samples} samples)",
            "",
            "| self % | total % | function |",
            "|---|---|---|",
        ]
        lines += [f"| {t['self_pct']} | {t['total_pct']} | `{t['function']}` |" for t in top[:20]]
        lines.append("")
    return lines


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# voxline benchmark report",
        "",
        f"Run {m['date_utc']} UTC, voxline {m['voxline_commit']}, Python {m['python']}, "
        f"{m['cores']} × {m['cpu']}, "
        f"Linux {m['kernel']}, Pipecat {m.get('pipecat') or '–'}.",
        "",
    ]
    lines += comparison(report)
    lines.append("")
    lines += sip_table(report)
    metrics = metrics_table(report)
    if metrics:
        lines += ["", "### Metrics on / off (G.711 paths, same run)", "", *metrics]
    srtp = srtp_table(report)
    if srtp:
        lines += ["", "### SRTP / plain RTP (SIP, G.711, same run)", "", *srtp]
    workers = workers_table(report)
    if workers:
        lines += ["", "### Workers: `--workers 1` and `--workers 2` (same run)", "", *workers]
    gc = gc_table(report)
    if gc:
        lines += ["", "### Garbage collector experiment (Twilio, G.711)", "", *gc]
    lines += ["", "### Every step", ""]
    for entry in report["configs"]:
        lines += steps_table(entry)
    lines += profile_section(report)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
