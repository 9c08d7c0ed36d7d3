"""Cloud VM fleets: cloud-init that installs the on-prem target's hardened service on each fresh
VM, and deploy/teardown scripts (AWS, Google Cloud, Azure) that put a fleet behind a load
balancer with autoscaling, using each provider's official CLI."""

from __future__ import annotations

from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.cloud.docs import limits_markdown
from mlgen.targets.base import SPEC_FIELDS, Target, TradeOff, schema_fragment
from mlgen.targets.cloud.balancers import edge
from mlgen.targets.cloud.fitness import fit
from mlgen.targets.cloud.monitoring import monitoring
from mlgen.targets.cloud.scripts import script_files
from mlgen.targets.cloud.settings import cloud_settings
from mlgen.targets.cloud.userdata import user_data_files, vm_platform
from mlgen.targets.onprem.checks import CHECKS as HOST_CHECKS
from mlgen.targets.onprem.filters import FILTERS as HOST_FILTERS


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    files, cloud = user_data_files(model, cloud_settings(model), renderer)
    return files + script_files(model, cloud, renderer) + monitoring(model, cloud, renderer)


def open_to(model: ServiceModel) -> str | None:
    """Who reaches the load balancer without credentials (security.auth none)."""
    fleet = edge(model)
    if not fleet.allowed_cidrs:
        return None  # the spec must name them first (a fit error)
    cidrs = ", ".join(fleet.allowed_cidrs)
    return f"anyone on the internet (allowed_cidrs {cidrs})" if fleet.public else f"anyone in {cidrs}"


TARGET = Target(
    name="cloud",
    schema=schema_fragment(__file__),
    trade_off=TradeOff(
        choose_when="traffic grows and shrinks and you want a fleet that follows it (auto-scaling group / managed instance group / scale set behind a load balancer) without running a cluster",
        give_up="per-stage scaling (every VM runs the whole pipeline); VMs take minutes to join",
    ),
    docs="docs/targets/cloud.md",
    limits_markdown=limits_markdown,
    # Settings that render on their own for each provider (the user data is over AWS's 16 KB
    # limit without an artifact URL, so every provider gets one for a like-for-like bundle).
    # (allowed_cidrs has no default: every variant names its client networks.)
    variants={
        "aws": {"provider": "aws", "region": "eu-west-1", "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                "artifact_upload": "s3://bundles/model/bundle.tar.gz", "allowed_cidrs": ["203.0.113.0/24"]},
        # Google's own images either run no cloud-init (Debian) or carry one Python (Ubuntu 24.04:
        # 3.12): a custom image is how a fleet gets any runtime.python.
        "gcp": {"provider": "gcp", "region": "europe-west1", "project": "ml-serving-1",
                "image": "projects/ml-serving-1/global/images/family/mlgen-base",
                "artifact_url": "https://bundles.example.com/model/bundle.tar.gz", "allowed_cidrs": ["203.0.113.0/24"]},
        # A canary through an instance refresh, which rolls back only to a launch template with an AMI id.
        # It names a certificate of its region, over any an example names (merged into the variant).
        "aws-canary": {"provider": "aws", "region": "eu-west-1", "image": "ami-0123456789abcdef0",
                       "certificate": "arn:aws:acm:eu-west-1:123456789012:certificate/0f6e2c1a-7b5d-4e8f-9a3c-2d1b0e4f6a78",
                       "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                       "allowed_cidrs": ["203.0.113.0/24"], SPEC_FIELDS: {"rollout": {"strategy": "canary"}}},
        # With a certificate GCP's balancer is an external Application Load Balancer instead.
        "gcp-https": {"provider": "gcp", "region": "europe-west1", "project": "ml-serving-1",
                      "image": "projects/ml-serving-1/global/images/family/mlgen-base",
                      "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                      "allowed_cidrs": ["0.0.0.0/0"], "certificate": "model-example-com"},
        # A canary on GCP is gated by the HTTPS balancer's answers: it needs the certificate.
        "gcp-canary": {"provider": "gcp", "region": "europe-west1", "project": "ml-serving-1",
                       "image": "projects/ml-serving-1/global/images/family/mlgen-base",
                       "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                       "allowed_cidrs": ["0.0.0.0/0"], "certificate": "model-example-com",
                       SPEC_FIELDS: {"rollout": {"strategy": "canary"}}},
        # The vault an example's secrets are read from on Azure (it changes nothing without secrets).
        "azure": {"provider": "azure", "region": "westeurope", "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                  "allowed_cidrs": ["203.0.113.0/24"], "key_vault": "model-secrets"},
        # With a certificate (a Key Vault secret id) Azure's balancer is an Application Gateway v2.
        "azure-https": {"provider": "azure", "region": "westeurope", "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                        "allowed_cidrs": ["203.0.113.0/24"], "key_vault": "model-secrets",
                        "certificate": "https://model-certs.vault.azure.net/secrets/model-example-com"},
        # A canary on Azure is gated by the Application Gateway's metrics: it needs the certificate.
        "azure-canary": {"provider": "azure", "region": "westeurope", "artifact_url": "https://bundles.example.com/model/bundle.tar.gz",
                         "allowed_cidrs": ["203.0.113.0/24"], "key_vault": "model-secrets",
                         "certificate": "https://model-certs.vault.azure.net/secrets/model-example-com",
                         SPEC_FIELDS: {"rollout": {"strategy": "canary"}}},
    },
    summary="a VM fleet behind a load balancer with autoscaling, each VM running the on-prem service from cloud-init",
    plan=plan,
    fit=fit,
    open_to=open_to,
    # The balancers' health checks and the bootstrap's readiness wait use runtime.admin_port.
    admin_port=True,
    # The VMs install the on-prem host bundle, rendered from the on-prem templates.
    filters=HOST_FILTERS,
    checks=HOST_CHECKS,
    platform=vm_platform,
    # canary through an AWS instance refresh, GCP canary versions or Azure VMs reimaged step by step.
    rollouts=("all_at_once", "canary"),
    providers={
        "aws": "launch template, auto-scaling group with CPU target tracking, application load balancer (HTTPS with an ACM certificate)",
        "gcp": "instance template, regional managed instance group with autoscaler, passthrough network load balancer "
               "(an external Application Load Balancer with Cloud Armor when the spec names a certificate)",
        "azure": "VM scale set with autoscale settings, standard load balancer with an HTTP probe "
                 "(an Application Gateway v2 with a Key Vault certificate when the spec names one)",
    },
)
