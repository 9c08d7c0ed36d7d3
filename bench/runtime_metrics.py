"""Per-request cost of recording metrics: mlgen_runtime's hand-rolled Metrics vs prometheus_client
doing the same (one counter with route/stage/status, one histogram, one in-flight gauge).
    python bench/runtime_metrics.py"""

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "generator" / "runtime"))

import prometheus_client  # noqa: E402

from mlgen_runtime.metrics import LATENCY_BUCKETS, Metrics  # noqa: E402

ours = Metrics("all")
registry = prometheus_client.CollectorRegistry()
requests = prometheus_client.Counter("r", "r", ["route", "stage", "status"], registry=registry)
durations = prometheus_client.Histogram("d", "d", ["route", "stage"], buckets=LATENCY_BUCKETS, registry=registry)
in_flight = prometheus_client.Gauge("f", "f", ["stage"], registry=registry)


def record_ours():
    ours.request_started()
    ours.request_finished("v2_infer", 200, 0.0012)


def record_prometheus_client():
    in_flight.labels("all").inc()
    in_flight.labels("all").dec()
    requests.labels("v2_infer", "all", "200").inc()
    durations.labels("v2_infer", "all").observe(0.0012)


for name, function in (("mlgen_runtime.metrics", record_ours), ("prometheus_client", record_prometheus_client)):
    seconds = min(timeit.repeat(function, number=100_000, repeat=5)) / 100_000
    print(f"{name:22} {seconds * 1e6:.2f} µs per request")
