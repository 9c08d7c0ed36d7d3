"""AWS Lambda: handler.py, a SAM template.yaml, build.sh (zip with manylinux wheels for the
function's architecture) or a Dockerfile on the Lambda Python base image, deploy.sh, a sample
API Gateway event."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mlgen.examples import release_files
from mlgen.render import RenderedFile, Renderer
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel
from mlgen.targets.serverless import pre_traffic
from mlgen.targets.serverless.release import HOOK_DIR, HOOK_MODULE
from mlgen.targets.serverless.settings import FunctionSettings


def sample_event(model: ServiceModel) -> dict:
    """An HTTP API (v2) event calling the infer route with a zero-filled request."""
    # Zeros (empty strings for BYTES): replace "data" with a real request before invoking.
    inputs = [{"name": t.name, "datatype": t.datatype, "shape": [1 if d < 0 else d for d in t.shape],
               "data": ["" if t.datatype == "BYTES" else 0] * math.prod(1 if d < 0 else d for d in t.shape)}
              for t in model.model.inputs]
    path = f"/v2/models/{model.name}/infer"
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "192.0.2.1", "userAgent": "mlgen-sample"},
                           "routeKey": "$default", "stage": "$default"},
        "body": json.dumps({"inputs": inputs}, sort_keys=True), "isBase64Encoded": False,
    }


def provider_files(model: ServiceModel, settings: FunctionSettings, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "settings": settings}
    package = (renderer.file("Dockerfile", "serverless/aws/Dockerfile.j2", **context) if settings.packaging == "image"
               else renderer.file("build.sh", "serverless/aws/build.sh.j2", mode=0o755, **context))
    return [
        renderer.file("handler.py", "serverless/aws/handler.py.j2", **context),
        renderer.file("template.yaml", "serverless/aws/template.yaml.j2", **context),
        renderer.file("deploy.sh", "serverless/aws/deploy.sh.j2", mode=0o755, **context),
        RenderedFile.text("events/infer.json", pretty_json(sample_event(model))),
        package,
        *(hook_files(model) if settings.pre_traffic else []),
    ]


def hook_files(model: ServiceModel) -> list[RenderedFile]:
    """The PreTraffic hook's package, release/: its code, the judge and the examples it sends, and
    the HTTP API event it wraps each one in."""
    return [RenderedFile.text(f"{HOOK_DIR}/{HOOK_MODULE}.py", Path(pre_traffic.__file__).read_text(encoding="utf-8")),
            RenderedFile.text(f"{HOOK_DIR}/event.json", pretty_json(sample_event(model))),
            *release_files(model)]
