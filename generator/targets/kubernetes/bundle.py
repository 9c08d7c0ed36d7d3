"""The files of a Kubernetes bundle: kustomize base and overlays, Dockerfile, compose file, app/."""

from __future__ import annotations

from mlgen.bundle import app_files
from mlgen.monitoring import monitoring_files, rule_groups, static_job
from mlgen.monitoring.scrape import dashboard_json
from mlgen.targets.kubernetes.monitoring import pod_resources
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes.settings import kubernetes_settings


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = kubernetes_settings(model)

    def render(path: str, template: str, **item) -> RenderedFile:
        return renderer.file(path, f"kubernetes/{template}.j2", model=model, settings=settings, **item)

    base = [
        render("base/namespace.yaml", "base/namespace.yaml"),
        render("base/serviceaccount.yaml", "base/serviceaccount.yaml"),
        render("base/configmap.yaml", "base/configmap.yaml"),
        render("base/networkpolicy.yaml", "base/networkpolicy.yaml"),
        *(render(f"base/{w.component}.yaml", "base/workload.yaml", workload=w) for w in settings.workloads),
    ]
    if settings.ingress.host:
        base.append(render("base/ingress.yaml", "base/ingress.yaml"))
    if settings.service_monitor:
        base.append(render("base/servicemonitor.yaml", "base/servicemonitor.yaml"))
        base.append(render("base/prometheusrule.yaml", "base/prometheusrule.yaml", rule_groups=rule_groups(model)))
    monitoring = []
    if model.observability.metrics:
        panels = pod_resources(model, settings)
        base.append(render("base/dashboard.yaml", "base/dashboard.yaml", dashboard_json=dashboard_json(model, panels)))
        # compose.yaml's Prometheus scrapes the stages by their service names, with the same rules.
        stages = [f"{w.name}:{model.runtime.port}" for w in settings.workloads]
        monitoring = monitoring_files(model, renderer, [static_job(model, stages)], panels, note="compose")
    resources = sorted(f.path.removeprefix("base/") for f in base)
    return [
        *base,
        render("base/kustomization.yaml", "base/kustomization.yaml", resources=resources),
        *(render(f"overlays/{o.environment}/kustomization.yaml", "overlays/kustomization.yaml", overlay=o)
          for o in settings.overlays),
        render("Dockerfile", "Dockerfile"),
        render(".dockerignore", "dockerignore"),
        render("compose.yaml", "compose.yaml"),
        *monitoring,
        *app_files(model, stage_urls=settings.stage_urls),
    ]
