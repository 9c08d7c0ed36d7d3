"""serving.json, read once into frozen dataclasses.

mlgen writes serving.json from the spec; this module is the runtime's side of that contract. Only
`format_version`, `name` and `model` are required; everything else has a default so an older or
hand-written file keeps working. Unknown fields are ignored (a newer generator may add optional ones).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

SUPPORTED_FORMAT_VERSION = 1
STAGES = ("preprocess", "predict", "postprocess")
MODEL_FORMATS = ("sklearn", "onnx", "python")


class ConfigError(Exception):
    """serving.json is missing, malformed, or names something that cannot be loaded."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelConfig:
    format: str
    path: Path
    sha256: str | None
    handler: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class PipelineConfig:
    preprocess: str | None = None
    postprocess: str | None = None
    topology: str = "collocated"
    stage_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeConfig:
    port: int = 8080
    workers: int = 1
    timeout_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    # Optional: how long SIGTERM waits for in-flight requests (defaults to timeout_s).
    shutdown_timeout_s: float | None = None
    # Optional: retries of a gateway call to a stage that could not be reached.
    stage_retries: int = 2


@dataclass(frozen=True)
class ObservabilityConfig:
    metrics: bool = True
    log_format: str = "json"
    log_level: str = "info"


@dataclass(frozen=True)
class ServingConfig:
    name: str
    version: str
    model: ModelConfig
    pipeline: PipelineConfig
    runtime: RuntimeConfig
    observability: ObservabilityConfig
    app_dir: Path  # the folder holding serving.json: model paths and handler modules resolve here


def load_config(path: str | os.PathLike, environ: dict[str, str] | None = None) -> ServingConfig:
    """Read serving.json; `MLGEN_STAGE_URL_<STAGE>` in `environ` override pipeline.stage_urls."""
    source = Path(path).resolve()
    try:
        raw = orjson.loads(source.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    try:
        return _build(raw, source.parent, os.environ if environ is None else environ)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def _build(raw: dict, app_dir: Path, environ) -> ServingConfig:
    version = raw.get("format_version", SUPPORTED_FORMAT_VERSION)
    if version != SUPPORTED_FORMAT_VERSION:
        raise ValueError(f"format_version {version!r} is not supported (this runtime reads 1)")
    model_raw = raw["model"]
    model_format = model_raw["format"]
    if model_format not in MODEL_FORMATS:
        raise ValueError(f"model.format {model_format!r} is not one of {', '.join(MODEL_FORMATS)}")
    model = ModelConfig(
        format=model_format,
        path=(app_dir / model_raw["path"]) if model_raw.get("path") else app_dir,
        sha256=(model_raw.get("sha256") or None),
        handler=model_raw.get("handler") or None,
        inputs=_tensor_specs(model_raw.get("inputs"), "model.inputs"),
        outputs=_tensor_specs(model_raw.get("outputs"), "model.outputs"),
    )
    if model_format == "python" and not model.handler:
        raise ValueError("model.handler (module:attr) is required for format 'python'")

    pipeline_raw = raw.get("pipeline") or {}
    stage_urls = dict(pipeline_raw.get("stage_urls") or {})
    for stage in STAGES:
        override = environ.get(f"MLGEN_STAGE_URL_{stage.upper()}")
        if override:
            stage_urls[stage] = override
    pipeline = PipelineConfig(
        preprocess=pipeline_raw.get("preprocess") or None,
        postprocess=pipeline_raw.get("postprocess") or None,
        topology=pipeline_raw.get("topology") or "collocated",
        stage_urls={stage: url.rstrip("/") for stage, url in stage_urls.items()},
    )
    runtime = RuntimeConfig(**_known(raw.get("runtime"), RuntimeConfig))
    observability = ObservabilityConfig(**_known(raw.get("observability"), ObservabilityConfig))
    if observability.log_format not in ("json", "text"):
        raise ValueError(f"observability.log_format {observability.log_format!r} is not json or text")
    return ServingConfig(
        name=str(raw["name"]),
        version=str(raw.get("version") or "1"),
        model=model,
        pipeline=pipeline,
        runtime=runtime,
        observability=observability,
        app_dir=app_dir,
    )


def _known(section: dict | None, cls) -> dict:
    """The fields of `section` that `cls` declares, ignoring nulls (null means 'use the default')."""
    names = cls.__dataclass_fields__
    return {key: value for key, value in (section or {}).items() if key in names and value is not None}


def _tensor_specs(raw: list | None, where: str) -> tuple[TensorSpec, ...]:
    from .tensors import DATATYPES  # tensors imports numpy lazily; the table itself is plain data

    specs = []
    for index, item in enumerate(raw or []):
        datatype = str(item["datatype"]).upper()
        if datatype not in DATATYPES:
            raise ValueError(f"{where}[{index}].datatype {item['datatype']!r} is not a V2 datatype")
        shape = tuple(int(dim) for dim in item["shape"])
        if any(dim < -1 for dim in shape):
            raise ValueError(f"{where}[{index}].shape {list(shape)} has a dimension below -1")
        specs.append(TensorSpec(name=str(item["name"]), datatype=datatype, shape=shape))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{where} has duplicate tensor names")
    return tuple(specs)
