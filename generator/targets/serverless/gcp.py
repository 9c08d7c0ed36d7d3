"""Google Cloud Functions 2nd gen: main.py (a functions-framework HTTP function), .gcloudignore,
env.yaml (the spec's environment, passed with --env-vars-file so no value is ever parsed by
gcloud's comma syntax), the alert policies and deploy.sh."""

from __future__ import annotations

import re

from mlgen.render import RenderedFile, Renderer
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel
from mlgen.targets.serverless.settings import FunctionSettings

# JSON is YAML except for characters YAML may not hold raw (DEL, C1 controls, non-characters) or
# reads as line breaks inside a quoted scalar (NEL, U+2028, U+2029): those go as \u escapes.
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def env_yaml(model: ServiceModel) -> str:
    """One quoted value per variable, whatever characters it holds."""
    text = pretty_json(dict(model.env)) if model.env else "{}"
    return _YAML_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def provider_files(model: ServiceModel, settings: FunctionSettings, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "settings": settings}
    return [
        renderer.file("main.py", "serverless/gcp/main.py.j2", **context),
        renderer.file(".gcloudignore", "serverless/gcp/gcloudignore.j2", **context),
        renderer.file("deploy.sh", "serverless/gcp/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("env.yaml", env_yaml(model)),
        *(RenderedFile.text(path, pretty_json(policy)) for path, policy in settings.policies.items()),
    ]
