"""What the function package holds besides the provider's own files: the requirements without
the HTTP server, app/ with the platform's body limit, and the size estimate the fitness check reads."""

from __future__ import annotations

import dataclasses

from mlgen.spec.distributions import project_name
from mlgen.bundle import app_files
from mlgen.render import RenderedFile
from mlgen.spec import ServiceModel
from mlgen.targets.serverless import limits
from mlgen.targets.serverless.settings import FunctionSettings, function_requirements


def requirements_file(settings: FunctionSettings) -> RenderedFile:
    """What the function imports (the HTTP server is left out), pinned with hashes from the lock:
    the platform's own build (Cloud Functions, Azure) reads `--require-hashes` from the file."""
    return RenderedFile.text("requirements.txt", settings.locked.text)


def function_app_files(model: ServiceModel, settings: FunctionSettings) -> list[RenderedFile]:
    """app/ with serving.json's body limit lowered to what the platform delivers, so the
    adapter answers 413 itself instead of the platform failing the call."""
    runtime = dataclasses.replace(model.runtime, max_body_bytes=settings.max_body_bytes)
    return app_files(dataclasses.replace(model, runtime=runtime), requirements_text=settings.locked.text,
                     functions=True)


def model_mb(model: ServiceModel) -> float:
    """What the model adds to the package: nothing when the function fetches it from model.uri."""
    if model.model.fetched:
        return 0.0
    path = model.model.path
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / limits.MB


def bundle_estimate(model: ServiceModel, settings: FunctionSettings) -> tuple[float, float, list[str]]:
    """(model MB, dependencies MB, names counted at a guess) of the unzipped function. With the
    spec's lock: exactly the distributions it installs, each at its measured installed size where
    the table has one, else at its wheel's size (the least it takes unzipped). Without: the
    table's estimate of the requirements and what they pull in."""
    entry = settings.locked.entry
    if entry is not None:
        deps = sum(limits.INSTALLED_MB.get(project_name(p.name), p.size / limits.MB) for p in entry.packages)
        return model_mb(model), deps, []
    projects = [project_name(req) for req in function_requirements(model, settings.provider)]
    deps, unknown = limits.dependencies_mb(projects)
    return model_mb(model), deps, unknown
