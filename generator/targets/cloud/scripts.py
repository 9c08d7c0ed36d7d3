"""deploy.sh and teardown.sh for the spec's provider, with the tags each CLI wants worked out
here (each CLI spells them differently) so the templates only print them."""

from __future__ import annotations

import re

from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel
from generator.targets.cloud.settings import HEALTH_PATH, CloudSettings

EXECUTABLE = 0o755
# GCP label keys and values: lowercase letters, digits, _ and -; keys start with a letter.
GCP_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
GCP_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def script_files(model: ServiceModel, cloud: CloudSettings, renderer: Renderer) -> list[RenderedFile]:
    context = {"cloud": cloud, "model": model, "health_path": HEALTH_PATH, **PROVIDER_CONTEXT[cloud.provider](cloud)}
    return [renderer.file(script, f"cloud/{cloud.provider}/{script}.j2", mode=EXECUTABLE, **context)
            for script in ("deploy.sh", "teardown.sh")]


def _aws(cloud: CloudSettings) -> dict:
    tags = [{"Key": key, "Value": value} for key, value in sorted(cloud.tags.items())]
    return {
        "tags": tags,
        "asg_tags": [{"ResourceId": cloud.resource("asg"), "ResourceType": "auto-scaling-group", "Key": t["Key"],
                      "Value": t["Value"], "PropagateAtLaunch": True} for t in tags],
        "tag_specifications": lambda kind: [{"ResourceType": kind, "Tags": tags}],
        "launch_template": {
            "ImageId": cloud.image,
            "InstanceType": cloud.instance_type,
            # IMDSv2 only: a request forwarded by the service cannot read instance credentials.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
        },
        "scaling_policy": {"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                           "TargetValue": float(cloud.target_cpu_percent)},
    }


def gcp_labels(cloud: CloudSettings) -> dict[str, str]:
    """The tags GCP accepts as labels (the fitness check warns about the others)."""
    return {key: value for key, value in sorted(cloud.tags.items())
            if GCP_LABEL_KEY.fullmatch(key) and GCP_LABEL_VALUE.fullmatch(value)}


def _gcp(cloud: CloudSettings) -> dict:
    return {"labels": ",".join(f"{key}={value}" for key, value in gcp_labels(cloud).items())}


def _azure(cloud: CloudSettings) -> dict:
    return {"tags": [f"{key}={value}" for key, value in sorted(cloud.tags.items())]}


PROVIDER_CONTEXT = {"aws": _aws, "gcp": _gcp, "azure": _azure}
