"""Gradual releases of a function (rollout): on AWS CodeDeploy shifts the `live` alias gated by
alarms on the new version (templates that cfn-lint, `sam validate --lint` and checkov accept); on
GCP deploy.sh moves Cloud Run traffic step by step and rolls back on an open alert (run with a fake
gcloud, and every gcloud command parsed by the real one); on Azure Premium a staging slot is swapped
in with preview (every az command checked by az). What a provider cannot carry out is a located error.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from azure_cli import check_commands
from fake_cli import SLEEP, monitoring_alerts_curl, records_only, run_with_fakes
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
    assert alarms == ["ReleaseVersionErrorsAlarm", "ReleaseServerErrorsAlarm", "ReleaseLatencyAlarm"]
    # The runtime's own 5xx (no function error): its embedded-metric lines of this version, per invocation.
    server_errors = {m["Id"]: m for m in resources["ReleaseServerErrorsAlarm"]["Properties"]["Metrics"]}
    assert server_errors["errors"]["MetricStat"]["Metric"] == {
        "Namespace": "mlgen/Lambda", "MetricName": "ServerErrors",
        "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Function"}},
                       {"Name": "Version", "Value": {"Fn::GetAtt": ["Function.Version", "Version"]}}]}
    assert server_errors["requests"]["MetricStat"]["Metric"]["MetricName"] == "Invocations"
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


def sam_checkers_accept(bundle: Path, resources: int) -> dict:
    """cfn-lint and `sam validate --lint` pass bundle/template.yaml and checkov fails nothing in it
    (having parsed at least `resources` resources); checkov's report."""
    lint = subprocess.run([require_tool("cfn-lint"), "template.yaml"], cwd=bundle, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
    sam = subprocess.run([require_tool("sam"), "validate", "--lint", "-t", "template.yaml"], cwd=bundle, env=env,
                         capture_output=True, text=True, timeout=300)
    assert sam.returncode == 0, sam.stdout + sam.stderr
    checkov = subprocess.run([require_tool("checkov"), "--skip-download", "-o", "json", "--framework", "cloudformation",
                              "-f", "template.yaml"], cwd=bundle, capture_output=True, text=True)
    report = json.loads(checkov.stdout)
    assert report["summary"]["resource_count"] >= resources, "checkov parsed no resources"
    assert report["summary"]["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:3000]
    return report


def test_cfn_lint_sam_validate_and_checkov_accept_the_release_template(sam_release):
    _, bundle = sam_release
    report = sam_checkers_accept(bundle, 8)
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


# --- GCP: Cloud Run traffic, step by step -------------------------------------------------------------

FAKE_GCLOUD = r"""printf 'gcloud %s\n' "$*" >> "$CALLS"
case "$*" in
  "auth list"*) echo someone@example.com ;;
  "run services list"*) echo digits-00001-old ;;
  "run services describe"*) echo digits-00002-new ;;
  "auth print-access-token"*) echo token ;;
esac
"""
# curl answers as Cloud Monitoring's alerts API: the release policy's alert opens at the OPEN_AT-th
# check, the answers cannot be read from the FAIL_AT-th.
GCP_FAKES = {"gcloud": FAKE_GCLOUD, "curl": monitoring_alerts_curl("digits"), "sleep": SLEEP}


def run_deploy(bundle: Path, tmp_path: Path, open_at: int, fail_at: int = 0) -> tuple[subprocess.CompletedProcess, list[str]]:
    return run_with_fakes(bundle, tmp_path, GCP_FAKES, "--project", "p1", knobs={"OPEN_AT": open_at, "FAIL_AT": fail_at})


def traffic(calls: list[str]) -> list[str]:
    return ["--to-" + call.split(" --to-", 1)[1] for call in calls if "run services update-traffic" in call]


@pytest.fixture(scope="module")
def gcp_release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release-gcp")
    rollout = {**canary((10, "2m"), (50, "90s"), (100, None)), "analysis": {"interval": "1m"}}
    return render(tmp, rollout, provider="gcp")


def test_gcp_moves_traffic_step_by_step_checking_the_release_policy(gcp_release, tmp_path):
    result, calls = run_deploy(gcp_release, tmp_path, open_at=0)
    assert result.returncode == 0, result.stderr
    assert traffic(calls) == ["--to-revisions digits-00001-old=100",  # pinned before the deploy
                              "--to-revisions digits-00002-new=10,digits-00001-old=90",
                              "--to-revisions digits-00002-new=50,digits-00001-old=50", "--to-latest"]
    pin = next(i for i, c in enumerate(calls) if "update-traffic" in c)
    assert pin < next(i for i, c in enumerate(calls) if c.startswith("gcloud functions deploy"))
    # 2m held as two checks a minute apart, 90s as 60 + 30; the gate read after each wait
    assert [c for c in calls if c.startswith("sleep")] == ["sleep 60", "sleep 60", "sleep 60", "sleep 30"]
    checks = [c for c in calls if c.startswith("curl")]
    assert len(checks) == 4 and "Authorization: Bearer token" in checks[0] and "token" not in checks[0].split(" | ")[0]
    assert 'filter=state = "OPEN"' in checks[0] and "/v3/projects/p1/alerts" in checks[0]
    policy = json.loads((gcp_release / "monitoring" / "release.policy.json").read_text())
    assert policy["displayName"] == "mlgen digits: release"


def test_gcp_rolls_back_to_the_earlier_revision_on_an_open_alert_or_an_unreadable_one(gcp_release, tmp_path):
    result, calls = run_deploy(gcp_release, tmp_path, open_at=3)
    assert result.returncode == 1 and "has an open alert: all traffic is back on digits-00001-old" in result.stderr
    assert traffic(calls) == ["--to-revisions digits-00001-old=100", "--to-revisions digits-00002-new=10,digits-00001-old=90",
                              "--to-revisions digits-00002-new=50,digits-00001-old=50",
                              "--to-revisions digits-00001-old=100"]
    # An answer it cannot read stops the release the same way.
    result, calls = run_deploy(gcp_release, tmp_path, open_at=0, fail_at=2)
    assert result.returncode == 1 and "alerts could not be read: all traffic is back on digits-00001-old" in result.stderr
    assert traffic(calls) == ["--to-revisions digits-00001-old=100", "--to-revisions digits-00002-new=10,digits-00001-old=90",
                              "--to-revisions digits-00001-old=100"]


def test_gcp_release_script_passes_shellcheck_and_gcloud_parses_every_command(gcp_release, tmp_path):
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", "deploy.sh"], cwd=gcp_release,
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    dry = subprocess.run(["bash", "deploy.sh", "--dry-run", "--project", "p1"], cwd=gcp_release, capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert dry.returncode == 0, dry.stderr
    commands = [shlex.split(line[2:]) for line in dry.stdout.splitlines() if line.startswith("+ gcloud ")]
    distinct = list({tuple(c): c for c in commands}.values())
    gcloud = require_tool("gcloud")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    for command in distinct:
        if command[1:3] == ["alpha", "monitoring"] or command[1:3] == ["auth", "print-access-token"]:
            continue  # parsed by the existing serverless tests; print-access-token asks for nothing to parse
        result = subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env, cwd=gcp_release)
        assert result.returncode != 2, f"{command}\n{result.stderr}"
        assert "active account" in result.stderr or "credentials" in result.stderr, f"{command}\n{result.stderr}"


# --- Azure: a staging slot swapped in with preview ----------------------------------------------------

FAKE_AZ = r"""printf 'az %s\n' "$*" >> "$CALLS"
case "$*" in
  "functionapp show"*"--slot"*) echo mlgen-digits-staging.azurewebsites.net ;;
  "functionapp keys list"*) echo the-key ;;
esac
"""
# The staging slot answers 200 until its FAIL_AT-th request, then 500.
FAKE_SLOT_CURL = r"""header=$(cat)
printf 'curl %s | %s\n' "$*" "$header" >> "$CALLS"
requests=$(count requests)
if ((FAIL_AT > 0 && requests >= FAIL_AT)); then printf 500; else printf 200; fi
"""
AZURE_FAKES = {"az": FAKE_AZ, "func": records_only("func"), "curl": FAKE_SLOT_CURL, "sleep": SLEEP}


def run_azure_deploy(bundle: Path, tmp_path: Path, fail_at: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    return run_with_fakes(bundle, tmp_path, AZURE_FAKES, knobs={"FAIL_AT": fail_at})


def swaps(calls: list[str]) -> list[str]:
    return [call.rsplit("--action ", 1)[1] for call in calls if "deployment slot swap" in call]


@pytest.fixture(scope="module")
def azure_release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release-azure")
    return render(tmp, {"strategy": "blue_green", "preview": "2m"}, provider="azure", plan="premium")


def test_azure_publishes_to_the_staging_slot_checks_the_examples_and_swaps_with_preview(azure_release, tmp_path):
    result, calls = run_azure_deploy(azure_release, tmp_path, fail_at=0)
    assert result.returncode == 0, result.stderr
    publish = next(c for c in calls if c.startswith("func "))
    assert "--slot staging" in publish
    assert swaps(calls) == ["preview", "swap"]
    assert "sleep 120" in calls and calls.index("sleep 120") > calls.index(next(c for c in calls if "--action preview" in c))
    requests = [c for c in calls if c.startswith("curl")]
    assert len(requests) == 2 and "@release/example-1.json" in requests[0] and "/v2/models/digits/infer" in requests[0]
    assert "x-functions-key: the-key" in requests[0] and "the-key" not in requests[0].split(" | ")[0]
    assert "roll back with az functionapp deployment slot swap" in result.stdout


def test_azure_resets_the_swap_when_the_slot_fails_in_preview_and_never_swaps_a_slot_that_fails_first(azure_release, tmp_path):
    (tmp_path / "preview").mkdir()
    result, calls = run_azure_deploy(azure_release, tmp_path / "preview", fail_at=2)
    assert result.returncode == 1 and "failed the spec's examples in preview: the swap was reset" in result.stderr
    assert swaps(calls) == ["preview", "reset"]
    (tmp_path / "first").mkdir()
    result, calls = run_azure_deploy(azure_release, tmp_path / "first", fail_at=1)
    assert result.returncode == 1 and "production is unchanged" in result.stderr and swaps(calls) == []


def test_azure_release_script_passes_shellcheck_and_az_parses_every_command(azure_release, tmp_path):
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", "deploy.sh"], cwd=azure_release,
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    dry = subprocess.run(["bash", "deploy.sh", "--dry-run"], cwd=azure_release, capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert dry.returncode == 0, dry.stderr
    commands = [shlex.split(line[2:]) for line in dry.stdout.splitlines() if line.startswith("+ az ")]
    distinct = list({tuple(c): c for c in commands}.values())
    assert any(c[1:5] == ["functionapp", "deployment", "slot", "swap"] for c in distinct)
    refused = [str(v) for v in check_commands(distinct, tmp_path, cwd=azure_release) if not v.accepted]
    assert not refused, "\n".join(refused)


@pytest.mark.parametrize("plan", ["consumption", "flex"])
def test_blue_green_on_an_azure_plan_without_slots_is_refused_at_the_strategy(tmp_path, plan):
    spec = release_spec(tmp_path, {"strategy": "blue_green"}, provider="azure", plan=plan)
    result = run_mlgen("render", spec, "-t", "serverless", "-o", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert f"rollout.strategy: blue_green on Azure swaps a staging slot, and the {plan} plan has none" in result.stderr
    assert "plan: premium" in result.stderr


def test_canary_on_azure_is_refused_naming_where_it_runs(tmp_path):
    spec = release_spec(tmp_path, canary((10, "5m"), (100, None)), provider="azure", plan="premium")
    result = run_mlgen("render", spec, "-t", "serverless", "-o", tmp_path / "out")
    assert result.returncode == 1 and "cannot release with canary on azure" in result.stderr
    assert "AWS Lambda, Google Cloud Functions" in result.stderr


def test_a_gcp_pause_shorter_than_a_minute_is_a_warning_and_blue_green_on_gcp_is_refused(tmp_path):
    spec = release_spec(tmp_path, canary((10, "30s"), (100, None)), provider="gcp")
    result = run_mlgen("render", spec, "-t", "serverless", "-o", tmp_path / "out")
    assert result.returncode == 0 and "warning: rollout.steps[0].pause: Cloud Run's request metrics" in result.stderr, result.stderr
    spec = release_spec(tmp_path / "bg", {"strategy": "blue_green"}, provider="gcp")
    result = run_mlgen("render", spec, "-t", "serverless", "-o", tmp_path / "bg-out")
    assert result.returncode == 1 and "cannot release with blue_green on gcp" in result.stderr
    assert "Azure Functions (plan: premium)" in result.stderr
