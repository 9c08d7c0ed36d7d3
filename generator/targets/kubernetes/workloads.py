"""The Deployments a service becomes, worked out once: names, `--stage`, labels, the command.

With `pipeline.topology: microservices` every stage (preprocess, predict, postprocess) is its own
Deployment and Service behind a gateway, the entry stage, so one stage failing or scaling does not
touch the others. With `collocated` one Deployment runs the whole pipeline (`--stage all`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from mlgen.spec import ServiceModel

APP_DIR = "/app"  # where the Dockerfile puts the bundle's app/ folder
SERVING_PATH = f"{APP_DIR}/serving.json"  # the ConfigMap is mounted over it
LIVE = "/v2/health/live"
READY = "/v2/health/ready"


@dataclass(frozen=True)
class Workload:
    name: str  # Deployment, Service, HPA and PDB name
    component: str  # app.kubernetes.io/component: the stage, or "server" for the whole pipeline
    stage: str  # the runtime's --stage
    entry: bool  # receives outside traffic (the Ingress points here)
    gpu: int  # GPUs this stage asks for: only the one that runs the model gets them
    selector: Mapping[str, str]  # this workload's pods, and only them
    labels: Mapping[str, str]  # the service's labels and the selector
    command: tuple[str, ...]  # what the container runs
    # The gateway's own readiness does not wait for its stages: taken out of the Service when a
    # stage is down, it could not answer the 503 that names the missing stage.
    ready_path: str

    @property
    def loads_model(self) -> bool:
        """Runs the model (and so fetches a model.uri one): predict, or the whole pipeline."""
        return self.stage in ("predict", "all")


def workloads(model: ServiceModel, labels: Mapping[str, str]) -> tuple[Workload, ...]:
    """The entry stage first: the Ingress, the NetworkPolicies and compose's published port all
    point at it."""
    gpu = model.resources.gpu
    if not model.pipeline.split:
        return (_workload(model, labels, model.name, "server", "all", True, gpu),)
    entry = _workload(model, labels, f"{model.name}-gateway", "gateway", "gateway", True, 0)
    return (entry, *(_workload(model, labels, f"{model.name}-{stage}", stage, stage, False,
                               gpu if stage == "predict" else 0) for stage in model.pipeline.stages))


def _workload(model: ServiceModel, labels: Mapping[str, str], name: str, component: str, stage: str, entry: bool,
              gpu: int) -> Workload:
    selector = {"app.kubernetes.io/name": model.name, "app.kubernetes.io/component": component}
    return Workload(name, component, stage, entry, gpu, MappingProxyType(selector),
                    MappingProxyType({**labels, **selector}), command(model, stage),
                    LIVE if stage == "gateway" else READY)


def command(model: ServiceModel, stage: str, host: str = "0.0.0.0", port: int | None = None) -> tuple[str, ...]:
    """What the container runs: the same list in the Deployment, the Dockerfile, the compose file
    and the tests (a KServe transformer's sidecars listen on the pod's loopback, on ports of their own)."""
    return ("python", "-m", "mlgen_runtime", "serve", "--config", SERVING_PATH,
            "--host", host, "--port", str(port or model.runtime.port), "--stage", stage)
