"""The metric names monitoring may use: the runtime's own (docs/runtime.md, "Metrics"; checked
against a running server's /metrics by tests/test_monitoring_runtime.py) and the few a platform's
standard exporters provide, each with where it comes from."""

from __future__ import annotations

import re

# name → type, as the runtime exports them (generator/runtime/mlgen_runtime/metrics.py HELP).
RUNTIME_METRICS = {
    "mlgen_requests_total": "counter",
    "mlgen_request_duration_seconds": "histogram",
    "mlgen_requests_in_flight": "gauge",
    "mlgen_model_load_seconds": "gauge",
    "mlgen_model_ready": "gauge",
    "mlgen_gateway_stage_calls_total": "counter",
    "mlgen_gateway_stage_call_duration_seconds": "histogram",
    "mlgen_auth_failures_total": "counter",
}

# Metrics from outside the runtime: what provides them, so an operator knows what to run.
EXTERNAL_METRICS = {
    "up": "Prometheus itself: 1 when the last scrape of a target succeeded",
    "container_cpu_usage_seconds_total": "the kubelet's cAdvisor endpoint (kube-prometheus-stack scrapes it)",
    "container_memory_working_set_bytes": "the kubelet's cAdvisor endpoint (kube-prometheus-stack scrapes it)",
    "kube_pod_container_status_restarts_total": "kube-state-metrics (kube-prometheus-stack installs it)",
    "node_cpu_seconds_total": "node_exporter on the host (Debian: prometheus-node-exporter, port 9100)",
    "node_memory_MemAvailable_bytes": "node_exporter on the host (Debian: prometheus-node-exporter, port 9100)",
    "node_memory_MemTotal_bytes": "node_exporter on the host (Debian: prometheus-node-exporter, port 9100)",
}

# Every series selector in the generated queries is written `name{…}`, so this finds them all.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric families a PromQL expression reads (histogram series folded into their family)."""
    names = set()
    for name in _SELECTOR.findall(expr):
        for suffix in _HISTOGRAM_SUFFIXES:
            family = name.removesuffix(suffix)
            if family != name and RUNTIME_METRICS.get(family) == "histogram":
                name = family
        names.add(name)
    return names
