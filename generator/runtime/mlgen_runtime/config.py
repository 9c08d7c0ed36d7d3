"""serving.json, read once into frozen dataclasses.

mlgen writes serving.json from the spec; this module is the runtime's side of that contract. The
spec's schema is the one place defaults live and mlgen writes every field, so the runtime repeats
none of them: a missing field is a ConfigError naming it. The runtime's own knobs that no spec sets
(`shutdown_timeout_s`, `stage_retries`) are optional. Unknown fields are ignored (a newer generator
may add optional ones).
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass
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
    # ONNX Runtime execution providers to try, in order ("CUDAExecutionProvider", "CPUExecutionProvider").
    execution_providers: tuple[str, ...]
    version: str  # the model's version: model routes, metrics and logs report it
    uri: str | None  # fetched into cache_dir when the service starts (path is then where it lands)
    max_bytes: int  # the largest model a fetch accepts
    cache_dir: Path  # where fetched models are kept, one folder per sha256 (MLGEN_MODEL_CACHE overrides)


@dataclass(frozen=True)
class PipelineConfig:
    preprocess: str | None
    postprocess: str | None
    topology: str
    stage_urls: dict[str, str]


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int  # rows in one model call
    max_latency_ms: float  # longest a request waits for batch mates


@dataclass(frozen=True)
class RuntimeConfig:
    port: int
    workers: int
    timeout_s: float
    max_body_bytes: int
    grpc_port: int | None  # None: HTTP only
    batching: BatchingConfig | None  # None: every request is its own model call
    admin_port: int | None  # health and metrics on a port of their own; None: on `port`, beside inference
    # Optional: how long SIGTERM waits for in-flight requests (defaults to timeout_s).
    shutdown_timeout_s: float | None = None
    # Optional: retries of a gateway call to a stage that could not be reached.
    stage_retries: int = 2


@dataclass(frozen=True)
class JwtConfig:
    issuer: str  # the OIDC issuer; its discovery document names the JWKS when jwks_url is None
    audience: tuple[str, ...]  # a token must name one of these in `aud`
    jwks_url: str | None
    algorithms: tuple[str, ...]  # empty: the issuer's asymmetric algorithms (its discovery document)
    leeway_s: float  # clock skew allowed on exp, nbf and iat
    required_scopes: tuple[str, ...]  # each must be in the token's `scope` (or `scp`)
    required_claims: dict  # claim -> value the token must carry (or list containing it)


@dataclass(frozen=True)
class SecurityConfig:
    auth: str  # none | api_key | jwt: what the entry stage (all, gateway) asks of its callers
    header: str  # lower case; "authorization" carries `Bearer CREDENTIAL`, any other header the key alone
    api_keys: tuple[str, ...]  # names of the credentials holding the valid keys (systemd credential or env)
    jwt: JwtConfig | None
    # Name of the credential a gateway and its stages share (None: the stages accept any caller,
    # for platforms where a network policy already admits only the gateway).
    stage_token: str | None


@dataclass(frozen=True)
class ObservabilityConfig:
    metrics: bool
    log_format: str
    log_level: str


@dataclass(frozen=True)
class ServingConfig:
    name: str
    version: str
    model: ModelConfig
    pipeline: PipelineConfig
    runtime: RuntimeConfig
    observability: ObservabilityConfig
    security: SecurityConfig
    app_dir: Path  # the folder holding serving.json: model paths and handler modules resolve here


def load_config(path: str | os.PathLike, environ: dict[str, str] | None = None) -> ServingConfig:
    """Read serving.json; `MLGEN_STAGE_URL_<STAGE>` in `environ` override pipeline.stage_urls and
    `MLGEN_STAGE_TOKEN_CREDENTIAL` security.stage_token."""
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
    version = raw["format_version"]
    if version != SUPPORTED_FORMAT_VERSION:
        raise ValueError(f"format_version {version!r} is not supported (this runtime reads 1)")
    model_raw = raw["model"]
    model_format = model_raw["format"]
    if model_format not in MODEL_FORMATS:
        raise ValueError(f"model.format {model_format!r} is not one of {', '.join(MODEL_FORMATS)}")
    model = ModelConfig(
        format=model_format,
        path=(app_dir / model_raw["path"]) if model_raw["path"] else app_dir,  # a fetched model: set once it is cached
        sha256=model_raw["sha256"] or None,
        handler=model_raw["handler"] or None,
        inputs=_tensor_specs(model_raw["inputs"], "model.inputs"),
        outputs=_tensor_specs(model_raw["outputs"], "model.outputs"),
        execution_providers=tuple(str(name) for name in model_raw["execution_providers"]),
        version=str(model_raw["version"]),
        uri=model_raw["uri"] or None,
        max_bytes=int(model_raw["max_bytes"]),
        cache_dir=app_dir / (environ.get("MLGEN_MODEL_CACHE") or model_raw["cache_dir"]),
    )
    if model.uri and not model.sha256:
        raise ValueError("model.uri needs model.sha256: a fetched model is verified, never trusted")
    if model_format == "python" and not model.handler:
        raise ValueError("model.handler (module:attr) is required for format 'python'")

    pipeline_raw = _known(raw["pipeline"], PipelineConfig, "pipeline")
    stage_urls = dict(pipeline_raw["stage_urls"])
    for stage in STAGES:
        override = environ.get(f"MLGEN_STAGE_URL_{stage.upper()}")
        if override:
            stage_urls[stage] = override
    pipeline = PipelineConfig(
        preprocess=pipeline_raw["preprocess"] or None,
        postprocess=pipeline_raw["postprocess"] or None,
        topology=pipeline_raw["topology"],
        stage_urls={stage: url.rstrip("/") for stage, url in stage_urls.items()},
    )
    runtime_raw = _known(raw["runtime"], RuntimeConfig, "runtime")
    if runtime_raw["batching"] is not None:
        runtime_raw["batching"] = BatchingConfig(**_known(runtime_raw["batching"], BatchingConfig, "runtime.batching"))
    runtime = RuntimeConfig(**runtime_raw)
    observability = ObservabilityConfig(**_known(raw["observability"], ObservabilityConfig, "observability"))
    if observability.log_format not in ("json", "text"):
        raise ValueError(f"observability.log_format {observability.log_format!r} is not json or text")
    return ServingConfig(
        name=str(raw["name"]),
        version=str(raw["version"]),
        model=model,
        pipeline=pipeline,
        runtime=runtime,
        observability=observability,
        security=_security(raw["security"], environ),
        app_dir=app_dir,
    )


AUTH_MODES = ("none", "api_key", "jwt")
STAGE_TOKEN_ENV = "MLGEN_STAGE_TOKEN_CREDENTIAL"  # the name of the stage token's credential, not the token


def _security(raw: dict, environ) -> SecurityConfig:
    fields = _known(raw, SecurityConfig, "security")
    # Where no network policy keeps callers from the split stages (compose), the environment names
    # the token a gateway and its stages share; serving.json (the same image on Kubernetes) keeps null.
    fields["stage_token"] = environ.get(STAGE_TOKEN_ENV) or fields["stage_token"]
    if fields["auth"] not in AUTH_MODES:
        raise ValueError(f"security.auth {fields['auth']!r} is not one of {', '.join(AUTH_MODES)}")
    jwt = fields["jwt"]
    if jwt is not None:
        jwt = _known(jwt, JwtConfig, "security.jwt")
        jwt = JwtConfig(**{**jwt, "audience": _strings(jwt["audience"]), "algorithms": _strings(jwt["algorithms"]),
                           "required_scopes": _strings(jwt["required_scopes"]),
                           "required_claims": dict(jwt["required_claims"])})
    security = SecurityConfig(**{**fields, "header": str(fields["header"]).lower(),
                                 "api_keys": _strings(fields["api_keys"]), "jwt": jwt})
    if security.auth == "api_key" and not security.api_keys:
        raise ValueError("security.auth is api_key but security.api_keys names no credential")
    if security.auth == "jwt" and security.jwt is None:
        raise ValueError("security.auth is jwt but security.jwt is null")
    return security


def _strings(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(item) for item in value)


def _known(section: dict, cls, where: str) -> dict:
    """The fields of `section` that `cls` declares (a null optional field takes its default);
    a KeyError naming the first required field that is missing."""
    fields = cls.__dataclass_fields__
    required = {name for name, spec in fields.items() if spec.default is MISSING and spec.default_factory is MISSING}
    for name in fields:
        if name in required and name not in section:
            raise KeyError(f"{where}.{name}")
    return {key: value for key, value in section.items() if key in fields and (value is not None or key in required)}


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
