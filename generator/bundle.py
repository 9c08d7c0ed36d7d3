"""The `app/` folder every bundle carries: the serving runtime, serving.json, the model and the
user's handler modules. One layout for every target, so a systemd unit, a Dockerfile, cloud-init
and a function handler all start the same code the same way."""

from __future__ import annotations

import functools
from pathlib import Path

from mlgen.render import RenderedFile
from mlgen.render.filters import pretty_json
from mlgen.resources import RUNTIME_DIR
from mlgen.spec import ServiceModel
from mlgen.spec.distributions import (
    FORMAT_REQUIREMENTS, GPU_REQUIREMENTS, GRPC_REQUIREMENTS, JWT_REQUIREMENTS, RUNTIME_REQUIREMENTS, STORE_REQUIREMENTS,
    project_name,
)
from mlgen.spec.artifact_uri import parse_uri

APP = "app"
# Where a fetched model (model.uri) is cached, relative to app/; each platform points
# MLGEN_MODEL_CACHE at its own writable place (systemd's CacheDirectory, an emptyDir, Lambda's /tmp).
MODEL_CACHE = "../model-cache"


def serving_config(model: ServiceModel, stage_urls: dict[str, str] | None = None) -> dict:
    """serving.json: the part of the ServiceModel the runtime reads (docs/runtime.md)."""
    port, batching = model.runtime.port, model.runtime.batching
    default_urls = {stage: f"http://127.0.0.1:{port + offset}"
                    for offset, stage in enumerate(("preprocess", "predict", "postprocess"), 1)}
    tensors = lambda items: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]
    return {
        "format_version": 1,
        "name": model.name,
        "version": model.version,
        "model": {
            "format": model.model.format,
            "path": model.model.relpath,
            "sha256": model.model.sha256,
            "version": model.model.version,
            "uri": model.model.uri,
            "max_bytes": model.model.max_bytes,
            "cache_dir": MODEL_CACHE,
            "handler": model.model.handler,
            "inputs": tensors(model.model.inputs),
            "outputs": tensors(model.model.outputs),
            "execution_providers": list(execution_providers(model)),
        },
        "pipeline": {
            "preprocess": model.pipeline.preprocess,
            "postprocess": model.pipeline.postprocess,
            "topology": model.pipeline.topology,
            "stage_urls": stage_urls or default_urls,
        },
        "runtime": {
            "port": port,
            "workers": model.runtime.workers,
            "timeout_s": model.runtime.timeout_s,
            "max_body_bytes": model.runtime.max_body_bytes,
            "grpc_port": model.runtime.grpc_port,
            "batching": {"max_batch_size": batching.max_batch_size, "max_latency_ms": batching.max_latency_ms}
                        if batching else None,
            "admin_port": model.runtime.admin_port,
        },
        "observability": {
            "metrics": model.observability.metrics,
            "log_format": model.observability.log_format,
            "log_level": model.observability.log_level,
        },
        "security": security_config(model),
    }


def security_config(model: ServiceModel) -> dict:
    """serving.json's security: credential names only; the values arrive as the target's secrets."""
    security, jwt = model.security, model.security.jwt
    return {
        "auth": security.auth,
        "header": security.header,
        "api_keys": [key.name for key in security.api_keys],
        "jwt": None if jwt is None else {
            "issuer": jwt["issuer"],
            "audience": jwt["audience"] if isinstance(jwt["audience"], str) else list(jwt["audience"]),
            "jwks_url": jwt.get("jwks_url"),
            "algorithms": list(jwt.get("algorithms", ())),
            "leeway_s": jwt["leeway_s"],
            "required_scopes": list(jwt["required_scopes"]),
            "required_claims": dict(jwt["required_claims"]),
        },
        # Split stages run where a network policy admits only their gateway (Kubernetes).
        "stage_token": None,
    }


def execution_providers(model: ServiceModel) -> tuple[str, ...]:
    """ONNX Runtime execution providers to try, in order: CUDA first when the spec asks for a GPU
    (the runtime falls back to CPU, with a warning, where CUDA is not there)."""
    if model.resources.gpu > 0:
        return ("CUDAExecutionProvider", "CPUExecutionProvider")
    return ("CPUExecutionProvider",)


def requirements(model: ServiceModel) -> list[str]:
    """pip requirements of the app: the user's own first, then what the runtime needs and the
    user did not already name."""
    user = list(model.runtime.requirements)
    named = {project_name(req) for req in user}
    wanted = RUNTIME_REQUIREMENTS + FORMAT_REQUIREMENTS[model.model.format]
    if model.resources.gpu > 0:
        wanted = tuple(GPU_REQUIREMENTS.get(req, req) for req in wanted)
    if model.runtime.grpc_port is not None:
        wanted += GRPC_REQUIREMENTS
    if model.security.auth == "jwt":
        wanted += JWT_REQUIREMENTS
    if model.model.fetched:
        wanted += STORE_REQUIREMENTS.get(parse_uri(model.model.uri).store, ())
    extra = [req for req in wanted if project_name(req) not in named]
    return user + extra


def app_files(model: ServiceModel, prefix: str = APP, stage_urls: dict[str, str] | None = None,
              requirements_text: str | None = None, functions: bool = False) -> list[RenderedFile]:
    """`requirements_text`: the target's requirements file (pinned with hashes from the lock);
    by default the plain requirements. `functions`: the bundle runs on a function platform, so it
    carries the platform adapters (mlgen_runtime/adapters/), which a server never imports."""
    left_out = _unused_runtime_modules(model)
    files = [RenderedFile(f"{prefix}/mlgen_runtime/{name}", content, generated=False)
             for name, content in runtime_sources()
             if name not in left_out and (functions or not name.startswith(ADAPTERS))]
    config = pretty_json(serving_config(model, stage_urls))
    files.append(RenderedFile.text(f"{prefix}/serving.json", config))
    files.append(RenderedFile.text(f"{prefix}/requirements.txt", requirements_text or "\n".join(requirements(model))))
    files.extend(_model_files(model, prefix))
    files.extend(RenderedFile(f"{prefix}/{code.relpath}", _read(code.path), generated=False) for code in model.code_files)
    return files


# Runtime modules only a service with the feature imports; a bundle without it leaves them out (an
# inline cloud-init user data has a size limit, and every target ships app/).
GRPC_MODULES = ("grpc_server.py", "grpc_tensors.py", "grpc_predict_v2_pb2.py")
BATCHING_MODULES = ("batching.py",)
GATEWAY_MODULES = ("gateway.py",)  # the entry stage of a split pipeline
JWT_MODULES = ("oidc.py",)  # security.auth jwt


FETCH_MODULES = ("fetch.py",)  # model.uri
ADAPTERS = "adapters/"  # the function platforms' entry points: only function bundles carry them


def _unused_runtime_modules(model: ServiceModel) -> set[str]:
    unused = set()
    if not model.model.fetched:
        unused.update(FETCH_MODULES)
    if model.pipeline.topology != "microservices":
        unused.update(GATEWAY_MODULES)
    if model.runtime.grpc_port is None:
        unused.update(GRPC_MODULES)
    if model.runtime.batching is None:
        unused.update(BATCHING_MODULES)
    if model.security.auth != "jwt":
        unused.update(JWT_MODULES)
    return unused


def write_app(model: ServiceModel, folder: Path) -> Path:
    """Lay out the bundle's app/ under `folder` (for `mlgen serve` and `mlgen plan`, which run it
    as a deployed service would) and return its path."""
    for rendered in app_files(model):
        path = folder / rendered.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered.content)
    return folder / APP


def _model_files(model: ServiceModel, prefix: str) -> list[RenderedFile]:
    if model.model.fetched:  # the service fetches it when it starts
        return []
    source = model.model.path
    if source.is_file():
        return [RenderedFile(f"{prefix}/{model.model.relpath}", _read(source), generated=False)]
    return [RenderedFile(f"{prefix}/{model.model.relpath}/{item.relative_to(source).as_posix()}", _read(item), generated=False)
            for item in sorted(source.rglob("*")) if item.is_file() and "__pycache__" not in item.parts]


@functools.cache
def runtime_sources() -> tuple[tuple[str, bytes], ...]:
    """The runtime package's files (read once per process; a batch render reuses them)."""
    package = RUNTIME_DIR / "mlgen_runtime"
    return tuple((path.relative_to(package).as_posix(), path.read_bytes())
                 for path in sorted(package.rglob("*"))
                 if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")


def _read(path: Path) -> bytes:
    return path.read_bytes()
