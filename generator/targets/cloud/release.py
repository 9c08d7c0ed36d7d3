"""How a cloud fleet takes a new version (the spec's `rollout`), per provider.

AWS carries out a canary with an instance refresh: the steps' weights become its checkpoints
(the share of instances replaced), the steps' pause its one CheckpointDelay, and the release
alarms (monitoring.aws_release_alarms) its AlarmSpecification, with AutoRollback back to the
launch template version the group ran before. GCP carries it out in deploy.sh: rolling updates
with a canary version of each step's size, and between them the release alert policy
(monitoring.gcp_release_policy) checked for an open alert, on which the group goes back to the
template it ran; only behind the HTTPS balancer, whose metrics count HTTP answers. Azure's deploy.sh
reimages the scale set's VMs in batches (a rolling upgrade would not reimage them, and cloud-init
runs new custom data only on a reimaged VM), each VM waited for until the Application Health
extension reports it healthy; a canary holds each step while the release alerts on the Application
Gateway (monitoring.azure_release_gate) stay quiet, and puts the previous custom data back on the
VMs it changed otherwise; only behind the gateway, for the same reason as GCP's.

The platform limits a release is checked against are data with their source and the date they
were read, like the serverless target's (generator/targets/serverless/limits.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.targets.serverless.limits import Limit

if TYPE_CHECKING:  # settings.py builds the Release from this module
    from mlgen.targets.cloud.monitoring import AzureGate
    from mlgen.targets.cloud.settings import CloudSettings

_REFRESH_PREFERENCES = "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html"
_AS_OF = "2026-11-30"

# AWS: one delay after every checkpoint, 0 to 172800 seconds (RefreshPreferences.CheckpointDelay).
CHECKPOINT_DELAY = Limit(172800, "s", _REFRESH_PREFERENCES, _AS_OF, "one value for every checkpoint")
# AWS: a rollback needs an explicit launch template version and an AMI id, not an SSM parameter
# (RefreshPreferences.AutoRollback).
ROLLBACK_NEEDS_AMI = ("an instance refresh rolls back only a launch template whose ImageId is an AMI id, "
                      f"not a resolve:ssm: parameter ({_REFRESH_PREFERENCES}, AutoRollback)")
_AZURE_ROLLING = ("https://learn.microsoft.com/azure/virtual-machine-scale-sets/"
                  "virtual-machine-scale-sets-configure-rolling-upgrades")
_AZURE_HEALTH = "https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-health-extension"
_AZURE_METRIC_ALERTS = "https://learn.microsoft.com/azure/templates/microsoft.insights/metricalerts"

# Azure: a canary step reimages at most this share of the scale set at once, as Azure's own rolling
# upgrades do by default (maxBatchInstancePercent).
AZURE_BATCH_PERCENT = Limit(20, "%", _AZURE_ROLLING, _AS_OF, "the share of the VMs reimaged at once")
# Azure: the windows a metric alert aggregates over (windowSize); the analysis interval is rounded up to one.
AZURE_ALERT_WINDOWS = {60: "1m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h", 21600: "6h", 43200: "12h", 86400: "24h"}
AZURE_ALERT_WINDOW = Limit(86400, "s", _AZURE_METRIC_ALERTS, _AS_OF, "the longest windowSize of a metric alert")
# How long deploy.sh waits for a reimaged VM to report healthy: a fresh VM installs packages and
# the service before its readiness path answers. Not a platform limit: the script's own bound.
AZURE_HEALTHY_WITHIN_S = 1200
AZURE_HEALTH_POLL_S = 15
# The Application Health extension (binary health states): the VM's own readiness path, probed from inside.
AZURE_HEALTH_EXTENSION = ("ApplicationHealthLinux", "Microsoft.ManagedServices", "1.0")
# The providers whose deploy.sh carries out each gradual strategy.
GRADUAL = {"canary": ("aws", "gcp", "azure")}
# Instances keep serving while the refresh replaces them, as for an all_at_once refresh.
MIN_HEALTHY_PERCENT = 90
INSTANCE_WARMUP_S = 300
# ALB metrics come per minute: the release alarms' period is the analysis interval rounded up to one.
ALB_METRIC_PERIOD_S = 60


@dataclass(frozen=True)
class Release:
    """A canary of the fleet: its steps and the alarms (AWS) or alert policy (GCP) that stop it."""

    steps: tuple[tuple[int, int], ...]  # (percent of the instances on the new version, pause in s)
    alarms: tuple[str, ...]  # the CloudWatch alarms' (AWS) or metric alerts' (Azure) names, the alert policy's display name (GCP)
    check_every_s: int  # GCP, Azure: how often deploy.sh reads the open alerts during a pause
    azure: AzureGate | None = None  # Azure: the metric alerts deploy.sh puts on the gateway

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


@dataclass(frozen=True)
class AzureHealth:
    """How Azure's deploy.sh knows a reimaged VM serves: the Application Health extension probes the
    readiness path from inside the VM and the scale set reports it per VM (vmHealth)."""

    extension: tuple[str, str, str]  # name, publisher, version
    settings: Mapping  # the extension's public settings
    batch_percent: int = AZURE_BATCH_PERCENT.value
    healthy_within_s: int = AZURE_HEALTHY_WITHIN_S
    poll_s: int = AZURE_HEALTH_POLL_S


def azure_health(port: int, path: str) -> AzureHealth:
    return AzureHealth(AZURE_HEALTH_EXTENSION, {"protocol": "http", "port": port, "requestPath": path})


def azure_alert_window_s(model: ServiceModel) -> int:
    """The release alerts' window: the shortest metric alert window that holds rollout.analysis.interval."""
    return next((window for window in AZURE_ALERT_WINDOWS if window >= model.rollout.interval_s), AZURE_ALERT_WINDOW.value)


def alarm_period_s(model: ServiceModel) -> int:
    """The release alarms' period: rollout.analysis.interval in whole minutes, at least one."""
    return max(1, -(-model.rollout.interval_s // ALB_METRIC_PERIOD_S)) * ALB_METRIC_PERIOD_S


def release(model: ServiceModel, provider: str, alarms: tuple[str, ...]) -> Release | None:
    if model.rollout.strategy != "canary" or provider not in GRADUAL["canary"]:
        return None
    from mlgen.targets.cloud.monitoring import azure_release_gate  # monitoring.py reads this module's windows

    window = azure_alert_window_s(model)
    gate = azure_release_gate(model, alarms, AZURE_ALERT_WINDOWS[window], window) if provider == "azure" else None
    return Release(tuple((step.weight, step.pause_s) for step in model.rollout.steps), alarms, alarm_period_s(model), gate)


def release_problems(model: ServiceModel, settings: CloudSettings) -> list[Problem]:
    rollout, provider = model.rollout, settings.provider
    if not rollout.gradual:
        return []
    able = GRADUAL.get(rollout.strategy, ())
    if provider not in able:
        return [model.problem(("rollout", "strategy"), f"the cloud target releases with {rollout.strategy} on "
                              f"{', '.join(able)} only, not on {provider}",
                              hint=f"use provider {' or '.join(able)}, or rollout.strategy all_at_once on {provider}")]
    problems = []
    if rollout.interval_s % ALB_METRIC_PERIOD_S and provider != "azure":  # Azure's windows: below
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
    if provider == "azure":
        return problems + azure_release_problems(model, settings)
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


def azure_release_problems(model: ServiceModel, settings: CloudSettings) -> list[Problem]:
    """A canary on Azure is gated by the Application Gateway's metrics (the layer-4 load balancer
    counts no HTTP answers), over a metric alert window Azure offers."""
    problems = []
    if not settings.edge.azure_gateway:
        problems.append(model.problem(("rollout", "strategy"), "a canary on Azure is gated by the Application Gateway's "
                                      "answers: the layer-4 load balancer counts no HTTP answers",
                                      hint="set targets.cloud.certificate (a Key Vault secret id: the fleet gets an "
                                           "Application Gateway), or rollout.strategy all_at_once"))
    interval = model.rollout.interval_s
    if interval > AZURE_ALERT_WINDOW.value:
        problems.append(model.problem(("rollout", "analysis", "interval"),
                                      f"an Azure metric alert measures over at most {AZURE_ALERT_WINDOW}: the interval is "
                                      f"{interval} s", hint=f"use 24h or less ({AZURE_ALERT_WINDOW.source})"))
    elif interval not in AZURE_ALERT_WINDOWS:
        problems.append(model.problem(("rollout", "analysis", "interval"),
                                      f"Azure's metric alerts measure over {', '.join(AZURE_ALERT_WINDOWS.values())} only: "
                                      f"the release alerts measure over {AZURE_ALERT_WINDOWS[azure_alert_window_s(model)]}",
                                      warning=True))
    return problems
