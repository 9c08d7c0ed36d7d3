"""A Kubernetes blue-green release sends the spec's examples to the new version's preview before any
client reaches it: a Job from the new image (release/ copied into it by the Dockerfile) runs the
judge of mlgen verify against the entry stage's preview Service, as a metric of its own
AnalysisTemplate. Checked by what consumes it: Argo Rollouts' CRD schema, kubernetes-validate
--strict and checkov on the Job, kubectl kustomize (the overlays pin the Job's image with the
stages'), and the Job's own command run against the runtime serving the bundle's app/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, free_port, render_spec, require_tool, stop_process, wait_until_ready
from test_target_kubernetes import KUBERNETES_VERSIONS, checkov, kustomize
from test_target_kubernetes_flavors import check_custom_resource
from test_target_kubernetes_rollout import of_kind

from mlgen import examples
from mlgen.spec import load_spec
from mlgen.targets.kubernetes.rollout import release_check
from mlgen.targets.kubernetes.workloads import workloads

IRIS = EXAMPLES / "iris" / "spec.yaml"
RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"
BLUE_GREEN = ["rollout.strategy=blue_green", "targets.kubernetes.service_monitor=true"]
API_KEY = ["security.auth=api_key", "security.api_keys=[{secret: iris-keys, key: first}]"]
CHECK_DIR = "/opt/mlgen"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("release-check")
    return {"iris": render_spec(IRIS, "kubernetes", tmp / "iris", sets=BLUE_GREEN + API_KEY),
            "recsys": render_spec(RECSYS, "kubernetes", tmp / "recsys", sets=BLUE_GREEN)}


@pytest.fixture(scope="module")
def built(bundles) -> dict[str, list[dict]]:
    return {f"{name}:{layer}": kustomize(bundle / layer)
            for name, bundle in bundles.items() for layer in ("base", "overlays/prod")}


def check_job(documents: list[dict]) -> dict:
    """The examples AnalysisTemplate's Job, as the batch/v1 Job Argo Rollouts creates from it."""
    (template,) = [t for name, t in of_kind(documents, "AnalysisTemplate").items() if name.endswith("-examples")]
    (metric,) = template["spec"]["metrics"]
    job = metric["provider"]["job"]
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "examples", "namespace": template["metadata"]["namespace"], **job["metadata"]},
            "spec": job["spec"]}


def test_only_the_entry_stage_previews_with_the_examples(built):
    for key, documents in built.items():
        assert all(check_custom_resource(d, key) for d in documents if d["kind"] == "AnalysisTemplate")
        (template,) = [t for name, t in of_kind(documents, "AnalysisTemplate").items() if name.endswith("-examples")]
        (metric,) = template["spec"]["metrics"]
        # One measurement that fails on the first wrong answer: no count, no interval, no retry.
        assert metric["failureLimit"] == 0 and "count" not in metric and "interval" not in metric
    rollouts = of_kind(built["recsys:base"], "Rollout")
    names = {name: [t["templateName"] for t in r["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]["templates"]]
             for name, r in rollouts.items()}
    assert names == {"recsys-gateway": ["recsys-slo", "recsys-examples"], "recsys-preprocess": ["recsys-slo"],
                     "recsys-predict": ["recsys-slo"], "recsys-postprocess": ["recsys-slo"]}
    command = check_job(built["recsys:base"])["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == "http://recsys-gateway-preview:8080/v2/models/recsys/infer"
    assert "recsys-gateway-preview" in of_kind(built["recsys:base"], "Service")


def test_the_job_runs_once_bounded_and_hardened(built, tmp_path):
    job = check_job(built["iris:overlays/prod"])
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and 0 < spec["activeDeadlineSeconds"] <= 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    # The same image as the stages, pinned by the same overlay.
    (rollout,) = of_kind(built["iris:overlays/prod"], "Rollout").values()
    assert container["image"] == rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "@sha256:" in container["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The key is a file from the stage's own Secret, never in the environment.
    assert container["env"] == [{"name": "MLGEN_SMOKE_HEADER", "value": "authorization"},
                                {"name": "MLGEN_SMOKE_KEY_FILE", "value": "/var/run/secrets/mlgen/api-key"}]
    assert container["volumeMounts"] == [{"name": "api-key", "mountPath": "/var/run/secrets/mlgen", "readOnly": True}]
    assert pod["volumes"] == [{"name": "api-key", "secret": {"secretName": "iris-keys", "defaultMode": 0o440,
                                                             "items": [{"key": "first", "path": "api-key"}]}}]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    # checkov wants a NetworkPolicy selecting every pod: the bundle's, beside the Job.
    policies = tmp_path / "job-and-policies.yaml"
    policies.write_text(yaml.safe_dump_all([job, *of_kind(built["iris:overlays/prod"], "NetworkPolicy").values()]))
    validate = require_tool("kubernetes-validate")
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", str(path)],
                                capture_output=True, text=True, timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, f"{version}:\n{output}"
    summary = checkov([policies], "kubernetes", {})
    assert summary["resources"] >= 2 and summary["passed"] >= 60, summary


def test_the_network_policies_let_the_job_reach_the_entry_stage_only(built):
    policies = of_kind(built["recsys:base"], "NetworkPolicy")
    job_labels = check_job(built["recsys:base"])["spec"]["template"]["metadata"]["labels"]
    own = policies["recsys-release-check"]
    assert own["spec"]["policyTypes"] == ["Egress"]
    assert all(job_labels[k] == v for k, v in own["spec"]["podSelector"]["matchLabels"].items())
    (egress,) = own["spec"]["egress"]
    assert egress["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "recsys",
                                                              "app.kubernetes.io/component": "gateway"}}}]
    admitted = [rule["from"] for rule in policies["recsys-gateway"]["spec"]["ingress"]]
    assert [{"podSelector": own["spec"]["podSelector"]}] in admitted
    for stage in ("recsys-preprocess", "recsys-predict", "recsys-postprocess"):
        assert own["spec"]["podSelector"] not in [p.get("podSelector") for rule in policies[stage]["spec"]["ingress"]
                                                 for p in rule["from"]]


def test_the_image_carries_what_the_job_runs(bundles):
    bundle = bundles["iris"]
    dockerfile = (bundle / "Dockerfile").read_text()
    assert f"COPY release/ {CHECK_DIR}/release/" in dockerfile
    assert "!release/" in (bundle / ".dockerignore").read_text()
    documents = json.loads((bundle / "release" / "examples.json").read_text())
    assert documents == examples.documents(load_spec(IRIS))
    hadolint = require_tool("hadolint")
    linted = subprocess.run([hadolint, str(bundle / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr


def test_a_canary_sends_the_examples_to_its_new_pods_after_the_first_weight(tmp_path):
    bundle = render_spec(RECSYS, "kubernetes", tmp_path / "out", sets=BLUE_GREEN + ["rollout.strategy=canary"])
    documents = kustomize(bundle / "overlays" / "prod")
    assert all(check_custom_resource(d, "canary") for d in documents if d["apiVersion"].startswith("argoproj.io"))
    rollouts = of_kind(documents, "Rollout")
    gateway = rollouts["recsys-gateway"]["spec"]["strategy"]["canary"]
    assert gateway["canaryService"] == "recsys-gateway-canary"
    assert gateway["steps"][:2] == [{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "recsys-examples"}]}}]
    for name in ("recsys-preprocess", "recsys-predict", "recsys-postprocess"):
        canary = rollouts[name]["spec"]["strategy"]["canary"]
        assert "canaryService" not in canary and not any("analysis" in step for step in canary["steps"])
    services = of_kind(documents, "Service")
    assert services["recsys-gateway-canary"]["spec"]["selector"] == services["recsys-gateway"]["spec"]["selector"]
    assert services["recsys-gateway-canary"]["metadata"]["labels"]["mlgen.dev/role"] == "canary"
    command = check_job(documents)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == "http://recsys-gateway-canary:8080/v2/models/recsys/infer"
    assert f"COPY release/ {CHECK_DIR}/release/" in (bundle / "Dockerfile").read_text()


def test_no_check_with_jwt_which_a_job_cannot_sign():
    model = load_spec(IRIS)
    entry = workloads(model, {})[0]
    assert release_check(model, entry, "blue_green") is not None
    assert release_check(replace(model, security=replace(model.security, auth="jwt")), entry, "canary") is None


def run_job_command(bundle: Path, container: dict, url: str, key: str, scratch: Path) -> subprocess.CompletedProcess:
    """The Job's container command with the image's folder mapped to the bundle's, and the
    Secret's mount to a folder holding `key` (what the kubelet does)."""
    command = [sys.executable if part == "python" else part.replace(CHECK_DIR, str(bundle)) for part in container["command"]]
    (mount,) = container["volumeMounts"]
    (scratch / "api-key").write_text(key)
    env = {"PATH": os.environ["PATH"]}
    for variable in container["env"]:
        env[variable["name"]] = variable["value"].replace(mount["mountPath"], str(scratch))
    return subprocess.run([*command[:-1], url], env=env, capture_output=True, text=True, timeout=120)


def test_the_jobs_command_passes_the_new_version_and_fails_a_wrong_key(bundles, built, tmp_path):
    bundle = bundles["iris"]
    (container,) = check_job(built["iris:base"])["spec"]["template"]["spec"]["containers"]
    key = "a-key-long-enough-for-the-runtime-0123456789"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlgen_runtime", "serve", "--config", "serving.json",
                               "--host", "127.0.0.1", "--port", str(port)], cwd=bundle / "app",
                              env={**os.environ, "PYTHONPATH": str(bundle / "app"), "MLGEN_API_KEY_1": key},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server)
        url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
        passed = run_job_command(bundle, container, url, key, tmp_path)
        assert passed.returncode == 0, passed.stderr
        refused = run_job_command(bundle, container, url, "not-the-key-" + "x" * 32, tmp_path)
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr, refused.stderr
    finally:
        stop_process(server)
    unanswered = run_job_command(bundle, container, url, key, tmp_path)
    assert unanswered.returncode == 1 and "no answer" in unanswered.stderr, unanswered.stderr
