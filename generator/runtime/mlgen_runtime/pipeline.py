"""preprocess → predict → postprocess, and which part of it a process runs (`--stage`).

`all` runs every configured step in this process; `preprocess`, `predict` and `postprocess` run one
step as a stage service; `gateway` runs none and calls the stage services (see gateway.py). The role
also says which declared tensors validate a stage's requests and responses: the spec describes the
service's public interface (`model.inputs` in, `model.outputs` out), not the tensors passed between
steps, so an intermediate stage accepts what the previous one sends and answers what its step returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import STAGES, ConfigError, ServingConfig, TensorSpec
from .errors import ModelError, RequestError
from .handlers import as_stage
from .loaders import load_model

SERVE_STAGES = ("all", *STAGES, "gateway")


@dataclass(frozen=True)
class StageRole:
    stage: str
    steps: tuple[str, ...]  # the pipeline steps this process runs (gateway: the ones it calls)
    input_specs: tuple[TensorSpec, ...] | None  # None: accept the tensors the sender declares
    output_specs: tuple[TensorSpec, ...] | None  # None: answer the tensors the step returns


def role_for(config: ServingConfig, stage: str) -> StageRole:
    if stage not in SERVE_STAGES:
        raise ConfigError(f"--stage {stage!r} is not one of {', '.join(SERVE_STAGES)}")
    pipeline, model = config.pipeline, config.model
    configured = tuple(step for step in STAGES if step == "predict" or getattr(pipeline, step))
    public_in, public_out = model.inputs or None, model.outputs or None
    if stage in ("all", "gateway"):
        return StageRole(stage, configured, public_in, public_out)
    if stage not in configured:
        raise ConfigError(f"--stage {stage}: serving.json configures no {stage} step")
    first, last = stage == configured[0], stage == configured[-1]
    return StageRole(stage, (stage,), public_in if first else None, public_out if last else None)


class LocalPipeline:
    """The role's steps, run one after the other in this process."""

    def __init__(self, config: ServingConfig, role: StageRole) -> None:
        pipeline = config.pipeline
        self.steps = []
        # What the model computes on: the ONNX Runtime provider it got, "cpu" for scikit-learn, and
        # "handler" for a python model (its own code decides); None in a stage without the model.
        self.execution_provider = None
        for step in role.steps:
            if step == "predict":
                function = load_model(config.model,
                                      inputs_are_model_inputs=not pipeline.preprocess,
                                      outputs_are_model_outputs=not pipeline.postprocess)
                self.execution_provider = getattr(function, "execution_provider",
                                                  "cpu" if config.model.format == "sklearn" else "handler")
            else:
                function = as_stage(getattr(pipeline, step), f"pipeline.{step}")
            self.steps.append((step, function))

    def ready(self) -> bool:
        return True

    def run(self, tensors: dict, context) -> dict:
        for step, function in self.steps:
            try:
                result = function(tensors, context)
            except RequestError:
                raise  # a handler may refuse a request with a status of its choosing
            except Exception as exc:  # the traceback goes to the log (Service.error_response), not to the caller
                raise ModelError(f"{step} failed: {type(exc).__name__}: {_short(exc)}") from exc
            if not isinstance(result, dict):
                raise ModelError(f"{step} returned {type(result).__name__}, expected a dict of tensors by name")
            tensors = result
        return tensors


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:limit]
