"""Prometheus metrics, exposed on /metrics in the text exposition format (0.0.4).

Hand-rolled instead of prometheus_client: the runtime needs three counters, a gauge and two
histograms, and a bundle should not carry one more dependency for that. Recording is one lock and a
few dict operations per request (~1 µs); prometheus_client's labels().observe() costs several times
that on the hot path (see bench/runtime_metrics.py). With `workers` > 1 each worker process keeps
its own numbers; scrape with one worker per container or accept per-worker samples.

Every metric is listed in docs/runtime.md; monitoring rules are generated from that list.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HELP = {
    "mlgen_requests_total": ("counter", "Requests answered, by route, stage and HTTP status."),
    "mlgen_request_duration_seconds": ("histogram", "Time from request received to response ready, by route and stage."),
    "mlgen_requests_in_flight": ("gauge", "Requests being handled right now."),
    "mlgen_model_load_seconds": ("gauge", "Seconds it took to load the model and handlers at startup."),
    "mlgen_model_ready": ("gauge", "1 when the service is ready to serve inference, else 0."),
    "mlgen_model_info": ("gauge", "1, labelled with the version of the model the service serves (model.version)."),
    "mlgen_model_execution_provider": ("gauge", "1 for what the model computes on: the ONNX Runtime execution provider it got, cpu or handler."),
    "mlgen_batches_total": ("counter", "Model calls made by adaptive batching."),
    "mlgen_batched_rows_total": ("counter", "Rows (first-dimension entries) those model calls computed; over mlgen_batches_total: the mean batch size."),
    "mlgen_gateway_stage_calls_total": ("counter", "Calls from the gateway to a stage service, by stage and outcome."),
    "mlgen_gateway_stage_call_duration_seconds": ("histogram", "Duration of gateway calls to a stage service, by stage."),
    "mlgen_auth_failures_total": ("counter", "Requests refused for their credentials, by reason: missing, invalid, expired, forbidden, unavailable."),
}


class _Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.count += 1


class Metrics:
    def __init__(self, stage: str, enabled: bool = True) -> None:
        self.stage = stage
        self.enabled = enabled
        self.in_flight = 0
        self.model_load_seconds = 0.0
        self.model_ready = 0
        self.execution_provider: str | None = None
        self.model_version: str | None = None
        self.batches = 0
        self.batched_rows = 0
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._stage_calls: dict[tuple[str, str], int] = {}
        self._stage_durations: dict[str, _Histogram] = {}
        self._auth_failures: dict[str, int] = {}

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def request_finished(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        with self._lock:
            self.in_flight -= 1
            requests = self._requests
            requests[key] = requests.get(key, 0) + 1
            histogram = self._durations.get(route)
            if histogram is None:
                histogram = self._durations[route] = _Histogram()
            histogram.observe(seconds)

    def batch_ran(self, rows: int) -> None:
        with self._lock:
            self.batches += 1
            self.batched_rows += rows

    def auth_failed(self, reason: str) -> None:
        with self._lock:
            self._auth_failures[reason] = self._auth_failures.get(reason, 0) + 1

    def stage_call(self, stage: str, outcome: str, seconds: float) -> None:
        with self._lock:
            _count(self._stage_calls, (stage, outcome), self._stage_durations, stage, seconds)

    def exposition(self) -> bytes:
        stage = _escape(self.stage)
        lines: list[str] = []
        with self._lock:
            _header(lines, "mlgen_requests_total")
            for (route, status), count in sorted(self._requests.items()):
                lines.append(f'mlgen_requests_total{{route="{route}",stage="{stage}",status="{status}"}} {count}')
            _header(lines, "mlgen_request_duration_seconds")
            for route, histogram in sorted(self._durations.items()):
                _histogram_lines(lines, "mlgen_request_duration_seconds", f'route="{route}",stage="{stage}"', histogram)
            _header(lines, "mlgen_requests_in_flight")
            lines.append(f'mlgen_requests_in_flight{{stage="{stage}"}} {self.in_flight}')
            _header(lines, "mlgen_model_load_seconds")
            lines.append(f'mlgen_model_load_seconds{{stage="{stage}"}} {self.model_load_seconds!r}')
            _header(lines, "mlgen_model_ready")
            lines.append(f'mlgen_model_ready{{stage="{stage}"}} {self.model_ready}')
            if self.model_version is not None:
                _header(lines, "mlgen_model_info")
                lines.append(f'mlgen_model_info{{stage="{stage}",version="{_escape(self.model_version)}"}} 1')
            if self.execution_provider is not None:
                _header(lines, "mlgen_model_execution_provider")
                lines.append(f'mlgen_model_execution_provider{{stage="{stage}",provider="{_escape(self.execution_provider)}"}} 1')
            _header(lines, "mlgen_batches_total")
            lines.append(f'mlgen_batches_total{{stage="{stage}"}} {self.batches}')
            _header(lines, "mlgen_batched_rows_total")
            lines.append(f'mlgen_batched_rows_total{{stage="{stage}"}} {self.batched_rows}')
            _header(lines, "mlgen_gateway_stage_calls_total")
            for (target, outcome), count in sorted(self._stage_calls.items()):
                lines.append(f'mlgen_gateway_stage_calls_total{{stage="{target}",outcome="{outcome}"}} {count}')
            _header(lines, "mlgen_gateway_stage_call_duration_seconds")
            for target, histogram in sorted(self._stage_durations.items()):
                _histogram_lines(lines, "mlgen_gateway_stage_call_duration_seconds", f'stage="{target}"', histogram)
            _header(lines, "mlgen_auth_failures_total")
            for reason, count in sorted(self._auth_failures.items()):
                lines.append(f'mlgen_auth_failures_total{{stage="{stage}",reason="{reason}"}} {count}')
        lines.append("")
        return "\n".join(lines).encode()


def _count(counters: dict, key: tuple, histograms: dict, series: str, seconds: float) -> None:
    counters[key] = counters.get(key, 0) + 1
    histogram = histograms.get(series)
    if histogram is None:
        histogram = histograms[series] = _Histogram()
    histogram.observe(seconds)


def _header(lines: list[str], name: str) -> None:
    kind, text = HELP[name]
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def _histogram_lines(lines: list[str], name: str, labels: str, histogram: _Histogram) -> None:
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, histogram.counts):
        cumulative += count
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {histogram.count}')
    lines.append(f"{name}_sum{{{labels}}} {histogram.total!r}")
    lines.append(f"{name}_count{{{labels}}} {histogram.count}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
