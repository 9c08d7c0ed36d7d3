"""Releasing a new version on Azure: deploy.sh runs with a fake az and sleep against a scale set
of ten VMs that runs an earlier cloud-init.yaml. Every update reimages VMs in turn, each waited for
until the Application Health extension reports it healthy; a canary reimages each step's share in
batches and holds its pause reading the fired alerts, and an unhealthy VM or a fired release alert
puts the previous custom data back on the VMs it changed. The real az parses every command
recorded (tests/azure_cli.py); shellcheck checks the scripts; a canary without the Application
Gateway, whose metrics count HTTP answers, is refused at its line."""

from __future__ import annotations

import base64
import shlex
import subprocess

import pytest

from azure_cli import check_commands, dry_run_commands
from fake_cli import SLEEP, run_with_fakes
from helpers import EXAMPLES, require_tool, run_mlgen

IRIS = EXAMPLES / "iris" / "spec.yaml"
CERTIFICATE = "https://iris-certs.vault.azure.net/secrets/iris-example-com"
AZURE = ("targets.cloud={provider: azure, region: westeurope, allowed_cidrs: [203.0.113.0/24], "
         "artifact_url: 'https://bundles.example.com/iris/bundle.tar.gz'")
CANARY = ["rollout.strategy=canary", "rollout.steps=[{weight: 20, pause: 2m}, {weight: 60, pause: 90s}, {weight: 100}]",
          f"{AZURE}, certificate: '{CERTIFICATE}'}}"]
PREVIOUS = base64.b64encode(b"#cloud-config\n# the version the fleet runs\n").decode()
FLEET = [str(instance) for instance in range(10)]

# The scale set exists with everything around it and runs PREVIOUS (its user data); VM UNHEALTHY
# never reports healthy; from the FIRE_AT-th read of the fired alerts on, the release's errors
# alert is among them (another rule's always is); from the FAIL_AT-th the read fails. Each call is
# recorded shell-quoted, so the real az can parse it afterwards.
FAKE_AZ = r"""GROUP_ID=/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlgen-iris
{ printf '%q ' az "$@"; echo; } >> "$CALLS"
query() { local args=("$@") i; for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == --query ]] && echo "${args[i+1]}"; done; }
case "$*" in
  "account show"*) ;;
  "group exists"*) echo true ;;
  "group show"*) echo iris ;;
  "vmss show"*"--include-user-data"*) echo "$PREVIOUS" ;;
  "vmss list-instances"*"latestModelApplied"*) ;;
  "vmss list-instances"*) printf '%s\n' $FLEET ;;
  "vmss get-instance-view"*) [[ " $* " == *" --instance-id $UNHEALTHY "* ]] && echo HealthState/unhealthy || echo HealthState/healthy ;;
  "monitor metrics list"*) echo 120000.0 ;;
  "rest "*)
    checks=$(count checks)
    ((FAIL_AT > 0 && checks >= FAIL_AT)) && exit 1
    echo /subscriptions/s/resourceGroups/mlgen-iris/providers/microsoft.insights/metricalerts/iris-cpu
    ((FIRE_AT > 0 && checks >= FIRE_AT)) && echo /subscriptions/s/resourceGroups/mlgen-iris/providers/microsoft.insights/metricalerts/iris-release-errors
    ;;
  *"application-gateway show"*"--query id"*) echo "$GROUP_ID/providers/Microsoft.Network/applicationGateways/iris-gateway" ;;
  *" show "*"--query id"*) echo "$GROUP_ID/providers/Microsoft.ManagedIdentity/userAssignedIdentities/iris-vm" ;;
  *" show "*"--query principalId"*) echo 11111111-1111-1111-1111-111111111111 ;;
  *"public-ip show"*) echo 203.0.113.10 ;;
  *"role assignment list"*) echo assignment ;;
  *" list "*) query "$@" | sed -n "s/.*name=='\([^']*\)'.*/\1/p" ;;
esac
exit 0
"""
FAKES = {"az": FAKE_AZ, "sleep": SLEEP}


def render(tmp_path, *sets: str):
    arguments = [item for value in sets for item in ("--set", value)]
    return run_mlgen("render", IRIS, "-t", "cloud", "-o", tmp_path / "out", *arguments)


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cloud-azure-canary")
    result = render(tmp, *CANARY)
    assert result.returncode == 0, result.stderr
    return tmp / "out" / "cloud"


@pytest.fixture(scope="module")
def all_at_once(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cloud-azure")
    result = render(tmp, f"{AZURE}}}")
    assert result.returncode == 0, result.stderr
    return tmp / "out" / "cloud"


def run_deploy(bundle, tmp_path, unhealthy: str = "", fire_at: int = 0, fail_at: int = 0, previous: str = PREVIOUS,
               script: str = "deploy.sh") -> tuple[subprocess.CompletedProcess, list[str]]:
    return run_with_fakes(bundle, tmp_path, FAKES, script=script, timeout=120,
                          knobs={"PREVIOUS": previous, "FLEET": " ".join(FLEET), "UNHEALTHY": unhealthy,
                                 "FIRE_AT": fire_at, "FAIL_AT": fail_at})


def release(calls: list[str]) -> list[str]:
    """What the release did, in order: custom data set (new or previous), VMs brought to the model
    and reimaged, health read, pauses, alert reads."""
    steps = []
    for call in calls:
        words = shlex.split(call)
        if words[:3] == ["az", "vmss", "update"]:
            data = next(w for w in words if w.startswith("virtualMachineProfile.osProfile.customData="))
            steps.append("custom data " + ("previous" if data.endswith("=" + PREVIOUS) else "new"))
        elif words[:3] in (["az", "vmss", "reimage"], ["az", "vmss", "update-instances"]):
            ids = words[words.index("--instance-ids") + 1:]
            steps.append(f"{words[2]} {' '.join(ids[:ids.index('--output')])}")
        elif words[:3] == ["az", "vmss", "get-instance-view"]:
            steps.append(f"health {words[words.index('--instance-id') + 1]}")
        elif words[:1] == ["sleep"] or words[:2] == ["az", "rest"]:
            steps.append("alerts" if words[0] == "az" else call)
        elif words[:5] == ["az", "monitor", "metrics", "alert", "create"]:
            steps.append(f"alert {words[words.index('--name') + 1]}: {words[words.index('--condition') + 1]}")
        elif words[:4] == ["az", "vmss", "extension", "set"]:
            steps.append("health extension")
    return steps


def batch(*ids: int) -> list[str]:
    """One batch: the VMs brought to the model, reimaged, then each healthy."""
    joined = " ".join(map(str, ids))
    return [f"update-instances {joined}", f"reimage {joined}", *(f"health {i}" for i in ids)]


GATE = ["health extension", "alert iris-release-errors: total BackendResponseStatus > 10 where HttpStatusGroup includes 5xx",
        "alert iris-release-latency: avg BackendLastByteResponseTime > 500", "custom data new"]


def test_a_good_canary_reimages_each_steps_share_in_batches_and_holds_each_pause_on_the_alerts(canary, tmp_path):
    result, calls = run_deploy(canary, tmp_path)
    assert result.returncode == 0, result.stderr
    # ten VMs, batches of 20% (2 VMs): 20% is one batch, 60% two more, 100% two more; 2m held as
    # two reads a minute apart, 90s as 60 + 30
    assert release(calls) == [*GATE, *batch(0, 1), "sleep 60", "alerts", "sleep 60", "alerts",
                              *batch(2, 3), *batch(4, 5), "sleep 60", "alerts", "sleep 30", "alerts",
                              *batch(6, 7), *batch(8, 9)]
    assert "released to all 10 VMs of scale set iris" in result.stdout
    # the errors alert allows 0.5% of the last hour's 120000 requests, per one-minute window
    assert "more than 10 5xx answers in 1m (0.5% of the last hour's 120000 requests)" in result.stdout


def test_a_vm_that_never_reports_healthy_puts_the_previous_custom_data_back_on_the_vms_changed(canary, tmp_path):
    result, calls = run_deploy(canary, tmp_path, unhealthy="3")
    assert result.returncode == 1
    assert "VM 3 did not report healthy within 1200 s of its reimage: the VMs 0 1 2 3 of scale set iris were reimaged back" in result.stderr
    steps = release(calls)
    waited = steps.index("health 3")
    # polled every 15 s for the 1200 s bound, then the rollback, and nothing after it
    assert steps[waited:waited + 161] == ["health 3", "sleep 15"] * 80 + ["health 3"]
    assert steps[waited + 161:] == ["custom data previous", "update-instances 0 1 2 3", "reimage 0 1 2 3"]
    assert steps[:waited] == [*GATE, *batch(0, 1), "sleep 60", "alerts", "sleep 60", "alerts",
                              "update-instances 2 3", "reimage 2 3", "health 2"]


def test_a_fired_release_alert_during_a_pause_rolls_the_changed_vms_back(canary, tmp_path):
    result, calls = run_deploy(canary, tmp_path, fire_at=3)
    assert result.returncode == 1 and "release alert iris-release-errors fired: the VMs 0 1 2 3 4 5" in result.stderr
    assert release(calls) == [*GATE, *batch(0, 1), "sleep 60", "alerts", "sleep 60", "alerts",
                              *batch(2, 3), *batch(4, 5), "sleep 60", "alerts",
                              "custom data previous", "update-instances 0 1 2 3 4 5", "reimage 0 1 2 3 4 5"]
    result, calls = run_deploy(canary, tmp_path, fail_at=1)
    assert result.returncode == 1 and "alerts could not be read: the VMs 0 1 of scale set iris" in result.stderr
    assert release(calls)[-3:] == ["custom data previous", "update-instances 0 1", "reimage 0 1"]


def test_a_canary_needs_the_copy_of_the_running_cloud_init_to_roll_back_to(canary, tmp_path):
    result, calls = run_deploy(canary, tmp_path, previous="")
    assert result.returncode == 1 and "keeps no copy of the cloud-init.yaml it runs" in result.stderr
    assert not [step for step in release(calls) if step.startswith(("custom data", "reimage"))]


def test_all_at_once_reimages_one_vm_at_a_time_and_stops_at_the_first_unhealthy_one(all_at_once, tmp_path):
    result, calls = run_deploy(all_at_once, tmp_path)
    assert result.returncode == 0, result.stderr
    assert release(calls) == ["health extension", "custom data new", *(s for i in range(10) for s in batch(i))]
    result, calls = run_deploy(all_at_once, tmp_path, unhealthy="2")
    assert result.returncode == 1
    assert "VM 2 did not report healthy within 1200 s of its reimage: the update stopped there" in result.stderr
    assert "run the previous bundle's deploy.sh" in result.stderr
    reimaged = [step for step in release(calls) if step.startswith("reimage")]
    assert reimaged == ["reimage 0", "reimage 1", "reimage 2"]  # VMs 3 to 9 keep the previous version


def test_a_fleet_already_on_this_cloud_init_is_left_alone(canary, all_at_once, tmp_path):
    for bundle in (canary, all_at_once):
        current = base64.b64encode((bundle / "cloud-init.yaml").read_bytes()).decode()
        result, calls = run_deploy(bundle, tmp_path / bundle.parent.parent.name, previous=current)
        assert result.returncode == 0 and "already runs this cloud-init.yaml" in result.stdout, result.stderr
        assert not [step for step in release(calls) if not step.startswith("health extension")], calls


def test_a_canary_without_the_application_gateway_is_refused_at_its_line(tmp_path):
    result = render(tmp_path, "rollout.strategy=canary", f"{AZURE}}}")
    assert result.returncode == 1 and "rollout.strategy: a canary on Azure is gated by the Application Gateway's answers" in result.stderr
    assert "set targets.cloud.certificate" in result.stderr and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "a canary on Azure" in line]
    assert line.startswith("--set rollout.strategy=canary"), line


def test_shellcheck_passes_and_az_parses_every_command_of_the_release_and_its_teardown(canary, all_at_once, tmp_path):
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", *(str(b / s) for b in (canary, all_at_once)
                                 for s in ("deploy.sh", "teardown.sh"))], capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    _, calls = run_deploy(canary, tmp_path / "canary", fire_at=3)
    _, unhealthy = run_deploy(all_at_once, tmp_path / "all", unhealthy="2")
    _, removals = run_deploy(canary, tmp_path / "teardown", script="teardown.sh")
    assert any("monitor metrics alert delete" in c and "iris-release-errors" in c for c in removals), removals
    # and a first deploy (the scale set created, Uniform, with its user data and health extension), as --dry-run prints it
    created = [shlex.join(c) for b in (canary, all_at_once) for c in dry_run_commands(b / "deploy.sh", "az")]
    assert any("--orchestration-mode Uniform" in c and "--user-data" in c for c in created)
    commands = [shlex.split(c) for c in calls + unhealthy + removals + created if c.startswith("az ")]
    distinct = list({tuple(c): c for c in commands if c[1:3] != ["account", "show"]}.values())
    assert any(c[1] == "rest" for c in distinct) and any(c[1:4] == ["monitor", "metrics", "list"] for c in distinct)
    verdicts = check_commands(distinct, tmp_path, cwd=canary)
    assert all(v.accepted for v in verdicts), "\n".join(str(v) for v in verdicts if not v.accepted)
