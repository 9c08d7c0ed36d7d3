"""What the cloud target cannot do as the spec asks, located at the spec's lines. (The user-data
size is measured when the user data is rendered: see userdata.check_size.)"""

from __future__ import annotations

from mlgen.errors import Problem
from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import parse_uri
from mlgen.targets.cloud.balancers import GRPC, edge_problems
from mlgen.targets.cloud.identity import SECRET_STORES
from mlgen.targets.cloud.release import release_problems
from mlgen.targets.cloud.settings import DEFAULT_IMAGES, CloudSettings, cloud_settings

# AWS names target groups and load balancers with at most 32 characters; ours end in -tg / -lb,
# and -grpc for the gRPC target group.
AWS_NAME_MAX = 32 - len("-tg")
AWS_GRPC_NAME_MAX = 32 - len("-grpc")
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
    if settings.provider == "aws" and settings.edge.aws_grpc and len(settings.name) > AWS_GRPC_NAME_MAX:
        problems.append(model.problem(("metadata", "name"), f"AWS target group names take at most 32 characters: the gRPC one, "
                                      f"{settings.name}-grpc, is longer", hint=f"shorten metadata.name to {AWS_GRPC_NAME_MAX} characters"))
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
    problems += edge_problems(model, settings.region)
    for option in ("vpc_id", "subnet_ids"):
        if option in model.target("cloud") and settings.provider != "aws":
            problems.append(model.problem(where + (option,), f"{option} is for AWS only: {settings.provider} ignores it", warning=True))
    if settings.provider == "gcp":
        for key in sorted(set(settings.tags) - set(settings.gcp_labels)):
            problems.append(model.problem(where + ("tags",), f"tag {key}={settings.tags[key]} is not a valid GCP label (lowercase letters, digits, _ and -): it is left out",
                                          warning=True))
    problems += secret_problems(model, settings)
    problems += model_problems(model, settings)
    problems += release_problems(model, settings)
    if model.pipeline.split:
        problems.append(model.problem(("pipeline", "topology"), "each VM runs the stages collocated in one process",
                                      hint="the kubernetes target runs each stage as its own service", warning=True))
    if settings.grpc_port is not None:
        grpc = GRPC[settings.provider]
        if settings.provider == "aws" and not settings.edge.https:
            problems.append(model.problem(("runtime", "grpc_port"), "aws's Application Load Balancer carries gRPC only over an "
                                          "HTTPS listener, and targets.cloud.certificate names none",
                                          hint="set targets.cloud.certificate to an ACM certificate ARN of the fleet's region "
                                               "(gRPC then has an HTTPS listener of its own on runtime.grpc_port); provider gcp "
                                               "or azure without a certificate pass it through as plain TCP"))
        elif not grpc.forwards:
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


def secret_where(model: ServiceModel, name: str) -> tuple:
    """The spec line of a secret reference: its entry in `secrets`, or in `security.api_keys`."""
    for index, secret in enumerate(model.secrets):
        if secret.name == name:
            keys = [key.name for key in model.security.api_keys]
            if name in keys:
                return ("security", "api_keys", keys.index(name), "secret")
            return ("secrets", index, "secret")
    return ("secrets",)


def secret_problems(model: ServiceModel, settings: CloudSettings) -> list[Problem]:
    """Each secret is read under its own name from the provider's store: a name that store cannot
    hold is an error at its line, and Azure needs the vault."""
    store, pattern, allowed = SECRET_STORES[settings.provider]
    problems = [model.problem(secret_where(model, secret.name), f"{store} secret names hold only {allowed}: {secret.secret!r} cannot name one",
                              hint=f"create the secret in {store} under a name of {allowed} and reference that name")
                for secret in settings.secrets if not pattern.fullmatch(secret.secret)]
    if settings.secrets and settings.provider == "azure" and not settings.key_vault:
        problems.append(model.problem(secret_where(model, settings.secrets[0].name), "on Azure the VMs read their secrets from a Key Vault: targets.cloud.key_vault names none",
                                      hint="set targets.cloud.key_vault to the vault (RBAC permission model) that holds these secrets"))
    if settings.key_vault and settings.provider != "azure":
        problems.append(model.problem(("targets", "cloud", "key_vault"), f"key_vault is for Azure only: {settings.provider} ignores it", warning=True))
    return problems


def model_problems(model: ServiceModel, settings: CloudSettings) -> list[Problem]:
    """A file:// model is read from each VM's own disk (the other stores need nothing more, or get
    the access_problems warning for another cloud's storage)."""
    if model.model.uri is None or parse_uri(model.model.uri).store != "file":
        return []
    return [model.problem(("model", "uri"), "a file:// model is read from each VM's own disk: nothing puts it there",
                          hint="bake the file into targets.cloud.image, or keep the model in the provider's storage "
                               "(the VMs' identity is then allowed to read it)", warning=True)]
