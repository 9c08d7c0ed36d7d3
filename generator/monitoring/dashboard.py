"""The Grafana dashboard: requests, errors against the SLO, latency percentiles per stage, gateway
stage calls (split pipelines), in-flight requests, readiness, model load time and resource use.

One structure for every platform; only the resource panels differ, since the runtime exports no
process metrics: a target passes its own (`resource_panels`; Kubernetes reads the kubelet's
cAdvisor), and hosts use node_exporter's (`host_resources`). Deterministic: panel ids and
positions follow the panel order, uid from the service name.
"""

from __future__ import annotations

from mlgen.monitoring.rules import SLO, slo
from mlgen.spec import ServiceModel

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 12, 8
SCHEMA_VERSION = 39  # Grafana 10.4 / 11


def panel(title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries",
           description: str = "", thresholds: list[tuple[str, float | None]] | None = None) -> dict:
    panel = {
        "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(targets)],
    }
    if thresholds:
        panel["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute", "steps": [{"color": color, "value": value} for color, value in thresholds]}
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return panel


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _traffic(s: SLO) -> list[dict]:
    rate = "$__rate_interval"
    window = f"{s.window_days}d"
    return [
        row("Traffic and errors"),
        panel("Requests per second by route and status",
               [(f"sum by (route, status) (rate(mlgen_requests_total{{{s.job}}}[{rate}]))", "{{route}} {{status}}")],
               unit="reqps"),
        panel("Inference 5xx ratio (alert threshold as line)", [(s.error_ratio_expr(rate), "5xx ratio")],
               unit="percentunit", description=f"The error alert fires above {s.error_ratio:.2%} "
               f"({s.burn_rate:g}x the {s.availability:.3%} availability budget) over 1 h and 5 min.",
               thresholds=[("green", None), ("red", s.error_ratio)]),
        panel(f"Availability over {window} (objective {s.availability:.3%})",
               [(f"1 - ({s.error_ratio_expr(window)})", "availability")], unit="percentunit", kind="stat",
               thresholds=[("red", None), ("green", s.availability)]),
        panel(f"Error budget left over {window}",
               [(f"1 - ({s.error_ratio_expr(window)}) / {1 - s.availability:.6g}", "budget left")],
               unit="percentunit", kind="stat", thresholds=[("red", None), ("orange", 0.25), ("green", 0.5)]),
    ]


def _latency(s: SLO) -> list[dict]:
    rate = "$__rate_interval"
    panels = [
        row("Latency"),
        panel("Inference latency p50 / p90 / p99 (objective as line)",
               [(s.latency_expr(q, rate), f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)], unit="s",
               thresholds=[("green", None), ("red", s.latency_p99_s)]),
        panel("p99 latency per stage and route",
               [(f"histogram_quantile(0.99, sum by (le, stage, route) (rate(mlgen_request_duration_seconds_bucket{{{s.job}}}[{rate}])))",
                 "{{stage}} {{route}}")], unit="s"),
    ]
    if s.split:
        panels += [
            panel("Gateway calls to stages by outcome",
                   [(f"sum by (stage, outcome) (rate(mlgen_gateway_stage_calls_total{{{s.job}}}[{rate}]))",
                     "{{stage}} {{outcome}}")], unit="reqps"),
            panel("Gateway call latency p99 per stage",
                   [(f"histogram_quantile(0.99, sum by (le, stage) (rate(mlgen_gateway_stage_call_duration_seconds_bucket{{{s.job}}}[{rate}])))",
                     "{{stage}}")], unit="s"),
        ]
    return panels


def _health(s: SLO) -> list[dict]:
    return [
        row("Saturation and health"),
        panel("Requests in flight", [(f"sum by (instance, stage) (mlgen_requests_in_flight{{{s.job}}})",
                                       "{{instance}} {{stage}}")]),
        panel("Model ready and scrape up",
               [(f"min by (instance, stage) (mlgen_model_ready{{{s.job}}})", "ready {{instance}} {{stage}}"),
                (f"up{{{s.job}}}", "up {{instance}}")]),
        panel("Model load time", [(f"max by (instance, stage) (mlgen_model_load_seconds{{{s.job}}})",
                                    "{{instance}} {{stage}}")], unit="s"),
    ]


def host_resources() -> list[dict]:
    """CPU and memory of the hosts the service runs on, from node_exporter (job "node")."""
    rate = "$__rate_interval"
    node = 'job="node"'
    return [
        row("Host resources (node_exporter, job=\"node\")"),
        panel("Host CPU busy", [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{{node},mode="idle"}}[{rate}]))',
                                 "{{instance}}")], unit="percentunit"),
        panel("Host memory available", [(f"node_memory_MemAvailable_bytes{{{node}}} / node_memory_MemTotal_bytes{{{node}}}",
                                         "{{instance}}")], unit="percentunit"),
    ]


def dashboard(model: ServiceModel, resource_panels: list[dict]) -> dict:
    """The dashboard JSON (Grafana's import format), ending with the platform's resource panels."""
    s = slo(model)
    panels = _traffic(s) + _latency(s) + _health(s) + [dict(p) for p in resource_panels]
    x = y = 0
    for index, panel in enumerate(panels, start=1):
        panel["id"] = index
        if panel["type"] == "row":
            y += HEIGHT if x else 0
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            x, y = 0, y + 1
            continue
        panel["gridPos"] = {"h": HEIGHT, "w": WIDTH, "x": x, "y": y}
        x, y = (WIDTH, y) if x == 0 else (0, y + HEIGHT)
    return {
        "uid": f"mlgen-{model.name}"[:40],
        "title": f"mlgen {model.name}",
        "description": f"{model.name} {model.version}: generated by mlgen from the spec (docs/monitoring.md)",
        "tags": ["mlgen", model.name],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }
