"""The spec's `targets.cloud` settings with every derived value (resource names, defaults per
provider, tags) worked out once, so templates only print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from generator.spec import ServiceModel

HEALTH_PATH = "/v2/health/ready"
# The default image for each runtime.python: a distribution whose own python3 is that version
# and whose image on that provider runs cloud-init (install.sh wants exactly runtime.python).
# Google's Debian images have no cloud-init (they run the guest agent), so GCP has Ubuntu only.
DEFAULT_IMAGES = {
    "3.11": {"aws": "resolve:ssm:/aws/service/debian/release/bookworm/latest/amd64",
             "azure": "Debian:debian-12:12-gen2:latest"},
    "3.12": {"aws": "resolve:ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
             "gcp": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
             "azure": "Canonical:ubuntu-24_04-lts:server:latest"},
    "3.13": {"aws": "resolve:ssm:/aws/service/debian/release/trixie/latest/amd64",
             "azure": "Debian:debian-13:13-gen2:latest"},
}
INSTANCE_TYPES = {"aws": "t3.small", "gcp": "e2-small", "azure": "Standard_B2s"}


@dataclass(frozen=True)
class CloudSettings:
    provider: str
    name: str  # the service's name: every resource is named after it
    region: str | None  # None: the CLI's configured region, checked by the deploy script
    instance_type: str
    image: str  # "" when no default image has runtime.python (the fitness check says so)
    custom_image: bool
    allowed_cidrs: tuple[str, ...]
    lb_port: int
    port: int  # the service's port on each VM
    min_size: int
    max_size: int
    target_cpu_percent: int
    artifact_url: str | None
    artifact_upload: str | None
    vpc_id: str | None
    subnet_ids: tuple[str, ...]
    network: str
    project: str | None
    resource_group: str
    tags: Mapping[str, str]  # mlgen-service, the spec's labels, targets.cloud.tags (last wins)

    @property
    def inline(self) -> bool:
        """The bundle travels inside the user data (no artifact_url)."""
        return self.artifact_url is None

    def resource(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"


def cloud_settings(model: ServiceModel) -> CloudSettings:
    spec = model.target("cloud")
    provider = spec.get("provider", "aws")
    image = spec.get("image") or DEFAULT_IMAGES.get(model.runtime.python, {}).get(provider)
    return CloudSettings(
        provider=provider,
        name=model.name,
        region=spec.get("region"),
        instance_type=spec.get("instance_type", INSTANCE_TYPES[provider]),
        image=image or "",
        custom_image="image" in spec,
        allowed_cidrs=tuple(spec.get("allowed_cidrs", ("0.0.0.0/0",))),
        lb_port=spec.get("lb_port", 80),
        port=model.runtime.port,
        min_size=max(1, model.scaling.min_replicas),
        max_size=max(1, model.scaling.min_replicas, model.scaling.max_replicas),
        target_cpu_percent=model.scaling.target_cpu_percent,
        artifact_url=spec.get("artifact_url"),
        artifact_upload=spec.get("artifact_upload"),
        vpc_id=spec.get("vpc_id"),
        subnet_ids=tuple(spec.get("subnet_ids", ())),
        network=spec.get("network", "default"),
        project=spec.get("project"),
        resource_group=spec.get("resource_group") or f"mlgen-{model.name}",
        tags={"mlgen-service": model.name, **model.labels, **spec.get("tags", {})},
    )
