"""The ServiceModel: the one intermediate form between a spec and every target.

Frozen, defaults applied, paths resolved. Targets and templates read only this, never the raw
spec, so a spec change touches the builder and the schema, not every template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

STAGES = ("preprocess", "predict", "postprocess")


@dataclass(frozen=True)
class Tensor:
    """One tensor of the service's interface (the spec's `model.inputs` and `model.outputs`)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """The trained model (the spec's `model`): its file or URI, and its interface."""

    format: str
    path: Path | None  # absolute and resolved; None for a model fetched from `uri`
    relpath: str | None  # posix path relative to the spec's folder; the same path inside app/
    sha256: str | None
    handler: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    uri: str | None = None  # the artifact the service fetches when it starts (sha256 then set)
    version: str = ""  # model.version, defaulting to metadata.version
    max_bytes: int = 0  # model.max_size: the largest artifact the service fetches
    size_bytes: int | None = None  # the artifact's size when known: model.path's files, or --model-size

    @property
    def fetched(self) -> bool:
        """The model is not in the bundle: the service fetches it from `uri` when it starts."""
        return self.uri is not None

    @property
    def expected_bytes(self) -> int:
        """What the artifact weighs as far as mlgen knows, for the limits it must fit (a function's
        /tmp, an emptyDir): its real size when known, else model.max_size, the most the service fetches."""
        return self.size_bytes if self.size_bytes is not None else self.max_bytes


@dataclass(frozen=True)
class Pipeline:
    """The stages around the model and how they are deployed (the spec's `pipeline`)."""

    preprocess: str | None
    postprocess: str | None
    topology: str

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages that run, in order; predict always does."""
        return tuple(s for s in STAGES if s == "predict" or getattr(self, s))

    @property
    def split(self) -> bool:
        return self.topology == "microservices"


@dataclass(frozen=True)
class Batching:
    """Adaptive batching of inference requests (the spec's `runtime.batching`)."""

    max_batch_size: int  # rows in one model call
    max_latency_ms: float  # longest wait for batch mates


@dataclass(frozen=True)
class Runtime:
    """How the serving runtime runs (the spec's `runtime`)."""

    python: str
    requirements: tuple[str, ...]
    port: int
    workers: int
    timeout_s: int
    max_body_bytes: int
    grpc_port: int | None = None  # None: no gRPC listener
    batching: Batching | None = None  # None: every request is its own model call
    admin_port: int | None = None  # None: health and metrics beside inference on `port`


@dataclass(frozen=True)
class Resources:
    """What one instance of the service needs (the spec's `resources`)."""

    cpu: str  # a Kubernetes quantity: "1", "0.5", "500m"
    memory: str  # a Kubernetes quantity: "512Mi"
    gpu: int

    @property
    def millicores(self) -> int:
        if self.cpu.endswith("m"):
            return int(self.cpu[:-1])
        return round(float(self.cpu) * 1000)

    @property
    def memory_bytes(self) -> int:
        return quantity_bytes(self.memory)

    @property
    def memory_mib(self) -> int:
        return -(-self.memory_bytes // (1024 * 1024))


@dataclass(frozen=True)
class Scaling:
    """How many instances run and when to add more (the spec's `scaling`)."""

    min_replicas: int
    max_replicas: int
    target_cpu_percent: int


@dataclass(frozen=True)
class SecretRef:
    """A secret the service reads from an environment variable (one of the spec's `secrets`)."""

    name: str  # the environment variable the code reads
    secret: str  # the secret's name in the platform's store
    key: str  # the key inside that secret


API_KEY_PREFIX = "MLGEN_API_KEY_"  # the credential names of security.api_keys: MLGEN_API_KEY_1, …


@dataclass(frozen=True)
class Security:
    """Who may call the service (the spec's `security`)."""

    auth: str  # none | api_key | jwt
    header: str  # the header carrying an API key (authorization: `Bearer KEY`)
    api_keys: tuple[SecretRef, ...] = ()  # also in ServiceModel.secrets: delivered like every secret
    jwt: Mapping | None = None  # the spec's security.jwt, defaults applied

    @property
    def public(self) -> bool:
        """Anyone who reaches the port may call the model."""
        return self.auth == "none"


@dataclass(frozen=True)
class Observability:
    """Metrics, logs, SLOs and alerts (the spec's `observability`)."""

    metrics: bool
    log_format: str
    log_level: str
    # The spec's observability.slo and observability.alerts (schema defaults applied, read-only);
    # generator/monitoring turns them into alert rules, dashboards and alarms.
    slo: Mapping = field(default_factory=lambda: MappingProxyType({}))
    alerts: Mapping = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RolloutStep:
    """One canary step: the share of traffic on the new version, held for `pause_s` (0: the last)."""

    weight: int  # percent
    pause_s: int


@dataclass(frozen=True)
class Rollout:
    """How a new version reaches traffic (the spec's `rollout`), with its gate drawn from the SLO."""

    strategy: str  # all_at_once | canary | blue_green
    steps: tuple[RolloutStep, ...]  # canary only
    preview_s: int  # blue_green: checked this long before it takes the traffic
    max_error_ratio: float  # 5xx answers of the new version, as a ratio (0.005 for 0.5%)
    max_latency_p99_ms: int
    interval_s: int  # how often the analysis is measured

    @property
    def gradual(self) -> bool:
        return self.strategy != "all_at_once"


@dataclass(frozen=True)
class Example:
    """A request and the answer it must get (the spec's `examples`), sent by `mlgen verify`."""

    inputs: Mapping[str, object]  # tensor name → data, nested as the tensor's shape
    outputs: Mapping[str, object]  # expected outputs by name; empty: any answer with every output
    tolerance: float


@dataclass(frozen=True)
class CodeFile:
    """A user file (handler module or package file) copied into the bundle's app/."""

    relpath: str
    path: Path


@dataclass(frozen=True)
class ServiceModel:
    """One validated spec, defaults applied: everything a target renders from."""

    name: str
    version: str
    description: str
    labels: Mapping[str, str]
    model: ModelSpec
    pipeline: Pipeline
    runtime: Runtime
    resources: Resources
    scaling: Scaling
    env: Mapping[str, str]
    secrets: tuple[SecretRef, ...]
    observability: Observability
    targets: Mapping[str, Mapping]  # per-target settings, defaults applied, read-only
    code_files: tuple[CodeFile, ...]
    spec_path: Path
    spec_digest: str  # sha256 of the validated spec data, recorded in manifests
    examples: tuple[Example, ...] = ()
    security: Security = Security("none", "authorization")
    rollout: Rollout = Rollout("all_at_once", (), 0, 0.005, 500, 60)
    warnings: tuple = field(default=(), compare=False)
    sources: object = field(default=None, compare=False, repr=False)  # SourceMap of the spec

    def target(self, name: str) -> Mapping:
        return self.targets.get(name, MappingProxyType({}))

    def problem(self, path: tuple, message: str, *, hint: str | None = None, warning: bool = False):
        """A Problem located at the spec line that set `path` (or its closest parent), for
        target fitness checks: `model.problem(("targets", "serverless", "timeout_s"), "...")`."""
        from mlgen.errors import Level, Problem

        located = self.sources.problem(path, message, hint=hint) if self.sources else Problem(message, hint=hint)
        if warning:
            from dataclasses import replace

            located = replace(located, level=Level.WARNING)
        return located


_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def duration_seconds(duration: str) -> int:
    """Seconds of a schema `duration` (30s, 5m, 1h)."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def quantity_bytes(quantity: str) -> int:
    number = quantity.rstrip("KMGTi")
    return int(float(number) * _UNITS[quantity[len(number):]])


def freeze(value: object) -> object:
    """Deep read-only copy of plain data: dicts become mapping proxies, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: freeze(item) for key, item in sorted(value.items())})
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value
