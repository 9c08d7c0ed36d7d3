"""Google Cloud Functions 2nd gen: main.py (a functions-framework HTTP function), requirements.txt,
.gcloudignore, env.yaml (the spec's environment, passed with --env-vars-file so no value is ever
parsed by gcloud's comma syntax) and deploy.sh."""

from __future__ import annotations

import re

from generator.monitoring.native import gcp_alert_policies
from generator.render import RenderedFile, Renderer
from generator.render.filters import pretty_json
from generator.spec import ServiceModel
from generator.targets.serverless.common import Function, function_app_files, requirements_file

ENTRY_POINT = "serve"
# JSON is YAML except for characters YAML may not hold raw (DEL, C1 controls, non-characters) or
# reads as line breaks inside a quoted scalar (NEL, U+2028, U+2029): those go as \u escapes.
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def plan(model: ServiceModel, function: Function, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "function": function, "entry_point": ENTRY_POINT,
               "gcf_runtime": "python" + model.runtime.python.replace(".", ""),
               # Secret Manager secrets hold one value each: the reference's key is not used.
               "secret_refs": [f"{s.name}={s.secret}:latest" for s in model.secrets],
               "policies": {path: policy["displayName"] for path, policy in gcp_alert_policies(model).items()}}
    # One quoted value per variable, whatever characters it holds.
    env_yaml = pretty_json(dict(model.env)) if model.env else "{}"
    env_yaml = _YAML_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", env_yaml)
    return [
        renderer.file("main.py", "serverless/gcp/main.py.j2", **context),
        renderer.file(".gcloudignore", "serverless/gcp/gcloudignore.j2", **context),
        renderer.file("deploy.sh", "serverless/gcp/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("env.yaml", env_yaml),
        *(RenderedFile.text(path, pretty_json(policy)) for path, policy in gcp_alert_policies(model).items()),
        requirements_file(model, "gcp"),
        *function_app_files(model, function),
    ]
