"""What the stages run as and what scales them, worked out once: KServe's InferenceService and
ServingRuntime, Knative Services, KEDA's ScaledObject and the Prometheus Adapter's rule, and the
JSON patches the overlays apply to whichever object holds the replica counts and the requests.

The autoscaling choices (docs/targets/kubernetes.md):
- `cpu`: an HPA on CPU utilisation (KServe: its RawDeployment mode, which writes that HPA; Knative:
  its HPA autoscaler class). No HPA scales to zero.
- `requests`: in-flight requests per replica (KServe: its Serverless mode; Knative: its own
  autoscaler, which holds requests in its activator while it scales from zero; Deployments: an HPA
  on the runtime's `mlgen_requests_in_flight` served by the Prometheus Adapter).
- `keda`: a ScaledObject per Deployment on a Prometheus query, by default the stage's request rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes.workloads import Workload, command

IN_FLIGHT_METRIC = "mlgen_requests_in_flight"  # the runtime's gauge the Prometheus Adapter serves to the HPA
REQUESTS_METRIC = "mlgen_requests_total"  # the runtime's counter the default KEDA query reads
INFER_ROUTE = "v2_infer"  # the runtime's route label for /v2/models/<name>/infer
RATE_WINDOW = "2m"  # at least four 30 s scrapes (the ServiceMonitor's interval)
PROMETHEUS_SERVICE = "prometheus-operated"  # the Service the Prometheus Operator makes for its Prometheus
KNATIVE_PORT_NAME = "http1"  # Knative (and KServe on Knative) accept only http1 or h2c
# Ports Knative's queue-proxy takes in every pod (knative/serving pkg/apis/serving/k8s_validation.go,
# reservedPorts; checked 2026-08-21): the runtime and the transformer's sidecars must avoid them.
KNATIVE_RESERVED_PORTS = (8012, 8013, 8022, 9090, 9091)
KNATIVE_SERVING_NAMESPACE = "knative-serving"  # its activator and autoscaler reach every pod
KSERVE_CONTAINER = "kserve-container"  # KServe's name for a component's main container
KSERVE_FORMATS = {"sklearn": ("sklearn", "1"), "onnx": ("onnx", "1"), "python": ("mlgen-python", "1")}


@dataclass(frozen=True)
class KServe:
    runtime_name: str  # the ServingRuntime
    model_format: str
    model_format_version: str
    deployment_mode: str  # Serverless (Knative, scales to zero) or RawDeployment (Deployment + HPA)
    scale_metric: str  # cpu | concurrency
    scale_target: int
    predictor: Workload  # runs the model (`--stage predict`, or the whole pipeline when collocated)
    transformer: Workload | None  # the gateway, KServe's container 0 of the transformer
    transformer_command: tuple[str, ...]  # the gateway's command, through /bin/sh (see _transformer_command)
    sidecars: tuple[Workload, ...]  # preprocess and postprocess beside the gateway, on the pod's loopback
    predictor_url: str  # where the transformer reaches the predictor


@dataclass(frozen=True)
class Keda:
    server_address: str
    threshold: str  # KEDA's trigger metadata are strings
    queries: Mapping[str, str]  # Deployment name → PromQL
    custom_query: bool  # the spec set its own query


@dataclass(frozen=True)
class PatchTarget:
    """An object an overlay patches: its kind (and API group where the kind alone is ambiguous) and
    the JSON pointers of the value pairs it changes (min/max replicas, or cpu/memory requests)."""

    kind: str
    group: str | None
    paths: tuple[tuple[str, str], ...]
    text: bool = False  # the values are annotations, which are strings


def scales_to_zero(flavor: str, autoscaling: str, keda_query: str | None) -> bool:
    """Whether this flavor and autoscaler can run no replica at all and still wake on a request."""
    if autoscaling == "requests":
        return flavor in ("kserve", "knative")
    return autoscaling == "keda" and keda_query is not None


def kserve(model: ServiceModel, stages: tuple[Workload, ...], spec: Mapping) -> KServe:
    name = model.name
    split = model.pipeline.split
    predictor = next(w for w in stages if w.stage in ("predict", "all"))
    transformer = stages[0] if split else None
    sidecars = tuple(dataclasses.replace(w, command=command(model, w.stage, "127.0.0.1", port))
                     for w, port in zip((w for w in stages[1:] if w.stage != "predict"), sidecar_ports(model)))
    fmt, version = KSERVE_FORMATS[model.model.format]
    requests = spec["autoscaling"] == "requests"
    return KServe(
        runtime_name=f"{name}-mlgen",
        model_format=fmt,
        model_format_version=version,
        deployment_mode="Serverless" if requests else "RawDeployment",
        scale_metric="concurrency" if requests else "cpu",
        scale_target=spec["target_concurrency"] if requests else model.scaling.target_cpu_percent,
        predictor=predictor,
        transformer=transformer,
        transformer_command=_transformer_command(transformer) if transformer else (),
        sidecars=sidecars,
        predictor_url=f"http://{name}-predictor",
    )


def sidecar_ports(model: ServiceModel) -> tuple[int, ...]:
    """The transformer's preprocess and postprocess sidecars listen on the next ports."""
    port = model.runtime.port
    return tuple(port + offset for offset in (1, 2) if port + offset <= 65535)


def kserve_stage_urls(model: ServiceModel, kserve_settings: KServe) -> dict[str, str]:
    urls = {w.stage: f"http://127.0.0.1:{w.command[w.command.index('--port') + 1]}" for w in kserve_settings.sidecars}
    return {**urls, "predict": kserve_settings.predictor_url}


def _transformer_command(gateway: Workload) -> tuple[str, ...]:
    """KServe appends `--model_name`, `--predictor_host` and `--http_port` to a transformer's args
    (kserve pkg/apis/serving/v1beta1/transformer_custom.go, GetContainer), which the runtime does
    not take: the command runs through /bin/sh, where they become positional parameters nobody
    reads. The predictor's address comes from serving.json like every other stage's."""
    return ("/bin/sh", "-c", "exec " + " ".join(gateway.command), "kserve-transformer")


def knative_annotations(model: ServiceModel, spec: Mapping) -> Mapping[str, str]:
    """Knative's per-revision autoscaling annotations (knative.dev/docs serving/autoscaling)."""
    scaling = model.scaling
    if spec["autoscaling"] == "requests":
        chosen = {"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                  "autoscaling.knative.dev/metric": "concurrency",
                  "autoscaling.knative.dev/target": str(spec["target_concurrency"])}
    else:
        chosen = {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
                  "autoscaling.knative.dev/metric": "cpu",
                  "autoscaling.knative.dev/target": str(scaling.target_cpu_percent)}
    return MappingProxyType({**chosen, "autoscaling.knative.dev/min-scale": str(scaling.min_replicas),
                             "autoscaling.knative.dev/max-scale": str(scaling.max_replicas)})


def keda(model: ServiceModel, stages: tuple[Workload, ...], spec: Mapping, namespace: str) -> Keda:
    settings = spec["keda"]
    query = settings.get("query")
    queries = {w.name: query or request_rate_query(namespace, w.name) for w in stages}
    url = settings.get("prometheus_url") or prometheus_url(spec)
    threshold = settings["threshold"]
    return Keda(url, f"{threshold:g}", MappingProxyType(queries), query is not None)


def prometheus_url(spec: Mapping) -> str:
    """The Prometheus the cluster's controllers query (KEDA, Argo Rollouts' analysis): the spec's,
    else the Prometheus Operator's Service in the monitoring namespace."""
    return spec.get("prometheus_url") or f"http://{PROMETHEUS_SERVICE}.{spec['monitoring_namespace']}.svc:9090"


def request_rate_query(namespace: str, service: str) -> str:
    """Requests per second a stage answers, from the runtime's own counter as the ServiceMonitor's
    scrape labels it (namespace and service of the target)."""
    return (f'sum(rate({REQUESTS_METRIC}{{namespace="{namespace}",service="{service}",route="{INFER_ROUTE}"}}'
            f'[{RATE_WINDOW}]))')


def adapter_rule(namespace: str) -> dict:
    """The Prometheus Adapter's custom-metrics rule that serves the runtime's in-flight gauge per
    pod, which the HPAs of `autoscaling: requests` read (prometheus-adapter docs/config.md)."""
    return {
        "seriesQuery": f'{IN_FLIGHT_METRIC}{{namespace="{namespace}",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{IN_FLIGHT_METRIC}$", "as": IN_FLIGHT_METRIC},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }


def replica_patch(flavor: str, autoscaling: str, kserve_settings: KServe | None) -> PatchTarget:
    if flavor == "kserve":
        components = ("predictor", "transformer") if kserve_settings.transformer else ("predictor",)
        return PatchTarget("InferenceService", "serving.kserve.io",
                           tuple((f"/spec/{c}/minReplicas", f"/spec/{c}/maxReplicas") for c in components))
    if flavor == "knative":
        prefix = "/spec/template/metadata/annotations/autoscaling.knative.dev~1"
        return PatchTarget("Service", "serving.knative.dev", ((f"{prefix}min-scale", f"{prefix}max-scale"),), text=True)
    if autoscaling == "keda":
        return PatchTarget("ScaledObject", None, (("/spec/minReplicaCount", "/spec/maxReplicaCount"),))
    return PatchTarget("HorizontalPodAutoscaler", None, (("/spec/minReplicas", "/spec/maxReplicas"),))


def requests_patch(flavor: str, kserve_settings: KServe | None, rollout: bool = False) -> PatchTarget:
    def pair(container: str) -> tuple[str, str]:
        return f"{container}/resources/requests/cpu", f"{container}/resources/requests/memory"

    if flavor == "kserve":
        containers = ["/spec/predictor/model"]
        if kserve_settings.transformer:
            containers += [f"/spec/transformer/containers/{i}" for i in range(1 + len(kserve_settings.sidecars))]
        return PatchTarget("InferenceService", "serving.kserve.io", tuple(pair(c) for c in containers))
    if flavor == "knative":
        return PatchTarget("Service", "serving.knative.dev", (pair("/spec/template/spec/containers/0"),))
    # Argo Rollouts' Rollout carries the pod template where a Deployment does.
    kind, group = ("Rollout", "argoproj.io") if rollout else ("Deployment", None)
    return PatchTarget(kind, group, (pair("/spec/template/spec/containers/0"),))
