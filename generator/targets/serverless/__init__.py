"""Serverless: one function bundle for the provider in targets.serverless.provider (AWS Lambda,
Google Cloud Functions 2nd gen, Azure Functions), checked against the platform's limits
(generator/fitness.py) before anything is rendered. Each provider's module holds its files."""

from __future__ import annotations

from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel
from generator.targets.base import Target, schema_fragment
from generator.targets.serverless import aws, azure, gcp
from generator.targets.serverless.common import fit, function_settings

PROVIDERS = {"aws": aws, "gcp": gcp, "azure": azure}


def plan(model: ServiceModel, renderer: Renderer) -> list[RenderedFile]:
    function = function_settings(model)
    return PROVIDERS[function.provider].plan(model, function, renderer)


TARGET = Target(
    name="serverless",
    schema=schema_fragment(__file__),
    summary="a function that loads the model once per instance and answers requests on demand",
    plan=plan,
    fit=fit,
    providers={
        "aws": "AWS Lambda behind an API Gateway HTTP API, deployed with SAM (zip or container image)",
        "gcp": "Google Cloud Functions 2nd gen (an HTTP function), deployed with gcloud",
        "azure": "Azure Functions, Python v2 model HTTP trigger, published with Core Tools",
    },
)
