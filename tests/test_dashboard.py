"""The Grafana dashboard (deploy/grafana-dashboard.json) against the metrics the service defines
(serve_app/metrics.py): valid JSON with its five panels, and every metric its queries name one
that metrics.py defines, of the kind the query reads it as, so the two cannot drift apart
silently. No Ray: both files are read as text."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
METRICS = ROOT / "serve_app" / "metrics.py"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANELS = [
    "Time to first audio (p50, p95)",
    "Real-time throughput: audio seconds made per second",
    "Streams playing and waiting; shed per second",
    "Requests by status; 5xx ratio; sentences retried",
    "Bottleneck block: p95 queue wait and compute, chunks per call",
]
#: What Ray's Prometheus export appends to a metric's name, by kind.
SUFFIXES = {"Histogram": ("_bucket", "_sum", "_count"), "Counter": ("_total",), "Gauge": ("",)}
_DEFINED = re.compile(r"\b(Histogram|Counter|Gauge)\(\s*PREFIX \+ \"(\w+)\"")
_USED = re.compile(r"\bray_(voicestack_\w+)")


def defined() -> dict[str, str]:
    """{name as metrics.py defines it (with its `voicestack_` prefix): its kind}."""
    text = METRICS.read_text()
    prefix = re.search(r'^PREFIX = "(\w+)"$', text, re.MULTILINE)[1]
    return {prefix + name: kind for kind, name in _DEFINED.findall(text)}


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression in the dashboard: its panels' targets and its variables'."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_metrics_py_is_read_whole():
    """The parse sees every metric metrics.py makes (each `=Histogram(`, `=Counter(`...)."""
    kinds = defined()
    assert len(kinds) == len(re.findall(r"=(?:Histogram|Counter|Gauge)\(", METRICS.read_text()))
    assert kinds["voicestack_block_compute_seconds"] == "Histogram"
    assert kinds["voicestack_characters"] == "Counter"
    assert kinds["voicestack_streams_playing"] == "Gauge"


def test_the_dashboard_is_valid_json_with_its_five_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert [(i["name"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "prometheus")
    ]
    (voice,) = dashboard["templating"]["list"]
    assert voice["name"] == "voice" and voice["datasource"] == DATASOURCE
    assert voice["query"]["query"] == "label_values(ray_voicestack_requests_total, voice)"
    panels = dashboard["panels"]
    assert [p["title"] for p in panels] == PANELS
    assert {p["type"] for p in panels} == {"timeseries"}
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip()
            # Per-voice series follow the picker; per-block ones follow it by application.
            assert "$voice" in target["expr"], target["expr"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_every_metric_the_dashboard_queries_is_one_metrics_py_defines():
    kinds = defined()
    exported = {base + suffix: base for base, kind in kinds.items() for suffix in SUFFIXES[kind]}
    exprs = queries(json.loads(DASHBOARD.read_text()))
    used = {name for expr in exprs for name in _USED.findall(expr)}
    unknown = sorted(used - exported.keys())
    assert unknown == [], f"not defined in serve_app/metrics.py (as that kind): {unknown}"
    # The five panels read every metric but the chunk gap and the RTF (docs/metrics.md has them).
    read = {exported[name] for name in used}
    assert set(kinds) - read == {"voicestack_chunk_gap_seconds", "voicestack_stream_rtf"}
