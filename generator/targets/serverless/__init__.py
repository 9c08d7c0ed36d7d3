"""Serverless: one function bundle for the provider in targets.serverless.provider (AWS Lambda,
Google Cloud Functions 2nd gen, Azure Functions), checked against the platform's limits
(limits.py, fitness.py) before anything is rendered. settings.py works out every value once;
each provider's module holds its files; the code that runs on the platform is the runtime's
adapters (mlgen_runtime.adapters), which the rendered entry points only call."""

from __future__ import annotations

from mlgen.render import RenderedFile, Renderer
from mlgen.spec import ServiceModel
from mlgen.targets.serverless.docs import limits_markdown
from mlgen.targets.base import SPEC_FIELDS, Target, TradeOff, schema_fragment
from mlgen.targets.serverless import aws, azure, gcp
from mlgen.targets.serverless.fitness import fit
from mlgen.targets.serverless.package import function_app_files, requirements_file
from mlgen.targets.serverless.settings import function_platform, function_settings

PROVIDERS = {"aws": aws, "gcp": gcp, "azure": azure}


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    settings = function_settings(model)
    return [*PROVIDERS[settings.provider].provider_files(model, settings, renderer),
            requirements_file(settings), *function_app_files(model, settings)]


def open_to(model: ServiceModel) -> str | None:
    """Who calls the function without credentials (security.auth none): nobody the platform has not
    authenticated (IAM, identity tokens, function keys) unless targets.serverless.public."""
    return "anyone on the internet (targets.serverless.public)" if model.target("serverless")["public"] else None


TARGET = Target(
    name="serverless",
    schema=schema_fragment(__file__),
    trade_off=TradeOff(
        choose_when="the model is light, traffic is bursty or rare, and paying per request (and nothing when idle) matters",
        give_up="cold starts (every new instance loads the model), hard limits on package size, time and payload below, no GPUs",
    ),
    docs="docs/targets/serverless.md",
    limits_markdown=limits_markdown,
    summary="a function that loads the model once per instance and answers requests on demand",
    plan=plan,
    fit=fit,
    open_to=open_to,
    platform=function_platform,
    # canary on AWS (CodeDeploy) and GCP (Cloud Run traffic), blue_green on Azure Premium (slot swap):
    # release.py refuses each where its provider cannot.
    rollouts=("all_at_once", "canary", "blue_green"),
    # Every provider, and each provider's gradual release (what its deploy carries out differs).
    variants={
        # Azure Functions cannot release a canary (its slots swap all the traffic at once): a spec's
        # canary is rendered there as what Azure does by default.
        "aws": {"provider": "aws"}, "gcp": {"provider": "gcp"},
        "azure": {"provider": "azure", SPEC_FIELDS: {"rollout": {"strategy": "all_at_once"}}},
        "aws-canary": {"provider": "aws", SPEC_FIELDS: {"rollout": {"strategy": "canary",
                                                                    "steps": [{"weight": 10, "pause": "5m"}, {"weight": 100}]}}},
        "gcp-canary": {"provider": "gcp", SPEC_FIELDS: {"rollout": {"strategy": "canary"}}},
        "azure-bluegreen": {"provider": "azure", "plan": "premium", "memory_mb": 3584,
                            SPEC_FIELDS: {"rollout": {"strategy": "blue_green"}}},
    },
    providers={
        "aws": "AWS Lambda behind an API Gateway HTTP API, deployed with SAM (zip or container image)",
        "gcp": "Google Cloud Functions 2nd gen (an HTTP function), deployed with gcloud",
        "azure": "Azure Functions, Python v2 model HTTP trigger, published with Core Tools",
    },
)
