"""`promtool test rules`: the generated alert rules run against synthetic series. An error burst
fires the error-budget alert, normal traffic fires nothing, a model that never loads fires
MlgenModelNotReady and (once the process keeps exiting) MlgenTargetDown, slow answers fire
MlgenLatencyHigh, silence fires MlgenNoTraffic, and a failing stage MlgenStageCallsFailing.
The test cases are generated here for the rendered examples; bundles do not ship them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from helpers import EXAMPLES, render_spec, require_tool
from mlgen.monitoring import ALERTS

INSTANCE = "10.0.0.5:8080"
MINUTES = 90
BUCKETS = ("0.005", "0.05", "0.5", "1", "2.5", "+Inf")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _requests(job: str, status: str, per_minute: int, stage: str = "all", start: int = 0, route: str = "v2_infer") -> dict:
    """A counter growing by per_minute from minute `start` (0 before)."""
    series = f"0x{start} {per_minute}+{per_minute}x{MINUTES - start - 1}" if start else f"0+{per_minute}x{MINUTES}"
    return {"series": "mlgen_requests_total" + _labels(job=job, instance=INSTANCE, route=route, stage=stage, status=status),
            "values": series}


def _latency(job: str, per_minute: int, slowest_bucket: str, stage: str = "all") -> list[dict]:
    """Every request lands in `slowest_bucket`: cumulative buckets below it stay 0."""
    return [{"series": "mlgen_request_duration_seconds_bucket" + _labels(job=job, instance=INSTANCE, route="v2_infer",
                                                                          stage=stage, le=le),
             "values": f"0+{per_minute if float(le) >= float(slowest_bucket) else 0}x{MINUTES}"} for le in BUCKETS]


def _gauge(name: str, job: str, values: str, **labels: str) -> dict:
    return {"series": name + _labels(job=job, instance=INSTANCE, **labels), "values": values}


def _healthy(job: str, stage: str) -> list[dict]:
    return [_gauge("up", job, f"1x{MINUTES}"), _gauge("mlgen_model_ready", job, f"1x{MINUTES}", stage=stage)]


def _expected(rules: dict, alert: str, value: str, **labels: str) -> dict:
    """The alert as promtool reports it: the rule's labels plus the series' and its annotations
    with the template fields filled the way Prometheus fills them."""
    rule = next(r for r in rules["groups"][0]["rules"] if r["alert"] == alert)

    def fill(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        return re.sub(r"\{\{ \$value[^}]*\}\}", value, text)

    return {"exp_labels": {**rule["labels"], **labels},
            "exp_annotations": {key: fill(text) for key, text in rule["annotations"].items()}}


def _cases(rules: dict, job: str, split: bool) -> list[dict]:
    entry = "gateway" if split else "all"
    ok = _requests(job, "200", 60, entry)
    fast = _latency(job, 60, "0.05", entry)
    never_fire = [{"eval_time": "90m", "alertname": name, "exp_alerts": []} for name in ALERTS]
    cases = [
        {"name": "normal traffic fires nothing",  # 1 error in 1000, answers within 50 ms
         "input_series": [_requests(job, "200", 999, entry), _requests(job, "500", 1, entry), *fast, *_healthy(job, entry)],
         "alert_rule_test": never_fire},
        {"name": "an error burst fires the error budget alert",  # half the requests fail from minute 30
         "input_series": [ok, _requests(job, "500", 60, entry, start=30), *fast, *_healthy(job, entry)],
         "alert_rule_test": [
             {"eval_time": "20m", "alertname": "MlgenErrorBudgetBurn", "exp_alerts": []},
             {"eval_time": "90m", "alertname": "MlgenErrorBudgetBurn",
              "exp_alerts": [_expected(rules, "MlgenErrorBudgetBurn", "50%")]},
             {"eval_time": "90m", "alertname": "MlgenLatencyHigh", "exp_alerts": []}]},
        {"name": "slow answers fire the latency alert",  # answers take 0.5-1 s: p99 interpolates to 995 ms, over the 500 ms objective
         "input_series": [ok, *_latency(job, 60, "1", entry), *_healthy(job, entry)],
         "alert_rule_test": [{"eval_time": "90m", "alertname": "MlgenLatencyHigh",
                              "exp_alerts": [_expected(rules, "MlgenLatencyHigh", "995ms")]},
                             {"eval_time": "90m", "alertname": "MlgenErrorBudgetBurn", "exp_alerts": []}]},
        {"name": "a model that never loads fires not-ready, then target-down once the process keeps exiting",
         # minutes 0-40: the process answers /metrics but the model never loads; then it crash-loops (up 0)
         "input_series": [_gauge("mlgen_model_ready", job, f"0x40 _x{MINUTES - 41}", stage=entry),
                          _gauge("up", job, f"1x40 0x{MINUTES - 41}")],
         "alert_rule_test": [
             {"eval_time": "5m", "alertname": "MlgenModelNotReady", "exp_alerts": []},
             {"eval_time": "30m", "alertname": "MlgenModelNotReady",
              "exp_alerts": [_expected(rules, "MlgenModelNotReady", "0", instance=INSTANCE, job=job, stage=entry)]},
             {"eval_time": "30m", "alertname": "MlgenTargetDown", "exp_alerts": []},
             {"eval_time": "60m", "alertname": "MlgenTargetDown",
              "exp_alerts": [_expected(rules, "MlgenTargetDown", "0", instance=INSTANCE, job=job)]}]},
        {"name": "silence fires no-traffic",
         "input_series": [_requests(job, "200", 0, entry), *_healthy(job, entry)],
         "alert_rule_test": [{"eval_time": "90m", "alertname": "MlgenNoTraffic",
                              "exp_alerts": [_expected(rules, "MlgenNoTraffic", "0")]}]},
        {"name": "restarts make readiness flap",  # ready 1, 0, 1, ... every 2 minutes
         "input_series": [_gauge("mlgen_model_ready", job, " ".join(["1 1 0 0"] * 22) + " 1 1 1", stage=entry), ok],
         "alert_rule_test": [{"eval_time": "60m", "alertname": "MlgenReadinessFlapping",
                              "exp_alerts": [_expected(rules, "MlgenReadinessFlapping", "8", instance=INSTANCE,
                                                       job=job, stage=entry)]}]},
    ]
    if split:
        cases.append({"name": "a failing stage fires stage-calls-failing",
                      "input_series": [{"series": "mlgen_gateway_stage_calls_total" + _labels(job=job, instance=INSTANCE, stage="predict", outcome="200"),
                                        "values": f"0+60x{MINUTES}"},
                                       {"series": "mlgen_gateway_stage_calls_total" + _labels(job=job, instance=INSTANCE, stage="predict", outcome="timeout"),
                                        "values": f"0+60x{MINUTES}"}],
                      "alert_rule_test": [{"eval_time": "30m", "alertname": "MlgenStageCallsFailing",
                                           "exp_alerts": [_expected(rules, "MlgenStageCallsFailing", "50%", stage="predict")]}]})
    return cases


def _run_rule_tests(spec: Path, tmp_path: Path, split: bool) -> str:
    promtool = require_tool("promtool")
    bundle = render_spec(spec, "onprem", tmp_path)
    rules_file = next((bundle / "monitoring").glob("*.rules.yml"))
    rules = yaml.safe_load(rules_file.read_text())
    job = rules["groups"][0]["rules"][0]["labels"]["service"]
    tests = tmp_path / "rules_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                     "tests": [{"interval": "1m", **case} for case in _cases(rules, job, split)]},
                                    sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_iris_alert_rules_fire_on_failures_and_stay_quiet_on_normal_traffic(tmp_path) -> None:
    assert "SUCCESS" in _run_rule_tests(EXAMPLES / "iris" / "spec.yaml", tmp_path, split=False)


def test_split_pipeline_rules_watch_the_gateway_and_its_stages(tmp_path) -> None:
    assert "SUCCESS" in _run_rule_tests(EXAMPLES / "recsys-microservices" / "spec.yaml", tmp_path, split=True)
