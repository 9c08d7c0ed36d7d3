"""Kubernetes: one Deployment per pipeline stage (or one for the whole pipeline), kustomize base and
overlays, a Dockerfile for the image and a compose file that runs the same stages locally.

What each file holds and why is in docs/targets/kubernetes.md; the workloads themselves (names,
commands, labels) are worked out once in workloads.py, and every value the templates print once in
settings.py, so manifests, compose and tests agree.
"""

from __future__ import annotations

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.targets.base import SPEC_FIELDS, Target, TradeOff, schema_fragment
from mlgen.targets.kubernetes.artifact import access_warnings
from mlgen.targets.kubernetes.bundle import plan
from mlgen.targets.kubernetes.filters import FILTERS
from mlgen.targets.kubernetes.fitness import admin_port_problems, autoscaling_problems, grpc_problems, network_problems
from mlgen.targets.kubernetes.rollout import release_problems
from mlgen.targets.kubernetes.settings import image_platform, kubernetes_settings


def fit(model: ServiceModel) -> list[Problem]:
    settings = kubernetes_settings(model)
    problems = []
    if settings.local_image:
        problems.append(model.problem(
            ("targets", "kubernetes"), "no targets.kubernetes.image: the manifests use a local tag",
            hint="set image to where your registry keeps the build, pinned by digest", warning=True))
    elif "@sha256:" not in settings.image:
        problems.append(model.problem(
            ("targets", "kubernetes", "image"), f"image {settings.image} is a tag, which can move under a running Deployment",
            hint="pin it by digest (registry/name@sha256:…) so every pod runs the same build", warning=True))
    if settings.image_python and settings.image_python != model.runtime.python:
        problems.append(model.problem(
            ("runtime", "python"), f"the GPU image {settings.base_image} (Ubuntu 24.04) installs Python "
            f"{settings.image_python}, not {model.runtime.python}",
            hint=f"set runtime.python: \"{settings.image_python}\", or targets.kubernetes.base_image to a CUDA image "
                 f"whose `python` is {model.runtime.python}"))
    if "@sha256:" not in settings.base_image:
        problems.append(model.problem(
            ("targets", "kubernetes", "base_image"), f"the Dockerfile builds FROM {settings.base_image}, a tag, which moves "
            "with every patch release: two builds of the same bundle can differ",
            hint="pin base_image by digest (name:tag@sha256:…) so every build starts from the same image", warning=True))
    problems += autoscaling_problems(model, settings) + grpc_problems(model, settings) + network_problems(model, settings)
    problems += admin_port_problems(model, settings)
    problems += release_problems(model, settings.flavor, settings.service_monitor)
    if settings.service_monitor and not model.observability.metrics:
        problems.append(model.problem(
            ("targets", "kubernetes", "service_monitor"), "a ServiceMonitor needs metrics",
            hint="set observability.metrics: true, or service_monitor: false"))
    return problems


def model_access(model: ServiceModel) -> list[Problem]:
    return access_warnings(model, model.target("kubernetes")["service_account_annotations"])


def open_to(model: ServiceModel) -> str | None:
    """Who reaches the entry stage without credentials (security.auth none): the Ingress's clients;
    without an Ingress only what the NetworkPolicy admits inside the cluster."""
    host = model.target("kubernetes")["ingress"].get("host")
    return f"anyone who reaches {host} through the Ingress" if host else None


TARGET = Target(
    name="kubernetes",
    schema=schema_fragment(__file__),
    trade_off=TradeOff(
        choose_when="the pipeline is split into stages that should scale and fail separately, you already run a cluster, GPUs on some nodes",
        give_up="a cluster to operate; an image to build and pin",
    ),
    docs="docs/targets/kubernetes.md",
    summary="a Kubernetes service per pipeline stage (Deployments, KServe or Knative) with autoscaling, restricted pods and kustomize overlays",
    # Each flavor and the autoscaler that only Deployments take: goldens and hostile specs render each.
    # The release strategies Argo Rollouts carries out (a spec field outside targets.kubernetes);
    # KServe and Knative release all at once (their own traffic split is theirs to drive).
    variants={"": {}, "kserve": {"flavor": "kserve", SPEC_FIELDS: {"rollout": {"strategy": "all_at_once"}}},
              "knative": {"flavor": "knative", SPEC_FIELDS: {"rollout": {"strategy": "all_at_once"}}},
              "keda": {"autoscaling": "keda"},
              "canary": {"service_monitor": True, SPEC_FIELDS: {"rollout": {"strategy": "canary"}}},
              "bluegreen": {"service_monitor": True, SPEC_FIELDS: {"rollout": {"strategy": "blue_green"}}}},
    plan=plan,
    fit=fit,
    open_to=open_to,
    model_access=model_access,
    admin_port=True,
    filters=FILTERS,
    platform=image_platform,
    # Argo Rollouts carries out canary and blue-green (rollout.py); all_at_once is the Deployment's rolling update.
    rollouts=("all_at_once", "canary", "blue_green"),
)
