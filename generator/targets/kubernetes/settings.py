"""The spec's `targets.kubernetes` settings with every derived value (namespace, image, labels, the
workloads, resource names, the overlays, compose's environment) worked out once per plan, so
templates only print them. Schema defaults are already applied: keys with a default are read as
they are, optional keys without one are None when unset."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from mlgen.bundle import requirements, serving_config
from mlgen.lock import Locked, Platform, locked
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes import flavors
from mlgen.targets.kubernetes.artifact import ModelFetch, identity_pod_labels, model_fetch
from mlgen.targets.kubernetes.flavors import KServe, Keda, PatchTarget
from mlgen.targets.kubernetes.network import EgressRule, egress_rules, public_host
from mlgen.targets.kubernetes.rollout import API_VERSION as ROLLOUT_API, Release, release
from mlgen.targets.kubernetes.workloads import APP_DIR, LIVE, SERVING_PATH, Workload, command, workloads

CONTAINER = "runtime"  # the container's name in every Deployment (the dashboard's cAdvisor queries select it)
RUN_AS = 10001  # numeric, non-root: restricted Pod Security and hadolint both want a number
MANAGED_BY = "mlgen"
NAME_LABEL = "app.kubernetes.io/name"
VERSION_LABEL = "app.kubernetes.io/version"
INSTANCE_LABEL = "app.kubernetes.io/instance"
STARTUP_FAILURE_THRESHOLD = 60  # 5-second periods: five minutes for a model in the image to load
GRAFANA_SIDECAR_LABEL = "grafana_dashboard"  # what the Grafana Helm chart's dashboard sidecar looks for
PROMETHEUS_IMAGE = "docker.io/prom/prometheus:v3.5.0"  # compose only: a local look at the metrics and alerts
DRAIN_MARGIN_S = 10  # after SIGTERM the runtime drains for timeout_s; the pod gets this much longer
# The image's Python: Debian 12 (glibc 2.36) on amd64, which manylinux_2_28 wheels and older run on.
IMAGE_PLATFORM = "x86_64-manylinux_2_28"
DEFAULT_BASE_IMAGE = "docker.io/library/python:{python}-slim-bookworm"
ADMIN_PORT_NAME = "admin"
# compose has no NetworkPolicy: a split pipeline's gateway and stages share a token, a compose secret
# from a file compose-up.sh makes at first use (never rendered), named to the runtime by this variable.
STAGE_TOKEN_SECRET = "mlgen-stage-token"
STAGE_TOKEN_FILE = "secrets/stage-token"
STAGE_TOKEN_ENV = "MLGEN_STAGE_TOKEN_CREDENTIAL"
COMPOSE_SECRETS_DIR = "/run/secrets"  # where compose mounts its secrets; the runtime's $CREDENTIALS_DIRECTORY
# A GPU service's default image: NVIDIA's CUDA runtime with cuDNN (CUDA 12 and cuDNN 9, what
# onnxruntime-gpu's CUDA provider loads) on Ubuntu 24.04, which has no Python of its own in the
# image: the Dockerfile installs Ubuntu's, so runtime.python must be the one Ubuntu 24.04 carries.
CUDA_BASE_IMAGE = "docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
CUDA_IMAGE_PYTHON = "3.12"


@dataclass(frozen=True)
class Ingress:
    host: str | None  # None: no Ingress is rendered
    tls_secret: str | None  # None: plain HTTP; with a cert-manager issuer, the Secret cert-manager writes
    class_name: str
    path_type: str
    controller_namespace: str  # the entry stage's NetworkPolicy admits traffic from here, Ingress or not
    annotations: Mapping[str, str]  # cert-manager's issuer annotation, when one issues the certificate
    public: bool  # the host resolves outside the cluster's private names (plain HTTP there is a warning)


@dataclass(frozen=True)
class Overlay:
    """What a kustomize overlay changes in the base."""

    environment: str
    instance: str  # app.kubernetes.io/instance: `<name>-<environment>`
    min_replicas: int
    max_replicas: int
    requests: Mapping[str, str] | None  # None: the base's requests stay


@dataclass(frozen=True)
class KubernetesSettings:
    name: str
    namespace: str
    image: str
    local_image: bool  # no targets.kubernetes.image: a local build tagged `<name>:local`
    labels: Mapping[str, str]  # on every object: the spec's labels, then the app.kubernetes.io ones
    selector: Mapping[str, str]  # every pod of the service, whatever its stage
    workloads: tuple[Workload, ...]  # the entry stage first
    stage_urls: Mapping[str, str] | None  # in-cluster stage addresses for the gateway; None when collocated
    serving_json: str  # the ConfigMap's serving.json
    serving_checksum: str  # its sha256 on every pod template, so a change rolls the pods
    serving_config_map: str
    serving_path: str  # where every stage reads it
    ingress: Ingress
    service_monitor: bool
    monitoring_namespace: str
    gpu_node_selector: Mapping[str, str]
    dashboard_config_map: str
    dashboard_key: str  # the dashboard's file name inside its ConfigMap
    dashboard_labels: Mapping[str, str]
    overlays: tuple[Overlay, ...]
    termination_grace_s: int
    container: str
    run_as: int
    user: str  # "uid:gid" for the Dockerfile and compose
    app_dir: str
    image_command: tuple[str, ...]  # the image's CMD: the whole pipeline in one container
    healthcheck: tuple[str, ...]  # the image's HEALTHCHECK command (its CMD runs the entry stage)
    stage_healthcheck: tuple[str, ...] | None  # compose's for the other stages, when the entry's is on admin_port
    compose_env: Mapping[str, str]  # the spec's env with `$` doubled: compose interpolates `$`
    compose_secrets: Mapping[str, str]  # env name → compose's "required from your shell" reference
    compose_port: str  # where compose publishes the entry stage: loopback only
    # The entry stage's gRPC port (runtime.grpc_port; the runtime serves gRPC in the entry process
    # only); None: HTTP only. Its readiness and startup probes ask the gRPC health service.
    grpc_port: int | None
    compose_grpc_port: str | None  # where compose publishes it: loopback only
    # A split pipeline under compose: the stage token's compose secret (None: one stage, nothing to guard).
    compose_stage_token: str | None
    prometheus_service: str
    prometheus_image: str
    flavor: str  # deployment | kserve | knative
    autoscaling: str  # cpu | requests | keda
    scale_to_zero: bool  # scaling.min_replicas is 0 and the flavor and autoscaler can wake from it
    port_name: str  # the container port's name: Knative (and KServe on it) accept only http1 or h2c
    probe_port: str | int  # what the probes name: Knative accepts only the container port's number
    # runtime.admin_port: the entry stage's health and metrics, off the port the Ingress reaches
    # (Deployments only; the stages behind the entry keep theirs on their one port).
    admin_port: int | None
    target_concurrency: int  # in-flight requests per replica for autoscaling: requests
    in_flight_metric: str  # the per-pod metric the HPAs of `requests` read through the Prometheus Adapter
    adapter_rule: Mapping | None  # the Prometheus Adapter's rule for it; None unless deployment + requests
    kserve: KServe | None  # None unless flavor kserve
    knative_annotations: Mapping[str, str] | None  # None unless flavor knative
    keda: Keda | None  # None unless autoscaling keda
    on_knative: bool  # Knative runs the pods (knative, or kserve's Serverless mode): its pod rules apply
    platform_namespaces: tuple[str, ...]  # KServe/Knative: where the traffic to the pods comes from
    replica_patch: PatchTarget  # what the overlays patch for min/max replicas
    requests_patch: PatchTarget  # and for the requests
    # model.uri: the cache volume, startup allowance and store egress of the stage that loads the
    # model (predict, or the whole pipeline); None for a model in the image.
    model_fetch: ModelFetch | None
    service_account_annotations: Mapping[str, str]  # the platform identity (IRSA, Workload Identity)
    identity_pod_labels: Mapping[str, str]  # what that identity's webhook looks for on the pods
    egress: tuple[EgressRule, ...]  # targets.kubernetes.egress: where the pods may call beside DNS
    locked: Locked  # app/requirements.txt: pinned with hashes when the spec's lock covers the image
    base_image: str  # the Dockerfile's FROM: targets.kubernetes.base_image, the official python image, or CUDA's
    image_python: str | None  # a Python the Dockerfile installs from the base image's OS (CUDA's has none)
    cuda: bool  # the model computes on the pod's GPUs (uses_cuda_image)
    image_repository: str  # the image without tag or digest: what build-image.sh pushes and the overlays pin
    image_tag: str  # the tag build-image.sh pushes before it reads the digest
    image_digest: str | None  # the spec's image digest ("sha256:…"), pinned in the overlays' images:
    # rollout canary or blue_green: Argo Rollouts instead of Deployments; None: all_at_once.
    release: Release | None
    workload_api: tuple[str, str]  # (apiVersion, kind) of each stage's workload: what autoscalers scale

    @property
    def require_hashes(self) -> bool:
        return self.locked.hashed

    @property
    def entry(self) -> Workload:
        return self.workloads[0]

    stage_token_file = STAGE_TOKEN_FILE
    stage_token_env = STAGE_TOKEN_ENV
    compose_secrets_dir = COMPOSE_SECRETS_DIR

    @property
    def internal_workloads(self) -> tuple[Workload, ...]:
        """The stages behind the entry stage: reachable from it only."""
        return self.workloads[1:]

    @property
    def label_selector(self) -> str:
        """`selector` as a kustomize patch target's labelSelector."""
        return ",".join(f"{key}={value}" for key, value in self.selector.items())

    def resource(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    @property
    def loader(self) -> Workload:
        """The stage that runs the model (and fetches a model.uri one)."""
        return next(w for w in self.workloads if w.loads_model)

    def probe_port_of(self, workload: Workload) -> str | int:
        return ADMIN_PORT_NAME if self.admin_port and workload.entry else self.probe_port

    def fetches(self, workload: Workload) -> bool:
        """This stage fetches model.uri when it starts: it gets the cache and the longer startup."""
        return self.model_fetch is not None and workload.loads_model

    def startup_failure_threshold(self, workload: Workload) -> int:
        return self.model_fetch.startup_failure_threshold if self.fetches(workload) else STARTUP_FAILURE_THRESHOLD


def image_platform(model: ServiceModel) -> Platform:
    """The image's Python environment as `mlgen lock` resolves it."""
    return Platform("kubernetes", model.runtime.python, IMAGE_PLATFORM, tuple(requirements(model)))


def image_repository(image: str) -> str:
    """`registry:5000/ml/iris:1.0@sha256:…` → `registry:5000/ml/iris` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def _digest(image: str | None) -> str | None:
    digest = (image or "").partition("@")[2]
    return digest if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else None


def kubernetes_settings(model: ServiceModel) -> KubernetesSettings:
    spec = model.target("kubernetes")
    name, port = model.name, model.runtime.port
    # The spec's labels first: the recommended app.kubernetes.io labels mlgen relies on win. Version
    # and instance are on every object and pod template but in no selector: selectors are immutable,
    # and a version there would make every new version a new Deployment instead of a rolling update.
    labels = {**model.labels, NAME_LABEL: name, INSTANCE_LABEL: name, "app.kubernetes.io/part-of": name,
              "app.kubernetes.io/managed-by": MANAGED_BY}
    version = label_value(model.model.version)
    if version:
        labels[VERSION_LABEL] = version
    stages = workloads(model, labels)
    flavor, autoscaling = spec["flavor"], spec["autoscaling"]
    namespace = spec.get("namespace") or name
    ingress = spec["ingress"]
    kserve = flavors.kserve(model, stages, spec) if flavor == "kserve" else None
    urls = _stage_urls(stages, port, flavor, kserve, model) if model.pipeline.split else None
    # ASCII-only JSON: every character a spec value brings is a JSON escape, so the text can sit in a
    # YAML literal block unchanged (no line-break look-alikes such as U+2028 reach the YAML).
    serving = pretty_json(serving_config(model, urls), ascii_only=True)
    # knative, or kserve's Serverless mode: Knative's rules for pods and probes apply.
    on_knative = flavor == "knative" or (flavor == "kserve" and autoscaling == "requests")
    port_name = "http" if flavor == "deployment" else flavors.KNATIVE_PORT_NAME
    scale_to_zero = model.scaling.min_replicas == 0 and flavors.scales_to_zero(
        flavor, autoscaling, spec["keda"].get("query"))
    gradual = release(model, flavors.prometheus_url(spec), stages[0])
    return KubernetesSettings(
        name=name,
        namespace=namespace,
        image=spec.get("image") or f"{name}:local",
        local_image=not spec.get("image"),
        labels=_frozen(labels),
        selector=_frozen({NAME_LABEL: name}),
        workloads=stages,
        stage_urls=_frozen(urls) if urls else None,
        serving_json=serving,
        serving_checksum=hashlib.sha256(serving.encode()).hexdigest(),
        serving_config_map=f"{name}-serving",
        serving_path=SERVING_PATH,
        ingress=_ingress(name, ingress),
        service_monitor=spec["service_monitor"],
        monitoring_namespace=spec["monitoring_namespace"],
        gpu_node_selector=spec["gpu_node_selector"],
        dashboard_config_map=f"{name}-dashboard",
        dashboard_key=f"{name}.json",
        dashboard_labels=_frozen({**labels, GRAFANA_SIDECAR_LABEL: "1"}),
        overlays=(_dev(model, scale_to_zero), _prod(model, scale_to_zero)),
        termination_grace_s=model.runtime.timeout_s + DRAIN_MARGIN_S,
        container=CONTAINER,
        run_as=RUN_AS,
        user=f"{RUN_AS}:{RUN_AS}",
        app_dir=APP_DIR,
        image_command=command(model, "all"),
        healthcheck=_healthcheck(model.runtime.admin_port or port),
        stage_healthcheck=_healthcheck(port) if model.runtime.admin_port else None,
        compose_env=_frozen({key: value.replace("$", "$$") for key, value in model.env.items()}),
        compose_secrets=_frozen({s.name: f"${{{s.name}:?set {s.name} (secret {s.secret})}}" for s in model.secrets}),
        compose_port=f"127.0.0.1:{port}:{port}",
        grpc_port=model.runtime.grpc_port,
        compose_grpc_port=(f"127.0.0.1:{model.runtime.grpc_port}:{model.runtime.grpc_port}"
                           if model.runtime.grpc_port else None),
        compose_stage_token=STAGE_TOKEN_SECRET if len(stages) > 1 else None,
        prometheus_service=f"{name}-prometheus",
        prometheus_image=PROMETHEUS_IMAGE,
        flavor=flavor,
        autoscaling=autoscaling,
        scale_to_zero=scale_to_zero,
        port_name=port_name,
        probe_port=port if on_knative else port_name,
        admin_port=model.runtime.admin_port,
        target_concurrency=spec["target_concurrency"],
        in_flight_metric=flavors.IN_FLIGHT_METRIC,
        adapter_rule=(_frozen(flavors.adapter_rule(namespace))
                      if flavor == "deployment" and autoscaling == "requests" else None),
        kserve=kserve,
        knative_annotations=flavors.knative_annotations(model, spec) if flavor == "knative" else None,
        keda=(flavors.keda(model, stages, spec, namespace)
              if autoscaling == "keda" else None),
        on_knative=on_knative,
        platform_namespaces=(ingress["controller_namespace"], flavors.KNATIVE_SERVING_NAMESPACE) if on_knative
        else (ingress["controller_namespace"],),
        replica_patch=flavors.replica_patch(flavor, autoscaling, kserve),
        requests_patch=flavors.requests_patch(flavor, kserve, gradual is not None),
        model_fetch=model_fetch(model, spec["service_account_annotations"]),
        service_account_annotations=_frozen(dict(spec["service_account_annotations"])),
        identity_pod_labels=_frozen(identity_pod_labels(spec["service_account_annotations"])),
        egress=egress_rules(spec["egress"]),
        locked=locked(model, image_platform(model)),
        base_image=spec.get("base_image") or (CUDA_BASE_IMAGE if uses_cuda_image(model) else
                                              DEFAULT_BASE_IMAGE.format(python=model.runtime.python)),
        image_python=CUDA_IMAGE_PYTHON if uses_cuda_image(model) and not spec.get("base_image") else None,
        cuda=uses_cuda_image(model),
        image_repository=image_repository(spec.get("image") or f"{name}:local"),
        image_digest=_digest(spec.get("image")),
        release=gradual,
        workload_api=(ROLLOUT_API, "Rollout") if gradual else ("apps/v1", "Deployment"),
        image_tag=model.version if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", model.version) else "latest",
    )


def label_value(text: str) -> str:
    """A version as a label value (at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric):
    every run of other characters becomes one `_`; empty when nothing is left."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _ingress(name: str, ingress: Mapping) -> Ingress:
    """cert-manager writes the certificate of a cluster_issuer or issuer into tls_secret
    (default `<name>-tls`), which the Ingress's TLS section names."""
    issuer = {key: ingress[field] for key, field in (("cert-manager.io/cluster-issuer", "cluster_issuer"),
                                                     ("cert-manager.io/issuer", "issuer")) if ingress.get(field)}
    secret = ingress.get("tls_secret") or (f"{name}-tls" if issuer else None)
    host = ingress.get("host")
    return Ingress(host, secret, ingress["class_name"], ingress["path_type"], ingress["controller_namespace"],
                   _frozen(issuer), bool(host) and public_host(host))


def _stage_urls(stages: tuple[Workload, ...], port: int, flavor: str, kserve: KServe | None,
                model: ServiceModel) -> dict[str, str]:
    """In-cluster addresses of the stages, for the gateway's serving.json. Short Service names
    resolve inside the namespace, so an overlay that moves the namespace keeps them valid; Knative
    routes each Service on port 80; a KServe transformer reaches its sidecars on the pod's loopback
    and the predictor through KServe's `<name>-predictor` Service."""
    if kserve:
        return flavors.kserve_stage_urls(model, kserve)
    suffix = "" if flavor == "knative" else f":{port}"
    return {w.stage: f"http://{w.name}{suffix}" for w in stages if not w.entry}


def _dev(model: ServiceModel, scale_to_zero: bool) -> Overlay:
    """One replica (none while idle, where it scales to zero) and a quarter of the CPU and half the
    memory requested, so a small cluster holds it (limits stay, so it still runs at full speed when
    it can)."""
    resources = model.resources
    return Overlay("dev", f"{model.name}-dev", 0 if scale_to_zero else 1, 1, _frozen({"cpu": f"{max(resources.millicores // 4, 50)}m",
                                         "memory": f"{max(resources.memory_mib // 2, 64)}Mi"}))


def _prod(model: ServiceModel, scale_to_zero: bool) -> Overlay:
    """At least two replicas, so a drain or a failed node never takes a stage away; none while idle
    where the spec chose to scale to zero."""
    low = 0 if scale_to_zero else max(model.scaling.min_replicas, 2)
    return Overlay("prod", f"{model.name}-prod", low, max(model.scaling.max_replicas, low), None)


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(mapping)


def uses_cuda_image(model: ServiceModel) -> bool:
    """A GPU service whose model can use CUDA builds on NVIDIA's image (a scikit-learn model
    computes on CPU whatever the pod asks for: `mlgen validate` warns about it)."""
    return model.resources.gpu > 0 and model.model.format != "sklearn"


def _healthcheck(port: int) -> tuple[str, ...]:
    return ("python", "-c", f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{LIVE}', timeout=2)")
