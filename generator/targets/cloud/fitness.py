"""What the cloud target cannot do as the spec asks, located at the spec's lines. (The user-data
size is measured when the user data is rendered: see userdata.check_size.)"""

from __future__ import annotations

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.targets.cloud.balancers import GRPC
from mlgen.targets.cloud.settings import DEFAULT_IMAGES, cloud_settings

# AWS names target groups and load balancers with at most 32 characters; ours end in -tg / -lb.
AWS_NAME_MAX = 32 - len("-tg")
# GCP instance templates are named NAME-<10 hex digits of their content>, at most 63 characters.
GCP_NAME_MAX = 63 - 11
UPLOAD_SCHEMES = {"aws": "s3://", "gcp": "gs://", "azure": "https://"}


def fit(model: ServiceModel) -> list[Problem]:
    settings = cloud_settings(model)
    where = ("targets", "cloud")
    problems = []
    if settings.provider == "aws" and len(settings.name) > AWS_NAME_MAX:
        problems.append(model.problem(("metadata", "name"), f"AWS load balancer and target group names take at most 32 characters: "
                                      f"{settings.name!r} is longer than {AWS_NAME_MAX} with -tg/-lb added",
                                      hint=f"shorten metadata.name to {AWS_NAME_MAX} characters"))
    if not settings.image:
        offered = [python for python, images in DEFAULT_IMAGES.items() if settings.provider in images]
        problems.append(model.problem(("runtime", "python"), f"no default {settings.provider} image with cloud-init has Python {model.runtime.python}",
                                      hint=f"use runtime.python {' or '.join(offered)}, or set targets.cloud.image to an image with cloud-init and Python {model.runtime.python}"))
    if settings.provider == "gcp" and len(settings.name) > GCP_NAME_MAX:
        problems.append(model.problem(("metadata", "name"), f"GCP instance template names take at most 63 characters: {settings.name!r} is longer than {GCP_NAME_MAX} with its version suffix",
                                      hint=f"shorten metadata.name to {GCP_NAME_MAX} characters"))
    if settings.artifact_upload and not settings.artifact_url:
        problems.append(model.problem(where + ("artifact_upload",), "artifact_upload needs artifact_url: the URL the VMs download the uploaded bundle from"))
    if settings.artifact_upload and not settings.artifact_upload.startswith(UPLOAD_SCHEMES[settings.provider]):
        problems.append(model.problem(where + ("artifact_upload",), f"{settings.provider} deploy.sh uploads to {UPLOAD_SCHEMES[settings.provider]}… URLs, not {settings.artifact_upload}",
                                      hint="s3://bucket/key on AWS, gs://bucket/key on GCP, https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB on Azure"))
    for option in ("vpc_id", "subnet_ids"):
        if option in model.target("cloud") and settings.provider != "aws":
            problems.append(model.problem(where + (option,), f"{option} is for AWS only: {settings.provider} ignores it", warning=True))
    if settings.provider == "gcp":
        for key in sorted(set(settings.tags) - set(settings.gcp_labels)):
            problems.append(model.problem(where + ("tags",), f"tag {key}={settings.tags[key]} is not a valid GCP label (lowercase letters, digits, _ and -): it is left out",
                                          warning=True))
    if model.secrets:
        problems.append(model.problem(("secrets",), "the VMs have no way to receive secrets yet: install.sh would wait for credential files nobody fills",
                                      hint="bake the credential files into targets.cloud.image, or serve this spec with the kubernetes target"))
    if model.pipeline.split:
        problems.append(model.problem(("pipeline", "topology"), "each VM runs the stages collocated in one process",
                                      hint="the kubernetes target runs each stage as its own service", warning=True))
    if settings.grpc_port is not None:
        grpc = GRPC[settings.provider]
        if not grpc.forwards:
            able = ", ".join(p for p, g in GRPC.items() if g.forwards)
            problems.append(model.problem(("runtime", "grpc_port"), f"{settings.provider}'s {grpc.balancer}: {grpc.how} ({grpc.source})",
                                          hint=f"remove runtime.grpc_port for {settings.provider}; provider {able}, or the onprem and "
                                               "kubernetes targets, serve it"))
        else:
            problems.append(model.problem(("runtime", "grpc_port"), f"{settings.provider}'s {grpc.balancer}: {grpc.how}",
                                          warning=True))
    if model.resources.gpu:
        problems.append(model.problem(("resources", "gpu"), "the VMs get no GPU drivers from cloud-init: choose a GPU instance_type and an image with the NVIDIA driver",
                                      warning=True))
    return problems
