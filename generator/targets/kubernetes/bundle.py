"""The files of a Kubernetes bundle: kustomize base and overlays, Dockerfile, compose file, app/."""

from __future__ import annotations

from mlgen.bundle import app_files
from mlgen.examples import release_files
from mlgen.monitoring import monitoring_files, rule_groups, static_job
from mlgen.monitoring.scrape import dashboard_json
from mlgen.targets.kubernetes.monitoring import pod_resources
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.kubernetes.settings import KubernetesSettings, kubernetes_settings


EXECUTABLE = 0o755


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = kubernetes_settings(model)

    def render(path: str, template: str, mode: int = 0o644, **item) -> RenderedFile:
        return renderer.file(path, f"kubernetes/{template}.j2", mode, model=model, settings=settings, **item)

    base = [
        render("base/namespace.yaml", "base/namespace.yaml"),
        render("base/serviceaccount.yaml", "base/serviceaccount.yaml"),
        render("base/configmap.yaml", "base/configmap.yaml"),
        render("base/networkpolicy.yaml", "base/networkpolicy.yaml"),
        *workload_files(settings, render),
    ]
    if settings.release:
        base.append(render("base/analysistemplate.yaml", "base/analysistemplate.yaml"))
    if settings.ingress.host and settings.flavor == "deployment":
        base.append(render("base/ingress.yaml", "base/ingress.yaml"))
    if settings.service_monitor:
        # Knative and KServe front the pods with their own proxy: the pods are scraped directly.
        monitor = "servicemonitor" if settings.flavor == "deployment" else "podmonitor"
        base.append(render(f"base/{monitor}.yaml", f"base/{monitor}.yaml"))
        base.append(render("base/prometheusrule.yaml", "base/prometheusrule.yaml", rule_groups=rule_groups(model)))
    monitoring = []
    if model.observability.metrics:
        panels = pod_resources(model, settings)
        base.append(render("base/dashboard.yaml", "base/dashboard.yaml", dashboard_json=dashboard_json(model, panels)))
        # compose.yaml's Prometheus scrapes the stages by their service names, with the same rules.
        stages = [f"{w.name}:{settings.admin_port if settings.admin_port and w.entry else model.runtime.port}"
                  for w in settings.workloads]
        monitoring = monitoring_files(model, renderer, [static_job(model, stages)], panels, note="compose")
    resources = sorted(f.path.removeprefix("base/") for f in base)
    return [
        *base,
        render("base/kustomization.yaml", "base/kustomization.yaml", resources=resources),
        *(render(f"overlays/{o.environment}/kustomization.yaml", "overlays/kustomization.yaml", overlay=o)
          for o in settings.overlays),
        *([render("prometheus-adapter.yaml", "prometheus-adapter.yaml")] if settings.adapter_rule else []),
        render("Dockerfile", "Dockerfile"),
        render("build-image.sh", "build-image.sh", mode=EXECUTABLE),
        render(".dockerignore", "dockerignore"),
        render("compose.yaml", "compose.yaml"),
        *([render("compose-up.sh", "compose-up.sh", mode=EXECUTABLE)] if settings.compose_stage_token else []),
        *monitoring,
        *app_files(model, stage_urls=settings.stage_urls, requirements_text=settings.locked.text),
        # The image carries the release's check (the Dockerfile copies release/).
        *(release_files(model) if settings.release and settings.release.check else []),
    ]


def workload_files(settings: KubernetesSettings, render) -> list[RenderedFile]:
    """The stages as the flavor runs them: a Deployment (with Service, autoscaler and disruption
    budget) or a Knative Service per stage, or KServe's ServingRuntime and InferenceService."""
    if settings.flavor == "kserve":
        return [render("base/servingruntime.yaml", "base/servingruntime.yaml"),
                render("base/inferenceservice.yaml", "base/inferenceservice.yaml")]
    template = "base/knative-service.yaml" if settings.flavor == "knative" else "base/workload.yaml"
    return [render(f"base/{w.component}.yaml", template, workload=w) for w in settings.workloads]
