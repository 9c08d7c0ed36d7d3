"""Google Cloud Functions 2nd gen: main.py (a functions-framework HTTP function), requirements.txt,
.gcloudignore, env.yaml (the spec's environment, passed with --env-vars-file so no value is ever
parsed by gcloud's comma syntax) and deploy.sh."""

from __future__ import annotations

import json

from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel
from generator.targets.serverless.common import Function, function_app_files, requirements_file

ENTRY_POINT = "serve"


def plan(model: ServiceModel, function: Function, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "function": function, "entry_point": ENTRY_POINT,
               "gcf_runtime": "python" + model.runtime.python.replace(".", ""),
               # Secret Manager secrets hold one value each: the reference's key is not used.
               "secret_refs": [f"{s.name}={s.secret}:latest" for s in model.secrets]}
    # JSON is YAML: one quoted value per variable, whatever characters it holds.
    env_yaml = json.dumps(dict(model.env), indent=2, sort_keys=True, ensure_ascii=False) if model.env else "{}"
    return [
        renderer.file("main.py", "serverless/gcp/main.py.j2", **context),
        renderer.file(".gcloudignore", "serverless/gcp/gcloudignore.j2", **context),
        renderer.file("deploy.sh", "serverless/gcp/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("env.yaml", env_yaml),
        requirements_file(model, "gcp"),
        *function_app_files(model, function),
    ]
