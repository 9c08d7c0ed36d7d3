"""The spec's `targets.cloud` settings (schema defaults already applied) with every derived value
(resource names, defaults per provider, tags as each CLI spells them, scaling thresholds) worked
out once, so templates only print them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from mlgen.spec import ServiceModel
from mlgen.targets.cloud.balancers import Edge, edge
from mlgen.targets.cloud.monitoring import aws_release_alarm_names, aws_release_alarms, gcp_release_policy, gcp_release_policy_name
from mlgen.targets.cloud.release import AzureHealth, Release, alarm_period_s, azure_health, release
from mlgen.targets.cloud.identity import CREDSTORE, ModelObject, VmSecret, gcp_service_account, model_object, vm_secrets

HEALTH_PATH = "/v2/health/ready"
# Where the first boot unpacks the service bundle on each VM.
WORK_ROOT = "/var/lib/mlgen-cloud"
ARCHIVE = "bundle.tar.gz"
# GCP label keys and values: lowercase letters, digits, _ and -; keys start with a letter.
GCP_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
GCP_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
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
# The container of the fleet's own storage account (Azure) that holds its bundles.
AZURE_BUNDLE_CONTAINER = "bundles"
INSTANCE_TYPES = {"aws": "t3.small", "gcp": "e2-small", "azure": "Standard_B2s"}


@dataclass(frozen=True)
class CloudSettings:
    provider: str
    name: str  # the service's name: every resource is named after it
    region: str | None  # None: the CLI's configured region, checked by the deploy script
    instance_type: str
    image: str  # "" when no default image has runtime.python (the fitness check says so)
    custom_image: bool
    edge: Edge  # the load balancer's listeners, certificate and allowed client networks (balancers.py)
    lb_port: int
    port: int  # the service's port on each VM
    grpc_port: int | None  # runtime.grpc_port on each VM, forwarded where the balancer can (balancers.GRPC)
    # runtime.admin_port on each VM: health and /metrics there, reached by the balancer's health
    # checks only (never by allowed_cidrs); None: they share the service port.
    admin_port: int | None
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
    model_object: ModelObject | None  # model.uri in the provider's own store: the VMs' identity reads it
    secrets: tuple[VmSecret, ...]  # read at boot with the VMs' identity (identity.py)
    key_vault: str | None  # Azure: the Key Vault holding the secrets
    release: Release | None  # a gradual release (release.py); None: all at once
    release_alarms: tuple[dict, ...]  # put-metric-alarm input of each alarm that gates it (AWS)
    release_policy: Mapping | None  # the alert policy that gates it (GCP)
    # The bundle lies in a private bucket (GCS) or container (Azure Blob) deploy.sh makes, read by
    # the VMs with their own identity: on AWS whenever there is no artifact_url; on GCP and Azure
    # when the user data cannot carry it (userdata.py decides, having measured it).
    owned_bucket: bool = False

    health_path = HEALTH_PATH
    archive = ARCHIVE

    @property
    def inline(self) -> bool:
        """The bundle travels inside the user data (no artifact_url, and not AWS)."""
        return self.artifact_url is None and not self.owned_bucket

    @property
    def azure_bundle_container(self) -> str:
        return AZURE_BUNDLE_CONTAINER

    @property
    def vm_identity(self) -> bool:
        """The VMs read something private with an identity of their own (AWS: role and instance
        profile; GCP: service account; Azure: user-assigned managed identity), which deploy.sh
        creates before the VMs and allows exactly that, and teardown.sh removes. Without one, GCP
        VMs run with no service account at all."""
        return self.owned_bucket or self.model_object is not None or bool(self.secrets)

    @property
    def vm_reads(self) -> str:
        """What the VMs' identity may read, in words."""
        return ", ".join(what for what, reads in (("the service bundle", self.owned_bucket),
                                                     ("the model", self.model_object is not None),
                                                     ("the secrets", bool(self.secrets))) if reads)

    @property
    def signs_aws_requests(self) -> bool:
        """The bootstrap signs requests with the instance role's credentials (SigV4): the bundle
        from the fleet's own bucket, the secrets from Secrets Manager."""
        return self.provider == "aws" and (self.owned_bucket or bool(self.secrets))

    @property
    def store_secrets(self) -> tuple[str, ...]:
        """The secrets' names in the provider's store, each once: deploy.sh grants read on these."""
        return tuple(dict.fromkeys(secret.secret for secret in self.secrets))

    @property
    def secrets_unit(self) -> str:
        """The oneshot unit that reads the secrets at every boot, before the service (which requires it)."""
        return f"{self.name}-secrets.service"

    @property
    def service_unit(self) -> str:
        return f"{self.name}.service"

    @property
    def vm_role(self) -> str:
        """The name of the VMs' identity: the IAM role and instance profile (AWS), the managed
        identity (Azure)."""
        return self.resource("vm")

    @property
    def gcp_service_account(self) -> str:
        """The account id of the VMs' service account (GCP): NAME-vm@PROJECT.iam.gserviceaccount.com."""
        return gcp_service_account(self.name)

    @property
    def credentials_dir(self) -> str:
        """Where the bootstrap writes the secrets on each VM (tmpfs): the unit's LoadCredential= reads them."""
        return f"{CREDSTORE}/{self.name}"

    @property
    def aws_vm_trust_policy(self) -> dict:
        return {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

    @property
    def work_dir(self) -> str:
        return f"{WORK_ROOT}/{self.name}"

    @property
    def bootstrap_path(self) -> str:
        return f"{self.work_dir}/bootstrap.sh"

    @property
    def archive_path(self) -> str:
        return f"{self.work_dir}/{ARCHIVE}"

    def resource(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    @property
    def service_ports(self) -> tuple[int, ...]:
        """The ports the balancer forwards to each VM: HTTP, then gRPC when the spec serves it."""
        return (self.port,) if self.grpc_port is None else (self.port, self.grpc_port)

    @property
    def health_port(self) -> int:
        """Where the balancer's health checks ask each VM: its admin port, else its service port."""
        return self.admin_port or self.port

    @property
    def azure_health(self) -> AzureHealth:
        """How deploy.sh knows a reimaged VM serves (release.py)."""
        return azure_health(self.health_port, HEALTH_PATH)

    @property
    def scale_in_cpu_percent(self) -> int:
        """Azure autoscale needs a scale-in rule of its own: at half the scale-out threshold."""
        return self.target_cpu_percent // 2

    @property
    def target_cpu_fraction(self) -> str:
        """gcloud's --target-cpu-utilization: 0.70 for 70%."""
        return f"{self.target_cpu_percent / 100:.2f}"

    @property
    def gcp_labels(self) -> Mapping[str, str]:
        """The tags GCP accepts as labels (the fitness check warns about the others)."""
        return {key: value for key, value in sorted(self.tags.items())
                if GCP_LABEL_KEY.fullmatch(key) and GCP_LABEL_VALUE.fullmatch(value)}

    @property
    def gcp_labels_flag(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.gcp_labels.items())

    @property
    def azure_tags(self) -> tuple[str, ...]:
        return tuple(f"{key}={value}" for key, value in sorted(self.tags.items()))

    @property
    def aws_tags(self) -> list[dict]:
        return [{"Key": key, "Value": value} for key, value in sorted(self.tags.items())]

    @property
    def aws_asg_tags(self) -> list[dict]:
        return [{"ResourceId": self.resource("asg"), "ResourceType": "auto-scaling-group", **tag,
                 "PropagateAtLaunch": True} for tag in self.aws_tags]

    def aws_tag_specifications(self, *kinds: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": self.aws_tags} for kind in kinds]

    @property
    def aws_launch_template(self) -> dict:
        """The launch template's data but the user data and security group (deploy.sh adds them)."""
        return {
            "ImageId": self.image,
            "InstanceType": self.instance_type,
            # IMDSv2 only: a request forwarded by the service cannot read instance credentials.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": self.aws_tag_specifications("instance", "volume"),
            **({"IamInstanceProfile": {"Name": self.vm_role}} if self.vm_identity else {}),
        }

    @property
    def aws_scaling_policy(self) -> dict:
        return {"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                "TargetValue": float(self.target_cpu_percent)}


def cloud_settings(model: ServiceModel) -> CloudSettings:
    spec = model.target("cloud")
    provider = spec["provider"]
    tags = {"mlgen-service": model.name, **model.labels, **spec["tags"]}
    gate = aws_release_alarm_names(model.name) if provider != "gcp" else (gcp_release_policy_name(model.name),)
    gradual = release(model, provider, gate)
    image = spec.get("image") or DEFAULT_IMAGES.get(model.runtime.python, {}).get(provider)
    return CloudSettings(
        provider=provider,
        name=model.name,
        region=spec.get("region"),
        # No schema default: it depends on the provider.
        instance_type=spec.get("instance_type") or INSTANCE_TYPES[provider],
        image=image or "",
        custom_image="image" in spec,
        edge=edge(model),
        lb_port=spec["lb_port"],
        port=model.runtime.port,
        grpc_port=model.runtime.grpc_port,
        admin_port=model.runtime.admin_port,
        min_size=max(1, model.scaling.min_replicas),
        max_size=max(1, model.scaling.min_replicas, model.scaling.max_replicas),
        target_cpu_percent=model.scaling.target_cpu_percent,
        artifact_url=spec.get("artifact_url"),
        artifact_upload=spec.get("artifact_upload"),
        vpc_id=spec.get("vpc_id"),
        subnet_ids=tuple(spec.get("subnet_ids") or ()),
        network=spec["network"],
        project=spec.get("project"),
        resource_group=spec.get("resource_group") or f"mlgen-{model.name}",
        tags=tags,
        model_object=model_object(model, provider),
        secrets=vm_secrets(model),
        key_vault=spec.get("key_vault"),
        release=gradual,
        release_alarms=aws_release_alarms(model, model.name, tags, alarm_period_s(model)) if gradual and provider == "aws" else (),
        release_policy=gcp_release_policy(model, model.name, alarm_period_s(model)) if gradual and provider == "gcp" else None,
        # AWS: no bundle fits its 16 KB of user data, so without artifact_url it always goes to
        # a private, encrypted bucket (NAME-ACCOUNT-REGION, which the VMs work out from their
        # instance metadata), read with an instance role that may read that one object.
        owned_bucket=provider == "aws" and not spec.get("artifact_url"),
    )
