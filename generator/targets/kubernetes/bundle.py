"""The files of a Kubernetes bundle: kustomize base and overlays, Dockerfile, compose file, app/."""

from __future__ import annotations

import hashlib

from generator.bundle import app_files, serving_config
from generator.monitoring import monitoring_files, rule_groups, static_job
from generator.monitoring.scrape import dashboard_json
from generator.render import RenderedFile, Renderer
from generator.render.filters import pretty_json
from generator.spec import ServiceModel
from generator.targets.kubernetes.workloads import (APP_DIR, RUN_AS, command, common_labels, image, namespace,
                                                    stage_urls, workloads)

OVERLAYS = ("dev", "prod")
GRAFANA_SIDECAR_LABEL = "grafana_dashboard"  # what the Grafana Helm chart's dashboard sidecar looks for
PROMETHEUS_IMAGE = "docker.io/prom/prometheus:v3.5.0"  # compose only: a local look at the metrics and alerts


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = model.target("kubernetes")
    urls = stage_urls(model)
    # ASCII-only JSON: every character a spec value brings is a JSON escape, so the text can sit in a
    # YAML literal block unchanged (no line-break look-alikes such as U+2028 reach the YAML).
    serving = pretty_json(serving_config(model, urls), ascii_only=True)
    context = {
        "model": model, "settings": settings, "workloads": workloads(model), "namespace": namespace(model),
        "image": image(model), "labels": common_labels(model), "run_as": RUN_AS, "app_dir": APP_DIR,
        "serving_json": serving, "serving_checksum": hashlib.sha256(serving.encode()).hexdigest(),
        "command": lambda stage: command(model, stage),
    }
    base = [
        renderer.file("base/namespace.yaml", "kubernetes/base/namespace.yaml.j2", **context),
        renderer.file("base/serviceaccount.yaml", "kubernetes/base/serviceaccount.yaml.j2", **context),
        renderer.file("base/configmap.yaml", "kubernetes/base/configmap.yaml.j2", **context),
        renderer.file("base/networkpolicy.yaml", "kubernetes/base/networkpolicy.yaml.j2", **context),
        *(renderer.file(f"base/{w.component}.yaml", "kubernetes/base/workload.yaml.j2", workload=w, **context)
          for w in context["workloads"]),
    ]
    if settings["ingress"].get("host"):
        base.append(renderer.file("base/ingress.yaml", "kubernetes/base/ingress.yaml.j2", **context))
    if settings["service_monitor"]:
        base.append(renderer.file("base/servicemonitor.yaml", "kubernetes/base/servicemonitor.yaml.j2", **context))
        base.append(renderer.file("base/prometheusrule.yaml", "kubernetes/base/prometheusrule.yaml.j2",
                                  rule_groups=rule_groups(model), **context))
    monitoring = []
    if model.observability.metrics:
        base.append(renderer.file("base/dashboard.yaml", "kubernetes/base/dashboard.yaml.j2",
                                  dashboard_json=dashboard_json(model, "kubernetes"),
                                  dashboard_labels={**context["labels"], GRAFANA_SIDECAR_LABEL: "1"}, **context))
        # compose.yaml's Prometheus scrapes the stages by their service names, with the same rules.
        stages = [f"{w.name}:{model.runtime.port}" for w in context["workloads"]]
        monitoring = monitoring_files(model, renderer, [static_job(model, stages)], "kubernetes", note="compose")
    resources = sorted(f.path.removeprefix("base/") for f in base)
    files = [
        *base,
        renderer.file("base/kustomization.yaml", "kubernetes/base/kustomization.yaml.j2", resources=resources, **context),
        *(renderer.file(f"overlays/{env}/kustomization.yaml", "kubernetes/overlays/kustomization.yaml.j2",
                        environment=env, overlay=overlay(model, env), **context) for env in OVERLAYS),
        renderer.file("Dockerfile", "kubernetes/Dockerfile.j2", **context),
        renderer.file(".dockerignore", "kubernetes/dockerignore.j2", **context),
        renderer.file("compose.yaml", "kubernetes/compose.yaml.j2", compose_env=compose_env(model),
                      prometheus_image=PROMETHEUS_IMAGE, **context),
        *monitoring,
        *app_files(model, stage_urls=urls),
    ]
    return files


def overlay(model: ServiceModel, environment: str) -> dict:
    """What an overlay changes. dev: one replica and a quarter of the CPU and half the memory
    requested, so a small cluster holds it (limits stay, so it still runs at full speed when it
    can). prod: at least two replicas, so a drain or a failed node never takes a stage away."""
    scaling, resources = model.scaling, model.resources
    if environment == "dev":
        return {"min_replicas": 1, "max_replicas": 1,
                "requests": {"cpu": f"{max(resources.millicores // 4, 50)}m",
                             "memory": f"{max(resources.memory_mib // 2, 64)}Mi"}}
    low = max(scaling.min_replicas, 2)
    return {"min_replicas": low, "max_replicas": max(scaling.max_replicas, low), "requests": None}


def compose_env(model: ServiceModel) -> dict[str, str]:
    """The spec's env for compose, where `$` starts an interpolation: `$$` keeps it a dollar."""
    return {name: value.replace("$", "$$") for name, value in model.env.items()}
