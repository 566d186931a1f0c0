"""Render a bench JSON report as markdown (``python bench/render.py bench/results/latest.json``)."""

from __future__ import annotations

import json
import sys
from typing import Any


def render(report: dict[str, Any]) -> str:
    lines = ["# bench report", "", "```", json.dumps(report["machine"]), "```", ""]
    for entry in report["configs"]:
        lines.append(f"## {entry['label']} — capacity {entry['capacity']}")
        lines.append("")
        lines.append(
            "| N | up p50/p99 ms | down p50/p99 ms | barge p50/p99 ms | late/frames | gap p99 | CPU s/call-min | calls/core (CPU) | MB/call | cores sut/fake/callers | holds |"
        )
        lines.append("|" + "---|" * 11)
        for r in entry["steps"]:
            c = r["cpu_cores"]
            lines.append(
                f"| {r['n']} | {r['up_ms'].get('p50')}/{r['up_ms'].get('p99')} | {r['down_ms'].get('p50')}/{r['down_ms'].get('p99')} "
                f"| {r['barge_ms'].get('p50')}/{r['barge_ms'].get('p99')} | {r['late_frames']}/{r['outbound_frames']} | {r['gap_p99_ms']} "
                f"| {r['cpu_s_per_call_minute']} | {r['calls_per_core_by_cpu']} | {r['mb_per_call']} "
                f"| {c['sut']}/{c['fake']}/{c['callers']} | {r['holds']} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
