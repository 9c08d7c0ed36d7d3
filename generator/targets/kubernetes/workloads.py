"""The Deployments a service becomes, worked out once: names, `--stage`, labels, the command.

With `pipeline.topology: microservices` every stage (preprocess, predict, postprocess) is its own
Deployment and Service behind a gateway, the entry stage, so one stage failing or scaling does not
touch the others. With `collocated` one Deployment runs the whole pipeline (`--stage all`).
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.spec import ServiceModel

APP_DIR = "/app"  # where the Dockerfile puts the bundle's app/ folder
RUN_AS = 10001  # numeric, non-root: restricted Pod Security and hadolint both want a number
MANAGED_BY = "mlgen"


@dataclass(frozen=True)
class Workload:
    name: str  # Deployment, Service, HPA and PDB name
    component: str  # app.kubernetes.io/component: the stage, or "server" for the whole pipeline
    stage: str  # the runtime's --stage
    entry: bool  # receives outside traffic (the Ingress points here)
    gpu: int  # GPUs this stage asks for: only the one that runs the model gets them

    def selector(self, model: ServiceModel) -> dict[str, str]:
        return {"app.kubernetes.io/name": model.name, "app.kubernetes.io/component": self.component}

    def labels(self, model: ServiceModel) -> dict[str, str]:
        return {**common_labels(model), **self.selector(model)}


def workloads(model: ServiceModel) -> list[Workload]:
    gpu = model.resources.gpu
    if not model.pipeline.split:
        return [Workload(model.name, "server", "all", True, gpu)]
    entry = Workload(f"{model.name}-gateway", "gateway", "gateway", True, 0)
    return [entry] + [Workload(f"{model.name}-{stage}", stage, stage, False, gpu if stage == "predict" else 0)
                      for stage in model.pipeline.stages]


def stage_urls(model: ServiceModel) -> dict[str, str] | None:
    """In-cluster addresses of the stage Services, for the gateway's serving.json. Short Service
    names resolve inside the namespace, so an overlay that moves the namespace keeps them valid."""
    if not model.pipeline.split:
        return None
    return {w.stage: f"http://{w.name}:{model.runtime.port}" for w in workloads(model) if not w.entry}


def common_labels(model: ServiceModel) -> dict[str, str]:
    # The spec's labels first: the recommended app.kubernetes.io labels mlgen relies on win.
    return {**model.labels, "app.kubernetes.io/name": model.name, "app.kubernetes.io/part-of": model.name,
            "app.kubernetes.io/managed-by": MANAGED_BY}


def command(model: ServiceModel, stage: str) -> list[str]:
    """What the container runs: the same list in the Deployment, the compose file and the tests."""
    return ["python", "-m", "mlgen_runtime", "serve", "--config", f"{APP_DIR}/serving.json",
            "--host", "0.0.0.0", "--port", str(model.runtime.port), "--stage", stage]


def namespace(model: ServiceModel) -> str:
    return model.target("kubernetes").get("namespace") or model.name


def image(model: ServiceModel) -> str:
    return model.target("kubernetes").get("image") or f"{model.name}:local"
