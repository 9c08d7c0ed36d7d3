"""How a cloud fleet takes a new version (the spec's `rollout`), per provider.

AWS carries out a canary with an instance refresh: the steps' weights become its checkpoints
(the share of instances replaced), the steps' pause its one CheckpointDelay, and the release
alarms (monitoring.aws_release_alarms) its AlarmSpecification, with AutoRollback back to the
launch template version the group ran before. GCP carries it out in deploy.sh: rolling updates
with a canary version of each step's size, and between them the release alert policy
(monitoring.gcp_release_policy) checked for an open alert, on which the group goes back to the
template it ran; only behind the HTTPS balancer, whose metrics count HTTP answers. Azure releases
all at once (WHY_NOT): a canary there is refused at rollout.strategy, naming the providers that can.

The platform limits a release is checked against are data with their source and the date they
were read, like the serverless target's (generator/targets/serverless/limits.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.targets.serverless.limits import Limit

if TYPE_CHECKING:  # settings.py builds the Release from this module
    from mlgen.targets.cloud.settings import CloudSettings

_REFRESH_PREFERENCES = "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html"
_AS_OF = "2026-11-30"

# AWS: one delay after every checkpoint, 0 to 172800 seconds (RefreshPreferences.CheckpointDelay).
CHECKPOINT_DELAY = Limit(172800, "s", _REFRESH_PREFERENCES, _AS_OF, "one value for every checkpoint")
# AWS: a rollback needs an explicit launch template version and an AMI id, not an SSM parameter
# (RefreshPreferences.AutoRollback).
ROLLBACK_NEEDS_AMI = ("an instance refresh rolls back only a launch template whose ImageId is an AMI id, "
                      f"not a resolve:ssm: parameter ({_REFRESH_PREFERENCES}, AutoRollback)")
# The providers whose deploy.sh carries out each gradual strategy.
GRADUAL = {"canary": ("aws", "gcp")}
# Why a provider's fleet does not: said in the refusal.
WHY_NOT = {"azure": "a scale set's rolling upgrade policy brings VMs to the scale set's model without reimaging "
                    "them, and cloud-init runs new custom data only on a reimaged VM, so deploy.sh reimages one VM "
                    "at a time, with no gate"}
# Instances keep serving while the refresh replaces them, as for an all_at_once refresh.
MIN_HEALTHY_PERCENT = 90
INSTANCE_WARMUP_S = 300
# ALB metrics come per minute: the release alarms' period is the analysis interval rounded up to one.
ALB_METRIC_PERIOD_S = 60


@dataclass(frozen=True)
class Release:
    """A canary of the fleet: its steps and the alarms (AWS) or alert policy (GCP) that stop it."""

    steps: tuple[tuple[int, int], ...]  # (percent of the instances on the new version, pause in s)
    alarms: tuple[str, ...]  # the CloudWatch alarms' names (AWS), the alert policy's display name (GCP)
    check_every_s: int  # GCP: how often deploy.sh reads the open alerts during a pause

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """AWS's CheckpointPercentages: the share of instances replaced at each step, ending at 100."""
        return tuple(weight for weight, _ in self.steps)

    @property
    def pause_s(self) -> int:
        """AWS's CheckpointDelay: one pause after every checkpoint (the fitness check refuses others)."""
        return max(pause for _, pause in self.steps)

    @property
    def aws_preferences(self) -> dict:
        return {"MinHealthyPercentage": MIN_HEALTHY_PERCENT, "InstanceWarmup": INSTANCE_WARMUP_S,
                "CheckpointPercentages": list(self.checkpoints), "CheckpointDelay": self.pause_s,
                "AutoRollback": True, "AlarmSpecification": {"Alarms": list(self.alarms)}}


def alarm_period_s(model: ServiceModel) -> int:
    """The release alarms' period: rollout.analysis.interval in whole minutes, at least one."""
    return max(1, -(-model.rollout.interval_s // ALB_METRIC_PERIOD_S)) * ALB_METRIC_PERIOD_S


def release(model: ServiceModel, provider: str, alarms: tuple[str, ...]) -> Release | None:
    if model.rollout.strategy != "canary" or provider not in GRADUAL["canary"]:
        return None
    return Release(tuple((step.weight, step.pause_s) for step in model.rollout.steps), alarms, alarm_period_s(model))


def release_problems(model: ServiceModel, settings: CloudSettings) -> list[Problem]:
    rollout, provider = model.rollout, settings.provider
    if not rollout.gradual:
        return []
    able = GRADUAL.get(rollout.strategy, ())
    if provider not in able:
        why = f": {WHY_NOT[provider]}" if provider in WHY_NOT else ""
        return [model.problem(("rollout", "strategy"), f"the cloud target releases with {rollout.strategy} on "
                              f"{' and '.join(able)} only, not on {provider}{why}",
                              hint=f"use provider {' or '.join(able)}, or rollout.strategy all_at_once on {provider}")]
    problems = []
    if rollout.interval_s % ALB_METRIC_PERIOD_S:
        problems.append(model.problem(("rollout", "analysis", "interval"),
                                      f"the load balancer's metrics come per minute: the release "
                                      f"{'alarms measure' if provider == 'aws' else 'gate is read'} every "
                                      f"{alarm_period_s(model)} s", warning=True))
    if provider == "gcp":
        if not settings.edge.https:
            problems.append(model.problem(("rollout", "strategy"), "a canary on GCP is gated by the HTTPS balancer's "
                                          "answers: the passthrough network load balancer counts no HTTP answers",
                                          hint="set targets.cloud.certificate (the fleet gets an external Application "
                                               "Load Balancer), or rollout.strategy all_at_once"))
        return problems
    pauses = [step.pause_s for step in rollout.steps[:-1]]
    for index, pause in enumerate(pauses):
        if pause != pauses[0]:
            problems.append(model.problem(("rollout", "steps", index, "pause"),
                                          f"AWS waits one CheckpointDelay after every checkpoint of an instance refresh: "
                                          f"this step's pause ({pause} s) differs from the first step's ({pauses[0]} s)",
                                          hint=f"give every step but the last the same pause ({CHECKPOINT_DELAY.source})"))
        if pause > CHECKPOINT_DELAY.value:
            problems.append(model.problem(("rollout", "steps", index, "pause"),
                                          f"AWS waits at most {CHECKPOINT_DELAY} after an instance refresh checkpoint: "
                                          f"this pause is {pause} s", hint=f"pause at most 48h ({CHECKPOINT_DELAY.source})"))
    image = settings.image
    if image.startswith("resolve:ssm:"):
        where = ("targets", "cloud", "image") if settings.custom_image else ("runtime", "python")
        problems.append(model.problem(where, f"canary on AWS: {ROLLBACK_NEEDS_AMI}, and the image is {image}",
                                      hint="set targets.cloud.image to an AMI id (ami-…): "
                                           f"aws ssm get-parameter --name {image.removeprefix('resolve:ssm:')} "
                                           "--query Parameter.Value"))
    return problems
