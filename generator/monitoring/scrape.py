"""Prometheus configurations and the monitoring/ folder a bundle carries: `prometheus.yml`
(scrape jobs for the service, loading the rule file beside it), `<name>.rules.yml` and
`dashboard.json`. `promtool check config monitoring/prometheus.yml` checks both files."""

from __future__ import annotations


from mlgen.monitoring.dashboard import dashboard
from mlgen.monitoring.rules import rule_groups
from mlgen.render import RenderedFile, Renderer
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel

RULES_FILE = "{name}.rules.yml"
METRICS_PATH = "/metrics"
SCRAPE_INTERVAL = "15s"
NODE_JOB = "node"  # the dashboard's host panels read job="node"
NODE_EXPORTER_PORT = 9100


def static_job(model: ServiceModel, targets: list[str], **extra) -> dict:
    """A scrape job named after the service (the rules select job="<name>")."""
    return {"job_name": model.name, "metrics_path": METRICS_PATH, "scrape_interval": SCRAPE_INTERVAL,
            "static_configs": [{"targets": targets, "labels": {"service": model.name}}], **extra}


def node_job(targets: list[str], **extra) -> dict:
    """node_exporter on the hosts, for the dashboard's resource panels (job="node")."""
    return {"job_name": NODE_JOB, "scrape_interval": SCRAPE_INTERVAL, **extra,
            **({"static_configs": [{"targets": targets}]} if targets else {})}


def scrape_config(model: ServiceModel, jobs: list[dict]) -> dict:
    return {"rule_files": [RULES_FILE.format(name=model.name)], "scrape_configs": jobs}


def monitoring_files(model: ServiceModel, renderer: Renderer, jobs: list[dict], resource_panels: list[dict],
                     folder: str = "monitoring", note: str = "") -> list[RenderedFile]:
    """prometheus.yml, the rule file and the dashboard (ending with the platform's resource
    panels), under `folder`."""
    rules = RULES_FILE.format(name=model.name)
    return [
        renderer.file(f"{folder}/prometheus.yml", "monitoring/prometheus.yml.j2", model=model,
                      config=scrape_config(model, jobs), note=note),
        renderer.file(f"{folder}/{rules}", "monitoring/rules.yml.j2", model=model, groups=rule_groups(model)),
        RenderedFile.text(f"{folder}/dashboard.json", dashboard_json(model, resource_panels)),
    ]


def dashboard_json(model: ServiceModel, resource_panels: list[dict]) -> str:
    return pretty_json(dashboard(model, resource_panels), ascii_only=True) + "\n"
