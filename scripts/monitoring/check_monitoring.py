#!/usr/bin/env python3
"""Checks the Prometheus rules and the Grafana dashboard against what the services export.

    check_monitoring.py --repo . [--promtool promtool]

- The metric names the services export are read from their code: every
  metrics::counter!/gauge!/histogram!("name") in crates/*/src (a histogram whose name ends in
  _seconds has buckets, see common::http::metrics_handle, so it is name_bucket/_sum/_count);
  RabbitMQ's come from scripts/monitoring/rabbitmq-metrics.txt, which bootstrap_check.sh finds
  in a real broker's scrape; plus Prometheus' own `up` and the recording rules' names.
- Every expression of Helm_charts/Monitoring/files/rules.yml and of every dashboard panel may
  only use those names.
- Every dashboard expression, with Grafana's $__rate_interval and friends replaced, goes through
  Prometheus' own parser (`promtool check rules` on a generated rules file).
- The dashboard is well formed: unique panel ids, a datasource and a target on each panel.
Prints what it checked; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "inf", "nan", "Inf", "NaN"}
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${__rate_interval}": "5m"}
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exported_metrics(repo: Path) -> dict[str, str]:
    """Series name -> the crate that exports it."""
    out: dict[str, str] = {}
    pattern = re.compile(r'metrics::(counter|gauge|histogram)!\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
    for path in sorted(repo.glob("crates/*/src/**/*.rs")):
        crate = path.relative_to(repo).parts[1]
        for kind, name in pattern.findall(path.read_text()):
            if kind == "histogram" and name.endswith("_seconds"):
                names = [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
            elif kind == "histogram":
                names = [name, f"{name}_sum", f"{name}_count"]  # a summary without buckets
            else:
                names = [name]
            for n in names:
                out.setdefault(n, crate)
    return out


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, keywords or labels)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"'(?:\\.|[^'\\])*'", "''", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\d+[smhdwy]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![0-9.a-zA-Z_:$])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        token, rest = m.group(0), s[m.end():].lstrip()
        if token in KEYWORDS or rest.startswith("("):
            continue
        names.add(token)
    return names


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def dashboard_targets(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target, rows' nested panels included."""
    out = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if "expr" in target:
                out.append((f"panel {panel.get('id')} '{panel.get('title')}' {target.get('refId')}", target["expr"]))
    return out


def promtool_parse(promtool: str, exprs: list[tuple[str, str]]) -> list[str]:
    """Problems Prometheus' parser finds in the expressions (one generated rule each)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump(rules, f)
        f.flush()
        res = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    if res.returncode == 0:
        return []
    problems = []
    for line in (res.stdout + res.stderr).splitlines():
        m = re.search(r"dashboard:expr_(\d+)", line)
        where = exprs[int(m.group(1))][0] if m else ""
        if "error" in line.lower() or "parse" in line.lower():
            problems.append(f"{where}: {line.strip()}".strip(": "))
    return problems or [res.stdout + res.stderr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()
    repo = args.repo.resolve()
    mon = repo / "Helm_charts/Monitoring/files"
    problems: list[str] = []

    exported = exported_metrics(repo)
    rabbit = {line.strip() for line in (repo / "scripts/monitoring/rabbitmq-metrics.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    rules = yaml.safe_load((mon / "rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    known = set(exported) | rabbit | PROMETHEUS_OWN | recorded
    if not exported:
        problems.append("no metrics::counter!/gauge!/histogram! found in crates/*/src (moved?)")

    used: dict[str, set[str]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            for metric in metric_names(rule["expr"]):
                used.setdefault(metric, set()).add(f"rules.yml {name}")
                if metric not in known:
                    problems.append(f"rules.yml {name}: {metric} is exported by no service and recorded by no rule")

    dashboard = json.loads((mon / "dashboard.json").read_text())
    targets = dashboard_targets(dashboard)
    ids = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        ids.append(panel.get("id"))
        if panel.get("type") != "row":
            if not panel.get("datasource") or not panel.get("targets"):
                problems.append(f"panel {panel.get('id')} '{panel.get('title')}': no datasource or no targets")
    if len(ids) != len(set(ids)):
        problems.append(f"dashboard: duplicate panel ids {sorted(ids)}")
    if not targets:
        problems.append("dashboard: no panel queries anything")
    for where, expr in targets:
        for metric in metric_names(grafana_to_promql(expr)):
            used.setdefault(metric, set()).add(f"dashboard {where}")
            if metric not in known:
                problems.append(f"dashboard {where}: {metric} is exported by no service and recorded by no rule")
        leftover = re.findall(r"\$\{?\w+\}?", grafana_to_promql(expr))
        if leftover:
            problems.append(f"dashboard {where}: unknown Grafana variable {leftover}")
    problems += promtool_parse(args.promtool, [(w, grafana_to_promql(e)) for w, e in targets])

    print(f"exported by the services: {len(exported)} series names ({', '.join(sorted(set(exported.values())))}); "
          f"RabbitMQ: {len(rabbit)}; recording rules: {len(recorded)}")
    print(f"rules.yml: {sum(len(g['rules']) for g in rules['groups'])} rules; dashboard: {len(ids)} panels, "
          f"{len(targets)} queries parsed by promtool")
    unused = sorted(n for n in exported if n not in used and not n.endswith(("_count", "_bucket")))
    if unused:
        print(f"(exported but on no panel or rule: {', '.join(unused)})")
    for p in problems:
        print(f"FAIL {p}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
