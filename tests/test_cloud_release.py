"""rollout on the cloud target: what AWS's instance refresh cannot carry out is a located error
before anything renders (one pause for every checkpoint, at most AWS's CheckpointDelay, an image
it can roll back to), as is a GCP canary without the HTTPS balancer whose answers gate it, and a
strategy no provider's fleet releases with is refused naming those that can. GCP's deploy.sh runs
with a fake gcloud, curl and sleep: the canary versions step by step, the release policy read
between them, the rollback; the real gcloud parses every command. The AWS refresh itself is
checked against moto (tests/test_target_cloud_aws.py), Azure's canary with a fake az
(tests/test_cloud_release_azure.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from fake_cli import SLEEP, monitoring_alerts_curl, run_with_fakes
from helpers import EXAMPLES, require_tool, run_mlgen
from mlgen.spec import load_spec
from mlgen.targets.cloud.release import CHECKPOINT_DELAY

IRIS = EXAMPLES / "iris" / "spec.yaml"
AMI = "targets.cloud.image=ami-0123456789abcdef0"


def render(tmp_path, *sets: str):
    arguments = [item for value in sets for item in ("--set", value)]
    return run_mlgen("render", IRIS, "-t", "cloud", "-o", tmp_path / "out", *arguments)


@pytest.mark.parametrize("sets, expected", [
    (["rollout.steps=[{weight: 10, pause: 5m}, {weight: 50, pause: 10m}, {weight: 100}]", AMI],
     "rollout.steps[1].pause: AWS waits one CheckpointDelay after every checkpoint"),
    (["rollout.steps=[{weight: 10, pause: 49h}, {weight: 100}]", AMI],
     f"rollout.steps[0].pause: AWS waits at most {CHECKPOINT_DELAY.value} s"),
    ([], "runtime.python: canary on AWS: an instance refresh rolls back only a launch template whose ImageId is an AMI id"),
    (["targets.cloud.image=resolve:ssm:/aws/service/debian/release/bookworm/latest/amd64"],
     "targets.cloud.image: canary on AWS"),
    (["targets.cloud={provider: gcp, project: ml-serving-1, allowed_cidrs: [203.0.113.0/24]}"],
     "rollout.strategy: a canary on GCP is gated by the HTTPS balancer's answers: the passthrough network load "
     "balancer counts no HTTP answers"),
    (["targets.cloud={provider: azure, allowed_cidrs: [203.0.113.0/24]}"],
     "rollout.strategy: a canary on Azure is gated by the Application Gateway's answers: the layer-4 load balancer "
     "counts no HTTP answers"),
    (["targets.cloud={provider: azure, allowed_cidrs: [203.0.113.0/24], "
      "certificate: 'https://iris-certs.vault.azure.net/secrets/iris-example-com'}", "rollout.analysis.interval=25h"],
     "rollout.analysis.interval: an Azure metric alert measures over at most 86400 s"),
])
def test_what_an_instance_refresh_cannot_do_is_refused_at_its_line(tmp_path, sets, expected):
    result = render(tmp_path, "rollout.strategy=canary", *sets)
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if expected in line]
    assert line.startswith((str(IRIS), "--set ")), line  # the spec's line, or the --set that gave the value
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "cloud").exists()


def test_blue_green_is_refused_naming_the_targets_that_can(tmp_path):
    result = render(tmp_path, "rollout.strategy=blue_green", AMI)
    assert result.returncode == 1 and "rollout.strategy: the cloud target cannot release with blue_green" in result.stderr
    able = result.stderr.split("targets that can:")[1].split(";")[0].split(")")[0]
    assert "kubernetes" in able and "cloud" not in able, result.stderr


def test_an_analysis_interval_under_the_balancers_minute_is_a_warning(tmp_path):
    result = render(tmp_path, "rollout.strategy=canary", "rollout.analysis.interval=90s", AMI)
    assert result.returncode == 0, result.stderr
    assert "rollout.analysis.interval: the load balancer's metrics come per minute: the release alarms measure every 120 s" in result.stderr
    assert '"Period": 120' in (tmp_path / "out" / "cloud" / "deploy.sh").read_text()


# --- GCP: canary versions of the managed instance group, gated by the release alert policy --------

# Everything the script asks about exists; the group runs OLD_TEMPLATE. Each call is recorded
# shell-quoted, so the real gcloud can parse it afterwards.
OLD_TEMPLATE = "iris-0123456789"
FAKE_GCLOUD = r"""{ printf '%q ' gcloud "$@"; echo; } >> "$CALLS"
case "$*" in
  "auth list"*) echo someone@example.com ;;
  "auth print-access-token"*) echo token ;;
  *"instance-groups managed describe"*) echo "$OLD_TEMPLATE" ;;
  *"alpha monitoring policies list"*) if [[ $TEARDOWN == 1 ]]; then echo projects/ml-serving-1/alertPolicies/123; fi ;;
  *" list --filter name="*) args=("$@"); for ((i = 0; i < ${#args[@]}; i++)); do
      [[ ${args[i]} == --filter ]] && echo "${args[i+1]#name=}"; done ;;
  *"addresses describe"*) echo 203.0.113.10 ;;
esac
"""
# curl answers as Cloud Monitoring's alerts API: the release policy's alert opens at the OPEN_AT-th
# check, the answers cannot be read from the FAIL_AT-th.
FAKES = {"gcloud": FAKE_GCLOUD, "curl": monitoring_alerts_curl("iris"), "sleep": SLEEP}
GCP_CANARY = ["rollout.strategy=canary", "rollout.steps=[{weight: 25, pause: 2m}, {weight: 50, pause: 90s}, {weight: 100}]",
              "targets.cloud={provider: gcp, region: europe-west1, project: ml-serving-1, certificate: iris-example-com, "
              "image: projects/ml-serving-1/global/images/family/mlgen-base, allowed_cidrs: [0.0.0.0/0], "
              "artifact_url: 'https://bundles.example.com/iris/bundle.tar.gz'}"]


@pytest.fixture(scope="module")
def gcp_canary(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cloud-gcp-canary")
    result = render(tmp, *GCP_CANARY)
    assert result.returncode == 0, result.stderr
    return tmp / "out" / "cloud"


def run_deploy(bundle, tmp_path, open_at: int, fail_at: int = 0, running: str = OLD_TEMPLATE,
               script: str = "deploy.sh") -> tuple[subprocess.CompletedProcess, list[str]]:
    return run_with_fakes(bundle, tmp_path, FAKES, script=script,
                          knobs={"OLD_TEMPLATE": running, "TEARDOWN": int(script == "teardown.sh"),
                                 "OPEN_AT": open_at, "FAIL_AT": fail_at})


def updates(calls: list[str]) -> list[str]:
    """The versions of each rolling update, as gcloud was given them."""
    return [" ".join(a for a in shlex.split(c) if a.startswith("template=")) for c in calls if "rolling-action start-update" in c]


def new_template(calls: list[str]) -> str:
    """The instance template deploy.sh named after the user data (the one it looked up)."""
    (lookup,) = [shlex.split(c) for c in calls if "instance-templates list" in c]
    return lookup[lookup.index("--filter") + 1].removeprefix("name=")


def test_gcp_moves_the_group_in_canary_steps_checking_the_release_policy(gcp_canary, tmp_path):
    result, calls = run_deploy(gcp_canary, tmp_path, open_at=0)
    assert result.returncode == 0, result.stderr
    new = new_template(calls)
    assert updates(calls) == [f"template={OLD_TEMPLATE} template={new},target-size=25%",
                              f"template={OLD_TEMPLATE} template={new},target-size=50%", f"template={new}"]
    # 2m held as two checks a minute apart, 90s as 60 + 30, each step once its VMs are up
    assert [c for c in calls if c.startswith("sleep")] == ["sleep 60", "sleep 60", "sleep 60", "sleep 30"]
    assert sum("wait-until" in c and "--stable" in c for c in calls) == 2
    checks = [c for c in calls if c.startswith("curl")]
    assert len(checks) == 4 and "Authorization: Bearer token" in checks[0] and "token" not in checks[0].split(" | ")[0]
    assert 'filter=state = "OPEN"' in checks[0] and "/v3/projects/ml-serving-1/alerts" in checks[0]
    creates = [i for i, c in enumerate(calls) if "alpha monitoring policies create" in c]
    assert len(creates) == 1 and creates[0] < min(i for i, c in enumerate(calls) if "rolling-action" in c)
    assert f"roll back with: gcloud compute instance-groups managed rolling-action start-update iris --region europe-west1 --version template={OLD_TEMPLATE}" in result.stdout


def test_the_release_policy_counts_the_https_balancers_answers(gcp_canary):
    policy = json.loads(shlex.split(next(line for line in (gcp_canary / "deploy.sh").read_text().splitlines()
                                         if line.startswith("readonly RELEASE_POLICY_JSON=")).split("=", 1)[1])[0])
    assert policy["displayName"] == "mlgen iris: release"
    errors, latency = (c["conditionThreshold"] for c in policy["conditions"])
    assert 'backend_target_name="iris-lb"' in errors["filter"] and "response_code_class=500" in errors["filter"]
    gate = load_spec(IRIS, sets=tuple(GCP_CANARY)).rollout
    assert errors["thresholdValue"] == gate.max_error_ratio and latency["thresholdValue"] == gate.max_latency_p99_ms
    assert "https/backend_latencies" in latency["filter"] and latency["aggregations"][0]["alignmentPeriod"] == "60s"


def test_gcp_rolls_the_group_back_on_an_open_alert_or_an_unreadable_one(gcp_canary, tmp_path):
    result, calls = run_deploy(gcp_canary, tmp_path, open_at=3)
    new = new_template(calls)
    assert result.returncode == 1 and f"has an open alert: instance group iris is rolling back to {OLD_TEMPLATE}" in result.stderr
    assert updates(calls) == [f"template={OLD_TEMPLATE} template={new},target-size=25%",
                              f"template={OLD_TEMPLATE} template={new},target-size=50%", f"template={OLD_TEMPLATE}"]
    result, calls = run_deploy(gcp_canary, tmp_path, open_at=0, fail_at=2)
    assert result.returncode == 1 and "alerts could not be read: instance group iris is rolling back" in result.stderr
    assert updates(calls) == [f"template={OLD_TEMPLATE} template={new},target-size=25%", f"template={OLD_TEMPLATE}"]


def test_the_group_already_on_the_new_template_is_left_alone(gcp_canary, tmp_path):
    _, calls = run_deploy(gcp_canary, tmp_path / "first", open_at=0)
    result, calls = run_deploy(gcp_canary, tmp_path, open_at=1, running=new_template(calls))
    assert result.returncode == 0 and f"already runs {new_template(calls)}" in result.stdout, result.stderr
    assert not updates(calls) and not [c for c in calls if c.startswith("curl")]


def test_shellcheck_passes_and_gcloud_parses_every_command_of_the_canary_and_its_teardown(gcp_canary, tmp_path):
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", "deploy.sh", "teardown.sh"], cwd=gcp_canary,
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    _, calls = run_deploy(gcp_canary, tmp_path, open_at=3)
    _, removals = run_deploy(gcp_canary, tmp_path / "teardown", open_at=0, script="teardown.sh")
    assert any("alpha monitoring policies delete" in c for c in removals), removals  # the gate goes too
    commands = [shlex.split(c) for c in calls + removals if c.startswith("gcloud ")]
    distinct = list({tuple(c): c for c in commands if c[1:3] != ["auth", "list"]
                     and c[1:3] != ["auth", "print-access-token"]}.values())
    assert any("--canary-version" in c for c in distinct) and any("wait-until" in c for c in distinct)
    gcloud = require_tool("gcloud")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    policy = tmp_path / "policy.json"
    policy.write_text("{}")
    for command in distinct:
        # the policy file deploy.sh wrote is gone: hand gcloud one to read
        if "--policy-from-file" in command:
            command[command.index("--policy-from-file") + 1] = str(policy)
        result = subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env, cwd=gcp_canary)
        assert result.returncode != 2, f"{command}\n{result.stderr}"
        assert "active account" in result.stderr or "credentials" in result.stderr, f"{command}\n{result.stderr}"
