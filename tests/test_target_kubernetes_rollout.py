"""Kubernetes releases with Argo Rollouts (rollout: canary or blue_green), checked by what would
consume them: each Rollout and the AnalysisTemplate against Argo Rollouts' CRD schemas (no field
the schema does not declare), the built-in kinds with kubernetes-validate --strict, every layer
built by kubectl kustomize (the overlays patch the Rollouts), checkov with nothing failed, and the
analysis queries run by promtool on series where the new version's errors or latency cross the
gate, and where only the old version's do. A plain spec keeps its Deployments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool, run_mlgen
from test_target_kubernetes import KUBERNETES_VERSIONS, checkov, kustomize
from test_target_kubernetes_flavors import OPERATOR_KINDS, SCHEMAS, check_custom_resource

from mlgen.monitoring.rules import slo
from mlgen.spec import load_spec

RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"
IRIS = EXAMPLES / "iris" / "spec.yaml"
ROLLOUT_API = "argoproj.io/v1alpha1"
# name → (spec, --set arguments)
RELEASES = {
    "recsys-canary": (RECSYS, ["rollout.strategy=canary", "targets.kubernetes.service_monitor=true"]),
    "recsys-bluegreen": (RECSYS, ["rollout.strategy=blue_green", "rollout.preview=10m",
                                  "targets.kubernetes.service_monitor=true"]),
    "iris-canary": (IRIS, ["rollout.strategy=canary", "rollout.steps=[{weight: 25, pause: 90s}, {weight: 100}]",
                           "rollout.analysis={max_error_percent: 2, max_latency_p99_ms: 300, interval: 30s}",
                           "targets.kubernetes.service_monitor=true"]),
    "iris-bluegreen-keda": (IRIS, ["rollout.strategy=blue_green", "targets.kubernetes.autoscaling=keda",
                                   "targets.kubernetes.service_monitor=true",
                                   "targets.kubernetes.prometheus_url=http://prometheus.observability.svc:9090"]),
}
LAYERS = ("base", "overlays/dev", "overlays/prod")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("rollouts")
    return {name: render_spec(spec, "kubernetes", tmp / name, sets=sets) for name, (spec, sets) in RELEASES.items()}


@pytest.fixture(scope="module")
def built(bundles) -> dict[str, list[dict]]:
    return {f"{name}:{layer}": kustomize(bundle / layer) for name, bundle in bundles.items() for layer in LAYERS}


def of_kind(documents: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def test_every_stage_is_a_rollout_and_every_layer_matches_the_crds(built):
    for key, documents in built.items():
        assert not of_kind(documents, "Deployment"), key
        custom = [d for d in documents if check_custom_resource(d, key)]
        assert {d["kind"] for d in custom if d["apiVersion"] == ROLLOUT_API} == {"Rollout", "AnalysisTemplate"}, key
    assert set(of_kind(built["recsys-canary:base"], "Rollout")) == {
        "recsys-gateway", "recsys-preprocess", "recsys-predict", "recsys-postprocess"}


def test_built_in_kinds_pass_kubernetes_validate_strict(built, tmp_path):
    validate = require_tool("kubernetes-validate")
    files = []
    for key, documents in built.items():
        kept = [d for d in documents if (d["apiVersion"], d["kind"]) not in SCHEMAS
                and (d["apiVersion"].split("/")[0], d["kind"]) not in OPERATOR_KINDS]
        assert {"Service", "PodDisruptionBudget", "NetworkPolicy"} <= {d["kind"] for d in kept}, key
        path = tmp_path / f"{len(files)}.yaml"
        path.write_text(yaml.safe_dump_all(kept))
        files.append(str(path))
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", *files],
                                capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, f"{version}:\n{output}"


def test_canary_steps_and_gate_come_from_the_spec(built):
    (rollout,) = of_kind(built["iris-canary:base"], "Rollout").values()
    canary = rollout["spec"]["strategy"]["canary"]
    # After the first weight, the new pods answer the spec's examples (the examples Job) first.
    assert canary["steps"] == [{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "iris-examples"}]}},
                               {"pause": {"duration": 90}}, {"setWeight": 100}]
    assert canary["canaryService"] == "iris-canary"
    assert canary["analysis"]["templates"] == [{"templateName": "iris-slo"}]
    assert canary["analysis"]["args"] == [{"name": "stage", "value": "all"},
                                          {"name": "pod-template-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]
    template = of_kind(built["iris-canary:base"], "AnalysisTemplate")["iris-slo"]
    conditions = {m["name"]: (m["interval"], m["failureCondition"]) for m in template["spec"]["metrics"]}
    assert conditions == {"error-ratio": ("30s", "len(result) > 0 && result[0] > 0.02"),
                          "latency-p99": ("30s", "len(result) > 0 && result[0] > 0.3")}
    assert {m["provider"]["prometheus"]["address"] for m in template["spec"]["metrics"]} == {
        "http://prometheus-operated.monitoring.svc:9090"}


def test_blue_green_previews_each_stage_behind_its_own_service(built):
    documents = built["recsys-bluegreen:base"]
    services = of_kind(documents, "Service")
    for name, rollout in of_kind(documents, "Rollout").items():
        blue_green = rollout["spec"]["strategy"]["blueGreen"]
        assert (blue_green["activeService"], blue_green["previewService"]) == (name, f"{name}-preview")
        assert blue_green["autoPromotionSeconds"] == 600 and blue_green["autoPromotionEnabled"] is True
        assert blue_green["prePromotionAnalysis"]["args"][0] == {"name": "stage", "value": rollout["spec"]["template"][
            "metadata"]["labels"]["app.kubernetes.io/component"]}
        assert services[f"{name}-preview"]["spec"]["selector"] == services[name]["spec"]["selector"]
    template = of_kind(documents, "AnalysisTemplate")["recsys-slo"]
    assert {m["count"] for m in template["spec"]["metrics"]} == {10}  # a measurement a minute over the 10 m preview
    # The Ingress still sends clients to the active Service.
    (ingress,) = of_kind(documents, "Ingress").values()
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "recsys-gateway"


def test_autoscalers_scale_the_rollouts_and_overlays_patch_them(built):
    for key in ("recsys-canary", "iris-bluegreen-keda"):
        for layer in LAYERS:
            documents = built[f"{key}:{layer}"]
            targets = [d["spec"]["scaleTargetRef"] for d in documents if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
            assert targets and all((t["apiVersion"], t["kind"]) == (ROLLOUT_API, "Rollout") for t in targets), key
            assert {t["name"] for t in targets} == set(of_kind(documents, "Rollout"))
            assert all("replicas" not in r["spec"] for r in of_kind(documents, "Rollout").values())
    def requests(key):
        return {name: r["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                for name, r in of_kind(built[key], "Rollout").items()}

    assert requests("recsys-canary:overlays/dev")["recsys-predict"] == {"cpu": "125m", "memory": "256Mi"}
    assert requests("recsys-canary:overlays/prod") == requests("recsys-canary:base")
    hpas = of_kind(built["recsys-canary:overlays/prod"], "HorizontalPodAutoscaler")
    assert {(h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) for h in hpas.values()} == {(2, 6)}
    (scaled,) = of_kind(built["iris-bluegreen-keda:base"], "ScaledObject").values()
    assert scaled["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prometheus.observability.svc:9090"
    template = of_kind(built["iris-bluegreen-keda:base"], "AnalysisTemplate")["iris-slo"]
    assert {m["provider"]["prometheus"]["address"] for m in template["spec"]["metrics"]} == {
        "http://prometheus.observability.svc:9090"}


def test_the_scrape_labels_the_new_pods_and_counts_a_promoted_pod_once(built):
    (canary,) = of_kind(built["recsys-canary:base"], "ServiceMonitor").values()
    (blue_green,) = of_kind(built["recsys-bluegreen:base"], "ServiceMonitor").values()
    copy = {"sourceLabels": ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
            "targetLabel": "rollouts_pod_template_hash"}
    # The canary Service (the examples' target) selects pods the stage's Service selects: scraped once.
    assert canary["spec"]["endpoints"][0]["relabelings"] == [copy, {
        "sourceLabels": ["__meta_kubernetes_service_label_mlgen_dev_role"], "regex": "canary", "action": "drop"}]
    assert blue_green["spec"]["endpoints"][0]["relabelings"] == [copy, {
        "sourceLabels": ["__meta_kubernetes_service_label_mlgen_dev_role", "__meta_kubernetes_pod_label_mlgen_dev_role"],
        "regex": "preview;active", "action": "drop"}]
    services = of_kind(built["recsys-bluegreen:base"], "Service")
    assert services["recsys-gateway-preview"]["metadata"]["labels"]["mlgen.dev/role"] == "preview"
    assert "mlgen.dev/role" not in services["recsys-gateway"]["metadata"]["labels"]


def as_deployment(document: dict) -> dict:
    """A Rollout as the Deployment with the same pod template, which checkov knows how to check
    (it has no checks for Argo's kind, so a Rollout alone would pass unseen)."""
    if document["kind"] != "Rollout":
        return document
    spec = {key: value for key, value in document["spec"].items() if key != "strategy"}
    return {**document, "apiVersion": "apps/v1", "kind": "Deployment", "spec": spec}


def test_checkov_finds_nothing_to_fail(built, tmp_path):
    paths = []
    for key in ("recsys-canary:base", "recsys-canary:overlays/prod", "recsys-bluegreen:base",
                "recsys-bluegreen:overlays/dev", "iris-bluegreen-keda:overlays/prod"):
        path = tmp_path / f"{key.replace(':', '-').replace('/', '-')}.yaml"
        path.write_text(yaml.safe_dump_all([as_deployment(d) for d in built[key]]))
        paths.append(path)
    summary = checkov(paths, "kubernetes", {})
    assert summary["resources"] >= 60 and summary["passed"] > 500, summary


def test_analysis_queries_are_the_alert_rules_expressions(built):
    objectives = slo(load_spec(RECSYS))
    template = of_kind(built["recsys-canary:base"], "AnalysisTemplate")["recsys-slo"]
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in template["spec"]["metrics"]}
    narrowed = ',rollouts_pod_template_hash="{{args.pod-template-hash}}"'
    as_rules = {name: query.replace(narrowed, "").replace('stage=~"{{args.stage}}"', 'stage=~"all|gateway"')
                for name, query in queries.items()}
    assert as_rules == {"error-ratio": objectives.error_ratio_expr("120s"),
                        "latency-p99": objectives.latency_expr(0.99, "120s")}


PROMTOOL_TEST = """\
rule_files: [gate.rules.yaml]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
{series}
    alert_rule_test:
      - eval_time: 10m
        alertname: ErrorRatioGate
        exp_alerts: {error_alerts}
      - eval_time: 10m
        alertname: LatencyGate
        exp_alerts: {latency_alerts}
"""


def gate_rules(template: dict, stage: str, pod_hash: str) -> dict:
    """The AnalysisTemplate's failure conditions as alert rules, with the arguments Argo fills in
    for `stage` and the new pods' hash: an alert is a failed measurement."""
    rules = []
    for metric, alert in zip(template["spec"]["metrics"], ("ErrorRatioGate", "LatencyGate")):
        query = (metric["provider"]["prometheus"]["query"]
                 .replace("{{args.stage}}", stage).replace("{{args.pod-template-hash}}", pod_hash))
        threshold = metric["failureCondition"].rsplit("> ", 1)[1]
        rules.append({"alert": alert, "expr": f"({query}) > {threshold}"})
    return {"groups": [{"name": "gate", "rules": rules}]}


def series(pod_hash: str, ok_per_30s: int, errors_per_30s: int, slow: bool) -> list[str]:
    """One pod's requests over ten minutes: inference answers (some 5xx) and their duration
    histogram (all under 0.1 s, or all between 1 and 2.5 s)."""
    labels = f'job="recsys",route="v2_infer",stage="gateway",rollouts_pod_template_hash="{pod_hash}"'
    total = ok_per_30s + errors_per_30s
    lines = [f"      - series: 'mlgen_requests_total{{{labels},status=\"200\"}}'\n        values: '0+{ok_per_30s}x20'"]
    if errors_per_30s:
        lines.append(f"      - series: 'mlgen_requests_total{{{labels},status=\"500\"}}'\n"
                     f"        values: '0+{errors_per_30s}x20'")
    for le in ("0.1", "1", "2.5", "+Inf"):
        count = total if (not slow or le in ("2.5", "+Inf")) else 0
        lines.append(f"      - series: 'mlgen_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}'\n"
                     f"        values: '0+{count}x20'")
    return lines


@pytest.mark.parametrize("new, old, fails", [
    ((100, 0, False), (100, 0, False), (False, False)),  # a healthy release
    ((90, 10, False), (100, 0, False), (True, False)),  # the new version answers 10 % 5xx
    ((100, 0, True), (100, 0, False), (False, True)),  # the new version's p99 is over a second
    ((100, 0, False), (50, 50, True), (False, False)),  # only the old version is failing: not the release's fault
], ids=["healthy", "new-errors", "new-slow", "old-failing"])
def test_promtool_runs_the_gate_on_the_new_pods_only(built, tmp_path, new, old, fails):
    promtool = require_tool("promtool")
    template = of_kind(built["recsys-canary:base"], "AnalysisTemplate")["recsys-slo"]
    (tmp_path / "gate.rules.yaml").write_text(yaml.safe_dump(gate_rules(template, "gateway", "new0hash")))
    checked = subprocess.run([promtool, "check", "rules", "gate.rules.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = series("new0hash", *new) + series("old0hash", *old)

    def expected(alert: bool) -> str:
        return "[{exp_labels: {}}]" if alert else "[]"

    (tmp_path / "gate.test.yaml").write_text(PROMTOOL_TEST.format(
        series="\n".join(lines), error_alerts=expected(fails[0]), latency_alerts=expected(fails[1])))
    result = subprocess.run([promtool, "test", "rules", "gate.test.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_plain_spec_keeps_its_deployments(tmp_path):
    bundle = render_spec(IRIS, "kubernetes", tmp_path / "plain")
    documents = kustomize(bundle / "base")
    assert set(of_kind(documents, "Deployment")) == {"iris"}
    assert not {d["kind"] for d in documents} & {"Rollout", "AnalysisTemplate"}


@pytest.mark.parametrize("sets, expected", [
    (["targets.kubernetes.flavor=kserve"],
     "targets.kubernetes.flavor: rollout.strategy canary is carried out by Argo Rollouts"),
    (["targets.kubernetes.flavor=knative"], "flavor knative shifts traffic its own way"),
    (["rollout.steps=[{weight: 10, pause: 999999h}, {weight: 100}]"],
     "rollout.steps[0].pause: Argo Rollouts holds a pause of at most 2147483647 s"),
    (["observability.metrics=false"], "rollout.strategy: the release's analysis reads the runtime's metrics"),
])
def test_what_argo_cannot_carry_out_is_a_located_error(tmp_path, sets, expected):
    arguments = [item for value in ["rollout.strategy=canary", *sets] for item in ("--set", value)]
    result = run_mlgen("render", IRIS, "-t", "kubernetes", "-o", tmp_path / "out", *arguments)
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "kubernetes").exists()


def test_without_a_service_monitor_the_analysis_has_no_labelled_series_and_says_so(tmp_path):
    result = run_mlgen("render", IRIS, "-t", "kubernetes", "-o", tmp_path / "out", "--set", "rollout.strategy=blue_green")
    assert result.returncode == 0, result.stderr
    assert "targets.kubernetes.service_monitor: the release's analysis selects the new pods" in result.stderr
