"""The alert rules, as one Python structure every target dumps (Prometheus rule-file format).

Each alert watches something an operator must act on, expressed only with metrics the runtime
exports (plus Prometheus's own `up`): error budget burn, p99 latency over the objective, readiness
flapping, no traffic, a model that never becomes ready (load failures: the runtime exits 1 and
systemd or Kubernetes restarts it), a scrape target that is down, and for split pipelines a stage
the gateway cannot use. Every selector carries `job="<name>"`: the scrape configurations mlgen
renders (and the ServiceMonitor's jobLabel) name the job after the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgen.spec import ServiceModel

INFER_ROUTES = "v2_infer|v1_predict"
ENTRY_STAGES = "all|gateway"  # the process that answers clients: collocated server or gateway
SERVER_ERRORS = "5.."
# Gateway call outcomes that mean the stage failed (a 4xx is the client's, passed on).
STAGE_FAILURES = "5..|unavailable|timeout|bad_response|error"
FLAP_WINDOW = "15m"
DOWN_WINDOW = "5m"

ALERTS = ("MlgenErrorBudgetBurn", "MlgenLatencyHigh", "MlgenReadinessFlapping", "MlgenNoTraffic",
          "MlgenModelNotReady", "MlgenTargetDown", "MlgenStageCallsFailing")


@dataclass(frozen=True)
class SLO:
    """Objectives and alert thresholds of one service (the spec's observability.slo/alerts)."""

    service: str
    availability: float  # 0.995
    latency_p99_s: float
    window_days: int
    burn_rate: float
    error_ratio: float  # the error alert's threshold: burn_rate × error budget
    latency_for: str
    no_traffic_for: str
    not_ready_for: str
    flap_changes: int
    disabled: frozenset[str]
    labels: dict[str, str]
    split: bool  # a gateway calls stage services

    @property
    def job(self) -> str:
        return f'job="{self.service}"'

    @property
    def inference(self) -> str:
        """Selector of the inference requests clients sent to the entry stage."""
        return self.inference_of(ENTRY_STAGES)

    def inference_of(self, stages: str, extra: str = "") -> str:
        """Selector of the inference requests the `stages` (a regex) answered, narrowed by `extra`
        matchers (a release's analysis: `,rollouts_pod_template_hash="…"`, the new version's pods)."""
        return f'{self.job},route=~"{INFER_ROUTES}",stage=~"{stages}"{extra}'

    def error_ratio_expr(self, window: str, selector: str | None = None) -> str:
        selector = selector or self.inference
        requests = f"mlgen_requests_total{{{selector}}}"
        errors = f'mlgen_requests_total{{{selector},status=~"{SERVER_ERRORS}"}}'
        return f"sum(rate({errors}[{window}])) / sum(rate({requests}[{window}]))"

    def latency_expr(self, quantile: float, window: str, by: str = "le", selector: str | None = None) -> str:
        return (f"histogram_quantile({quantile}, sum by ({by}) "
                f"(rate(mlgen_request_duration_seconds_bucket{{{selector or self.inference}}}[{window}])))")


def slo(model: ServiceModel) -> SLO:
    objectives, alerts = model.observability.slo, model.observability.alerts
    availability = objectives["availability_percent"] / 100
    burn = alerts["burn_rate"]
    return SLO(
        service=model.name,
        availability=availability,
        latency_p99_s=objectives["latency_p99_ms"] / 1000,
        window_days=objectives["window_days"],
        burn_rate=burn,
        error_ratio=round(burn * (1 - availability), 6),
        latency_for=alerts["for"],
        no_traffic_for=alerts["no_traffic_for"],
        not_ready_for=alerts["not_ready_for"],
        flap_changes=alerts["flap_changes"],
        disabled=frozenset(alerts["disabled"]),
        labels=dict(sorted(alerts["labels"].items())),
        split=model.pipeline.split,
    )


def rule_groups(model: ServiceModel) -> list[dict]:
    """`groups:` of a Prometheus rule file (also the PrometheusRule's spec.groups)."""
    s = slo(model)
    rules = [_alert(s, name, **fields) for name, fields in _alerts(s).items() if name not in s.disabled]
    return [{"name": f"mlgen-{s.service}", "rules": rules}]


def _alerts(s: SLO) -> dict[str, dict]:
    percent = f"{s.availability * 100:g}%"
    alerts = {
        "MlgenErrorBudgetBurn": dict(
            # Multiwindow burn rate (Google SRE workbook): the last hour says it is real, the last
            # five minutes that it is still going on.
            expr=f"({s.error_ratio_expr('1h')} > {s.error_ratio:g}) and ({s.error_ratio_expr('5m')} > {s.error_ratio:g})",
            for_="2m", severity="critical",
            summary=f"{s.service}: 5xx answers spend the {percent} availability budget {s.burn_rate:g}x too fast",
            description=f"{{{{ $value | humanizePercentage }}}} of inference requests failed with a 5xx in the last 5 minutes "
                        f"(threshold {s.error_ratio:.2%}); the runtime's log has the tracebacks."),
        "MlgenLatencyHigh": dict(
            expr=f"{s.latency_expr(0.99, '5m')} > {s.latency_p99_s:g}", for_=s.latency_for, severity="warning",
            summary=f"{s.service}: p99 inference latency over the {s.latency_p99_s * 1000:g} ms objective",
            description="p99 latency is {{ $value | humanizeDuration }}: look at in-flight requests and CPU, "
                        "or add replicas."),
        "MlgenReadinessFlapping": dict(
            expr=f"changes(mlgen_model_ready{{{s.job}}}[{FLAP_WINDOW}]) > {s.flap_changes}", for_="0s", severity="warning",
            summary=f"{s.service}: readiness of {{{{ $labels.instance }}}} changed {{{{ $value }}}} times in {FLAP_WINDOW}",
            description="The process keeps restarting or losing its model: check its log for exits and out-of-memory kills."),
        "MlgenNoTraffic": dict(
            expr=f"(sum(rate(mlgen_requests_total{{{s.inference}}}[{s.no_traffic_for}])) or vector(0)) == 0",
            for_="0s", severity="warning",
            summary=f"{s.service}: no inference requests for {s.no_traffic_for}",
            description="Clients may not reach the service (DNS, load balancer, ingress, credentials), or the "
                        "scrape stopped. Disable MlgenNoTraffic in observability.alerts.disabled if quiet periods are normal."),
        "MlgenModelNotReady": dict(
            expr=f"max_over_time(mlgen_model_ready{{{s.job}}}[{s.not_ready_for}]) == 0", for_=s.not_ready_for,
            severity="critical",
            summary=f"{s.service}: {{{{ $labels.instance }}}} has not been ready for {s.not_ready_for}",
            description="The model failed to load (the runtime exits 1 and is restarted: sha256 mismatch, "
                        "handler import error, wrong ONNX names) or loading hangs; the reason is in the log."),
        "MlgenTargetDown": dict(
            expr=f"avg_over_time(up{{{s.job}}}[{DOWN_WINDOW}]) < 0.5", for_=DOWN_WINDOW, severity="critical",
            summary=f"{s.service}: {{{{ $labels.instance }}}} is down or crash-looping",
            description="Prometheus could not scrape /metrics most of the last 5 minutes: the process exited "
                        "(a model that cannot load exits 1), is restarting, or the network path is blocked."),
    }
    if s.split:
        calls = f"mlgen_gateway_stage_calls_total{{{s.job}}}"
        failed = f'mlgen_gateway_stage_calls_total{{{s.job},outcome=~"{STAGE_FAILURES}"}}'
        alerts["MlgenStageCallsFailing"] = dict(
            expr=f"sum by (stage) (rate({failed}[5m])) / sum by (stage) (rate({calls}[5m])) > {s.error_ratio:g}",
            for_="5m", severity="critical",
            summary=f"{s.service}: the gateway's calls to {{{{ $labels.stage }}}} fail",
            description="{{ $value | humanizePercentage }} of calls to the stage were unavailable, timed out or "
                        "failed: check that stage's pods and log.")
    return alerts


def _alert(s: SLO, name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict:
    rule = {"alert": name, "expr": expr}
    if for_ != "0s":
        rule["for"] = for_
    rule["labels"] = {**s.labels, "service": s.service, "severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule
