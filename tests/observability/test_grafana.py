"""docs/grafana/voxline.json: valid JSON whose every query uses only metrics of the catalogue, and
PromQL that Prometheus' own promtool accepts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import require_tool
from voxline.observability.prometheus import metric_names
from voxline.telemetry import Telemetry

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "voxline.json"
# Series names of the catalogue; label names and PromQL words never start with these.
METRIC = re.compile(r"\b(?:voxline|process)_[a-z0-9_]+\b")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["panels"], "the dashboard has panels"
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_query_uses_metrics_of_the_catalogue() -> None:
    telemetry = Telemetry()
    telemetry.enable()
    known = metric_names(telemetry)
    used: set[str] = set()
    for expr in expressions():
        names = set(METRIC.findall(expr))
        assert names, f"no voxline metric in {expr!r}"
        assert names <= known, f"{expr!r} uses {sorted(names - known)}, not in the catalogue"
        used |= names
    # Every family of the catalogue has a panel.
    families = {n for n in known if n.startswith("voxline_") and not n.endswith(("_sum", "_count"))}
    shown = {re.sub(r"_(bucket|total)$", "", n) for n in used}
    missing = {n for n in families if re.sub(r"_(bucket|total)$", "", n) not in shown}
    assert missing == set(), f"metrics without a panel: {sorted(missing)}"


def test_promtool_accepts_every_query(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = [
        {"record": f"voxline:panel_query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(expressions())
    ]
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "grafana", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout, result.stdout
