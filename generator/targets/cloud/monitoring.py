"""The cloud fleet's monitoring/ folder: the shared rules and dashboard, and scrape jobs that find
the group's VMs as it scales (EC2 discovery by the mlgen-service tag on AWS; a targets file on
Google Cloud and Azure, whose discovery needs credentials Prometheus usually does not have)."""

from __future__ import annotations

from mlgen.monitoring import NODE_EXPORTER_PORT, host_resources, monitoring_files, node_job, static_job
from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.cloud.settings import CloudSettings


def _ec2(settings: CloudSettings, port: int) -> dict:
    discovery = {"port": port, "filters": [{"name": "tag:mlgen-service", "values": [settings.name]},
                                           {"name": "instance-state-name", "values": ["running"]}]}
    if settings.region:
        discovery["region"] = settings.region
    return {"ec2_sd_configs": [discovery],
            "relabel_configs": [{"source_labels": ["__meta_ec2_instance_id"], "target_label": "instance"}]}


def monitoring(model: ServiceModel, settings: CloudSettings, renderer: Renderer) -> list[RenderedFile]:
    if not model.observability.metrics:
        return []
    if settings.provider == "aws":
        service = {**static_job(model, []), **_ec2(settings, settings.port)}
        service.pop("static_configs")
        jobs, note = [service, node_job([], **_ec2(settings, NODE_EXPORTER_PORT))], "cloud-aws"
    else:
        service = {**static_job(model, []), "file_sd_configs": [{"files": [f"targets/{model.name}.json"]}]}
        service.pop("static_configs")
        jobs = [service, node_job([], file_sd_configs=[{"files": [f"targets/{model.name}-node.json"]}])]
        note = "cloud-file"
    return monitoring_files(model, renderer, jobs, host_resources(), note=note)
