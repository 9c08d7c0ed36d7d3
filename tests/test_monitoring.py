"""Monitoring in every bundle, checked by Prometheus's own tool: `promtool check config` and
`promtool check rules` accept every generated scrape configuration and rule file (the Kubernetes
PrometheusRule's rules extracted), `promtool test rules` runs unit tests of the alert rules against
synthetic series (generated here for the rendered examples, not shipped), every target carries the
same rules, and every dashboard query names a metric that exists."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool, run_mlgen
from mlgen.monitoring import EXTERNAL_METRICS, RUNTIME_METRICS, metric_names

IRIS = EXAMPLES / "iris" / "spec.yaml"
RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"


def _with_provider(spec: Path, tmp: Path, provider: str) -> Path:
    data = yaml.safe_load(spec.read_text())
    data["targets"]["cloud"] = {**data["targets"].get("cloud", {}), "provider": provider}
    data["targets"]["cloud"].pop("artifact_upload", None) if provider != "aws" else None
    if provider != "aws":
        # The VMs download the bundle (inline, it is over Azure's 64 KB of base64 custom data).
        data["targets"]["cloud"]["artifact_url"] = "https://bundles.example.com/iris/bundle.tar.gz"
        data["targets"]["cloud"].pop("instance_type", None)
        data["targets"]["cloud"]["project"] = "demo-project" if provider == "gcp" else None
        data["targets"]["cloud"] = {k: v for k, v in data["targets"]["cloud"].items() if v is not None}
    copy = spec.parent / f".test-monitoring-{provider}.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Every bundle that carries a Prometheus configuration: onprem, cloud per provider, kubernetes."""
    out = tmp_path_factory.mktemp("monitoring")
    found = {}
    for spec in (IRIS, RECSYS):
        for target in ("onprem", "kubernetes"):
            found[f"{spec.parent.name}/{target}"] = render_spec(spec, target, out / spec.parent.name)
    found["iris/cloud-aws"] = render_spec(IRIS, "cloud", out / "aws")
    for provider in ("gcp", "azure"):
        copy = _with_provider(IRIS, out, provider)
        try:
            found[f"iris/cloud-{provider}"] = render_spec(copy, "cloud", out / provider)
        finally:
            copy.unlink()
    return found


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    promtool = require_tool("promtool")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_checks_every_scrape_config_and_its_rule_file(bundles) -> None:
    for name, bundle in bundles.items():
        config = bundle / "monitoring" / "prometheus.yml"
        result = _promtool("check", "config", str(config))
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "SUCCESS: 1 rule files found" in result.stdout, name
        rules = next((bundle / "monitoring").glob("*.rules.yml"))
        checked = _promtool("check", "rules", str(rules))
        assert checked.returncode == 0 and "SUCCESS" in checked.stdout, f"{name}: {checked.stdout}{checked.stderr}"


def test_the_prometheus_rule_embeds_the_same_rules_and_promtool_accepts_them(bundles, tmp_path) -> None:
    for example in ("recsys-microservices",):
        bundle = bundles[f"{example}/kubernetes"]
        rule = yaml.safe_load((bundle / "base" / "prometheusrule.yaml").read_text())
        assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
        extracted = tmp_path / f"{example}.rules.yml"
        extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = _promtool("check", "rules", str(extracted))
        assert result.returncode == 0, result.stdout + result.stderr
        compose_rules = next((bundle / "monitoring").glob("*.rules.yml"))
        assert rule["spec"]["groups"] == yaml.safe_load(compose_rules.read_text())["groups"]
        monitor = yaml.safe_load((bundle / "base" / "servicemonitor.yaml").read_text())
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"  # job="<name>", as the rules select


def test_every_target_carries_the_same_rules(bundles) -> None:
    def groups(bundle: Path):
        return yaml.safe_load(next((bundle / "monitoring").glob("*.rules.yml")).read_text())["groups"]

    iris = [groups(bundle) for name, bundle in bundles.items() if name.startswith("iris/")]
    assert len(iris) == 5 and all(g == iris[0] for g in iris)
    names = [rule["alert"] for rule in iris[0][0]["rules"]]
    assert names == ["MlgenErrorBudgetBurn", "MlgenLatencyHigh", "MlgenReadinessFlapping", "MlgenNoTraffic",
                     "MlgenModelNotReady", "MlgenTargetDown"]
    recsys = [rule["alert"] for rule in groups(bundles["recsys-microservices/onprem"])[0]["rules"]]
    assert recsys[-1] == "MlgenStageCallsFailing"  # only a split pipeline has stage calls


def test_compose_runs_prometheus_with_the_rules_and_the_stages_as_targets(bundles) -> None:
    bundle = bundles["recsys-microservices/kubernetes"]
    compose = yaml.safe_load((bundle / "compose.yaml").read_text())
    prometheus = compose["services"]["recsys-prometheus"]
    assert "./monitoring:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((bundle / "monitoring" / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    stages = sorted(name for name in compose["services"] if name != "recsys-prometheus")
    assert sorted(t.split(":")[0] for t in targets) == stages


def _dashboard_queries(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]


def test_every_dashboard_parses_and_each_query_names_a_known_metric(bundles) -> None:
    for name, bundle in bundles.items():
        dashboards = [json.loads((bundle / "monitoring" / "dashboard.json").read_text())]
        if name.endswith("/kubernetes"):
            config_map = yaml.safe_load((bundle / "base" / "dashboard.yaml").read_text())
            assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
            dashboards += [json.loads(text) for text in config_map["data"].values()]
            assert dashboards[0] == dashboards[1]
        for dashboard in dashboards:
            queries = _dashboard_queries(dashboard)
            assert len(queries) >= 10 and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
            for query in queries:
                names = metric_names(query)
                assert names, f"{name}: no metric in {query}"
                unknown = names - set(RUNTIME_METRICS) - set(EXTERNAL_METRICS)
                assert not unknown, f"{name}: {query} names {unknown}"
        used = set().union(*(metric_names(q) for q in _dashboard_queries(dashboards[0])))
        assert {"mlgen_requests_total", "mlgen_request_duration_seconds", "mlgen_requests_in_flight",
                "mlgen_model_load_seconds", "mlgen_model_ready"} <= used, name


def test_rule_expressions_name_only_runtime_metrics_and_up(bundles) -> None:
    rules = yaml.safe_load(next((bundles["recsys-microservices/onprem"] / "monitoring").glob("*.rules.yml")).read_text())
    for rule in rules["groups"][0]["rules"]:
        assert metric_names(rule["expr"]) <= set(RUNTIME_METRICS) | {"up"}, rule["alert"]


def test_spec_objectives_and_alert_settings_reach_every_form(tmp_path) -> None:
    """observability.slo/alerts change the thresholds, labels and set of alerts everywhere; values
    outside the schema are refused at the spec's line."""
    from mlgen.monitoring import rule_groups
    from mlgen.targets.serverless.monitoring import azure_metric_alerts, cloudwatch_alarms, gcp_alert_policies
    from mlgen.spec import load_spec

    sets = ("observability.slo.availability_percent=99.9", "observability.slo.latency_p99_ms=250",
            'observability.alerts.disabled=["MlgenNoTraffic"]', 'observability.alerts.labels={"team": "ml"}')
    model = load_spec(IRIS, sets=sets)
    rules = {rule["alert"]: rule for rule in rule_groups(model)[0]["rules"]}
    assert "MlgenNoTraffic" not in rules and rules["MlgenLatencyHigh"]["expr"].endswith("> 0.25")
    assert "> 0.0144)" in rules["MlgenErrorBudgetBurn"]["expr"]  # 14.4 x 0.1%
    assert all(rule["labels"]["team"] == "ml" for rule in rules.values())
    assert "NoTrafficAlarm" not in cloudwatch_alarms(model)
    assert cloudwatch_alarms(model)["LatencyAlarm"]["Properties"]["Threshold"] == 250
    assert not any("no-traffic" in path for path in gcp_alert_policies(model))
    assert [a["name"] for a in azure_metric_alerts(model)] == ["iris-errors", "iris-latency"]
    result = run_mlgen("validate", IRIS, "--set", "observability.alerts.for=5 minutes")
    assert result.returncode == 1 and "observability.alerts.for" in result.stderr + result.stdout
