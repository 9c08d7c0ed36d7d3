"""Progressive delivery (the spec's `rollout`) with Argo Rollouts, worked out once: every stage's
Deployment becomes a `Rollout` with the same pod template, gated by one `AnalysisTemplate` whose
Prometheus queries are the alert rules' own expressions narrowed to the new version's pods.

Why a full Rollout and not a `workloadRef` to a Deployment: with workloadRef the Deployment stays
in the cluster scaled to zero, its HPA and overlays would have to follow the Rollout anyway, and
two objects would carry the pod template; one Rollout with the Deployment's template is one object
that the HPA, the overlays and `kubectl argo rollouts` all name.

Why every stage of a split pipeline and not the entry stage only: every stage runs the same image,
and the model lives in `predict`; releasing the gateway gradually while the model rolled out at
once would gate the wrong code. Each stage's analysis reads that stage's own answers.

Why a Job in a blue-green preview: the preview Service gets no client traffic, so the Prometheus
metrics alone would judge nothing. A Job from the new image sends the spec's examples to the entry
stage's preview and judges the answers (generator/smoke.py, the judge of mlgen verify and the
on-prem release); its requests are also what the Prometheus metrics then measure. A canary runs the
same Job as the step after its first weight, against `<entry>-canary`, a Service Argo narrows to
the new pods (canaryService): the stage's own Service balances across both versions, so an example
sent there could be answered by the old one. Only the entry stage runs it: the other stages of a
split pipeline answer the gateway's intermediate tensors, not the spec's examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from mlgen import smoke
from mlgen.errors import Problem
from mlgen.examples import RELEASE_EXAMPLES, RELEASE_SMOKE, probes
from mlgen.monitoring.rules import SLO, slo
from mlgen.spec import ServiceModel
from mlgen.spec.model import RolloutStep, SecretRef
from mlgen.targets.kubernetes.workloads import Workload

API_VERSION = "argoproj.io/v1alpha1"
# Argo Rollouts reads a pause as an intstr.IntOrString, whose number of seconds is an int32
# (argoproj/argo-rollouts pkg/apis/rollouts/v1alpha1/types.go, RolloutPause.Duration; checked
# 2026-08-17): about 68 years, so no practical limit, but a spec may write longer.
PAUSE_LIMIT_S = 2**31 - 1
PAUSE_LIMIT_SOURCE = "argoproj/argo-rollouts pkg/apis/rollouts/v1alpha1/types.go, RolloutPause.Duration (int32 seconds)"
HASH_LABEL = "rollouts-pod-template-hash"  # Argo's label on every pod of a ReplicaSet it made
HASH_SERIES_LABEL = "rollouts_pod_template_hash"  # the same label on the scraped series (the scrape copies it)
# Blue-green: Argo labels the preview's pods `preview` and, once promoted, `active`; the scrape drops
# an active pod reached through the preview Service (both Services select it after promotion).
ROLE_LABEL = "mlgen.dev/role"
# The old version stays this long after a blue-green switch: kube-proxy and the ingress controller
# move their endpoints off it first (Argo's own default).
SCALE_DOWN_DELAY_S = 30
# Two measurements over a threshold fail the release, so one noisy interval does not roll it back.
FAILURE_LIMIT = 1
MIN_WINDOW_S = 120  # a rate needs at least four of the ServiceMonitor's 30 s scrapes
STAGE_ARG = "stage"
HASH_ARG = "pod-template-hash"
# Where the image carries release/ (the Dockerfile copies it there: app/ stays the same on every target).
CHECK_DIR = "/opt/mlgen"
CHECK_COMPONENT = "release-check"  # app.kubernetes.io/component of the Job's pod: no stage's selector
# The Job's time: the image is already on the node (the preview pods pulled it), Python starts in
# about a second, and smoke.py waits at most TIMEOUT_S for each answer.
CHECK_START_S = 60
KEY_DIRECTORY = "/var/run/secrets/mlgen"  # where the Job mounts the API key (security.auth api_key)
KEY_FILE = "api-key"


@dataclass(frozen=True)
class ReleaseCheck:
    """The spec's examples, sent by a Job from the new image to the entry stage's preview Service
    and judged by smoke.py: one measurement of its own AnalysisTemplate, which fails on a wrong
    answer or none."""

    template: str  # the AnalysisTemplate's name: <name>-examples
    rollout: str  # the entry stage's Rollout: the only one that runs it
    service: str  # what it sends the examples to: <entry>-preview, or <entry>-canary (Argo's canaryService)
    command: tuple[str, ...]
    header: str | None  # security.auth api_key: the header the key travels in
    api_key: SecretRef | None  # and the Secret holding the key (the stage's own first key)
    key_directory: str  # the mounted Secret, whose one file is key_file
    key_file: str
    deadline_s: int  # the Job's activeDeadlineSeconds
    labels: Mapping[str, str]  # the Job's pod: the service's labels, a component no stage selects
    selector: Mapping[str, str]  # what the NetworkPolicies select the Job's pod by
    directory: str  # where the image carries release/

    @property
    def key_path(self) -> str:
        return f"{self.key_directory}/{self.key_file}"


@dataclass(frozen=True)
class Metric:
    """One measurement of the AnalysisTemplate: the query and when its result fails the release."""

    name: str
    query: str
    failure_condition: str


@dataclass(frozen=True)
class Release:
    """What the Rollouts and their AnalysisTemplate print."""

    strategy: str  # canary | blue_green
    steps: tuple[RolloutStep, ...]  # canary: setWeight, then pause (none after the last)
    preview_s: int  # blue_green: autoPromotionSeconds
    template: str  # the AnalysisTemplate's name
    prometheus_url: str
    interval: str  # how often each metric is measured (Argo's duration string)
    count: int | None  # blue_green: measurements over the preview; None: canary's runs in the background
    metrics: tuple[Metric, ...]
    scale_down_delay_s: int
    failure_limit: int
    stage_arg: str
    hash_arg: str
    hash_label: str
    hash_series_label: str
    role_label: str
    check: ReleaseCheck | None  # the examples sent to the entry stage's new pods

    def checks(self, workload: Workload) -> bool:
        """This stage's release sends the examples (the entry stage's, when there is a check)."""
        return bool(self.check) and workload.name == self.check.rollout

    def templates(self, workload: Workload) -> tuple[str, ...]:
        """The AnalysisTemplates this stage's blue-green pre-promotion analysis runs."""
        if self.checks(workload) and not self.canary:
            return (self.template, self.check.template)
        return (self.template,)

    @property
    def canary(self) -> bool:
        return self.strategy == "canary"


def release(model: ServiceModel, prometheus_url: str, entry: Workload) -> Release | None:
    """The release of a gradual `rollout`; None for all_at_once (a Deployment's rolling update)."""
    rollout = model.rollout
    if not rollout.gradual:
        return None
    window = f"{max(rollout.interval_s, MIN_WINDOW_S)}s"
    return Release(
        strategy=rollout.strategy,
        steps=rollout.steps,
        preview_s=rollout.preview_s,
        template=f"{model.name}-slo",
        prometheus_url=prometheus_url,
        interval=f"{rollout.interval_s}s",
        count=max(1, rollout.preview_s // rollout.interval_s) if rollout.strategy == "blue_green" else None,
        metrics=metrics(slo(model), window, rollout.max_error_ratio, rollout.max_latency_p99_ms),
        scale_down_delay_s=SCALE_DOWN_DELAY_S,
        failure_limit=FAILURE_LIMIT,
        stage_arg=STAGE_ARG,
        hash_arg=HASH_ARG,
        hash_label=HASH_LABEL,
        hash_series_label=HASH_SERIES_LABEL,
        role_label=ROLE_LABEL,
        check=release_check(model, entry, rollout.strategy),
    )


def release_check(model: ServiceModel, entry: Workload, strategy: str) -> ReleaseCheck | None:
    """The examples Job of a release, sent to the entry stage's preview (blue_green) or canary
    Service; None with security.auth jwt (a Job cannot sign a token the issuer would accept, and a
    check that always fails would block every release)."""
    security = model.security
    if security.auth == "jwt":
        return None
    key = security.api_keys[0] if security.auth == "api_key" else None
    selector = {**entry.selector, "app.kubernetes.io/component": CHECK_COMPONENT}
    service = f"{entry.name}-{'canary' if strategy == 'canary' else 'preview'}"
    url = f"http://{service}:{model.runtime.port}/v2/models/{model.name}/infer"
    return ReleaseCheck(
        template=f"{model.name}-examples",
        rollout=entry.name,
        service=service,
        command=("python", f"{CHECK_DIR}/{RELEASE_SMOKE}", f"{CHECK_DIR}/{RELEASE_EXAMPLES}", url),
        header=security.header if key else None,
        api_key=key,
        key_directory=KEY_DIRECTORY,
        key_file=KEY_FILE,
        deadline_s=CHECK_START_S + smoke.TIMEOUT_S * len(probes(model)),
        labels=MappingProxyType({**entry.labels, **selector}),
        selector=MappingProxyType(selector),
        directory=CHECK_DIR,
    )


def metrics(objectives: SLO, window: str, max_error_ratio: float, max_latency_p99_ms: int) -> tuple[Metric, ...]:
    """The alert rules' error ratio and p99 latency, of one stage's requests on the new version's
    pods (Argo fills in both arguments for each Rollout). No answer at all (no traffic yet: an empty
    result, or 0/0) is not a failure: a release is judged on the requests it served."""
    selector = objectives.inference_of(f"{{{{args.{STAGE_ARG}}}}}",
                                       f',{HASH_SERIES_LABEL}="{{{{args.{HASH_ARG}}}}}"')

    def over(threshold: float) -> str:
        return f"len(result) > 0 && result[0] > {threshold:g}"

    return (Metric("error-ratio", objectives.error_ratio_expr(window, selector), over(max_error_ratio)),
            Metric("latency-p99", objectives.latency_expr(0.99, window, selector=selector), over(max_latency_p99_ms / 1000)))


def release_problems(model: ServiceModel, flavor: str, service_monitor: bool) -> list[Problem]:
    """What a gradual rollout needs on Kubernetes: Deployments (KServe and Knative shift traffic
    their own way), the runtime's metrics for the analysis, and pauses Argo can hold."""
    rollout = model.rollout
    if not rollout.gradual:
        return []
    problems = []
    if flavor != "deployment":
        problems.append(model.problem(
            ("targets", "kubernetes", "flavor"), f"rollout.strategy {rollout.strategy} is carried out by Argo Rollouts, "
            f"which replaces Deployments; flavor {flavor} shifts traffic its own way",
            hint="use flavor: deployment with this rollout, or rollout.strategy: all_at_once and "
                 + ("KServe's canaryTrafficPercent" if flavor == "kserve" else "a Knative Service's traffic split")))
    if not model.observability.metrics:
        problems.append(model.problem(
            ("rollout", "strategy"), "the release's analysis reads the runtime's metrics",
            hint="set observability.metrics: true, or rollout.strategy: all_at_once"))
    elif not service_monitor:
        problems.append(model.problem(
            ("targets", "kubernetes", "service_monitor"), f"the release's analysis selects the new pods by the "
            f"{HASH_SERIES_LABEL} label, which the ServiceMonitor copies from the pods",
            hint=f"set service_monitor: true, or make your own scrape copy the pod label {HASH_LABEL}", warning=True))
    for index, step in enumerate(rollout.steps):
        if step.pause_s > PAUSE_LIMIT_S:
            problems.append(model.problem(
                ("rollout", "steps", index, "pause"), f"Argo Rollouts holds a pause of at most {PAUSE_LIMIT_S} s",
                hint=f"{PAUSE_LIMIT_SOURCE}: pause for less, or promote by hand (kubectl argo rollouts promote)"))
    return problems
