"""AWS Lambda: handler.py, a SAM template.yaml, build.sh (zip with manylinux wheels for the
function's architecture) or a Dockerfile on the Lambda Python base image, deploy.sh, a sample
API Gateway event."""

from __future__ import annotations

import json

from generator.monitoring.native import cloudwatch_alarms, cloudwatch_dashboard, lambda_log_level
from generator.render import RenderedFile, Renderer
from generator.render.filters import pretty_json
from generator.spec import ServiceModel
from generator.targets.serverless.common import Function, function_app_files, requirements_file

# Lambda's Python runtimes: python3.10 and 3.11 run on Amazon Linux 2 (glibc 2.26), python3.12
# and later on Amazon Linux 2023 (glibc 2.34). Wheels newer than the OS's glibc do not load.
GLIBC_MINOR = {"3.10": 26, "3.11": 26, "3.12": 34, "3.13": 34}
WHEEL_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


def wheel_platforms(python: str, architecture: str) -> list[str]:
    """pip --platform tags a Lambda of this runtime and architecture can load, oldest first
    (pip does not widen an explicit --platform to compatible tags by itself)."""
    arch = WHEEL_ARCH[architecture]
    return [f"manylinux2014_{arch}"] + [f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR[python] + 1)]


def sample_event(model: ServiceModel) -> dict:
    """An HTTP API (v2) event calling the infer route with a zero-filled request."""
    # Zeros (empty strings for BYTES): replace "data" with a real request before invoking.
    inputs = [{"name": t.name, "datatype": t.datatype, "shape": [1 if d < 0 else d for d in t.shape],
               "data": ["" if t.datatype == "BYTES" else 0] * _count(t.shape)} for t in model.model.inputs]
    path = f"/v2/models/{model.name}/infer"
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "192.0.2.1", "userAgent": "mlgen-sample"},
                           "routeKey": "$default", "stage": "$default"},
        "body": json.dumps({"inputs": inputs}, sort_keys=True), "isBase64Encoded": False,
    }


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= 1 if dim < 0 else dim
    return count


def plan(model: ServiceModel, function: Function, renderer: Renderer) -> list[RenderedFile]:
    context = {"model": model, "function": function, "runtime": f"python{model.runtime.python}",
               "platforms": wheel_platforms(model.runtime.python, function.architecture),
               "secrets": [{"name": s.name, "secret": s.secret, "key": s.key} for s in model.secrets],
               "alarms": cloudwatch_alarms(model), "dashboard_body": cloudwatch_dashboard(model),
               "application_log_level": lambda_log_level(model)}
    files = [
        renderer.file("handler.py", "serverless/aws/handler.py.j2", **context),
        renderer.file("template.yaml", "serverless/aws/template.yaml.j2", **context),
        renderer.file("deploy.sh", "serverless/aws/deploy.sh.j2", mode=0o755, **context),
        requirements_file(model, "aws"),
        RenderedFile.text("events/infer.json", pretty_json(sample_event(model))),
        *function_app_files(model, function),
    ]
    if function.packaging == "image":
        files.append(renderer.file("Dockerfile", "serverless/aws/Dockerfile.j2", **context))
    else:
        files.append(renderer.file("build.sh", "serverless/aws/build.sh.j2", mode=0o755, **context))
    return files
