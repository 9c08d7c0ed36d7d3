"""rollout on the cloud target: what AWS's instance refresh cannot carry out is a located error
before anything renders (one pause for every checkpoint, at most AWS's CheckpointDelay, an image
it can roll back to), and a strategy no provider's fleet releases with is refused naming the one
that can. The refresh itself is checked against moto (tests/test_target_cloud_aws.py)."""

from __future__ import annotations

import pytest

from helpers import EXAMPLES, run_mlgen
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
     "rollout.strategy: the cloud target releases with canary on aws only, not on gcp"),
    (["targets.cloud={provider: azure, allowed_cidrs: [203.0.113.0/24]}"],
     "rollout.strategy: the cloud target releases with canary on aws only, not on azure"),
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
