"""Model loaders, one per `model.format`. Each imports its library only when chosen: importing
scikit-learn alone costs ~1.3 s of cold start, which an ONNX or python service must not pay.

A loaded model is a callable `predict(inputs: dict, context) -> dict` (tensors by name), so the
pipeline treats every format the same way.
"""

from __future__ import annotations

import hashlib
import logging

from .config import ConfigError, ModelConfig
from .handlers import resolve, takes_context

logger = logging.getLogger("mlgen_runtime")
CPU = "CPUExecutionProvider"

_ONNX_TYPES = {
    "tensor(bool)": "BOOL", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(float16)": "FP16",
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(string)": "BYTES",
}


def load_model(model: ModelConfig, *, inputs_are_model_inputs: bool, outputs_are_model_outputs: bool):
    """The model's predict callable. The two flags say whether the declared inputs/outputs describe
    the model itself (no preprocess/postprocess in front/behind it), so they can be checked now."""
    verify_sha256(model)
    loader = _LOADERS[model.format]
    return loader(model, inputs_are_model_inputs, outputs_are_model_outputs)


def verify_sha256(model: ModelConfig) -> None:
    if not model.sha256 or model.uri:  # a fetched model was verified as it arrived (fetch.py)
        return
    if not model.path.is_file():
        raise ConfigError(f"model.sha256 is set but {model.path} is not a file")
    digest = hashlib.sha256()
    with model.path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != model.sha256.lower():
        raise ConfigError(f"{model.path} has sha256 {digest.hexdigest()}, serving.json expects {model.sha256}")


def _load_sklearn(model: ModelConfig, inputs_are_model_inputs: bool, outputs_are_model_outputs: bool):
    import joblib

    estimator = joblib.load(model.path)
    if inputs_are_model_inputs and len(model.inputs) != 1:
        raise ConfigError(f"a scikit-learn model takes one input tensor, serving.json declares "
                          f"{len(model.inputs)} (add a preprocess step to combine them)")
    if outputs_are_model_outputs:
        # The declared output named predict_proba gets predict_proba(); the other one gets predict().
        names = [spec.name for spec in model.outputs]
        label_names = [name for name in names if name != "predict_proba"]
        if len(label_names) > 1:
            raise ConfigError(f"a scikit-learn model has one predict() output (plus predict_proba), "
                              f"serving.json declares {', '.join(names)}")
        label_name = label_names[0] if label_names else None
        with_proba = "predict_proba" in names
    else:
        label_name, with_proba = "predict", hasattr(estimator, "predict_proba")
    if with_proba and not hasattr(estimator, "predict_proba"):
        raise ConfigError(f"{type(estimator).__name__} has no predict_proba, but it is declared as an output")

    def predict(inputs: dict, context) -> dict:
        (features,) = inputs.values() if len(inputs) == 1 else _one_input_error(inputs)
        outputs = {}
        if label_name is not None:
            outputs[label_name] = estimator.predict(features)
        if with_proba:
            outputs["predict_proba"] = estimator.predict_proba(features)
        return outputs

    if not inputs_are_model_inputs:
        return predict  # a preprocess step's output is not validated: scikit-learn keeps its check
    # The model gets the request's own tensors, which validation has already refused for any NaN or
    # infinity: scikit-learn need not look for them again (iris: ~7 µs of a 75 µs predict, and less
    # of the runtime's own code pushed out of the CPU's caches; see docs/runtime.md, Performance).
    config = _sklearn_thread_config()
    if config is None:  # a scikit-learn without it: the public context manager (~2.5 µs a call)
        from sklearn import config_context

        def predict_validated(inputs: dict, context) -> dict:
            with config_context(assume_finite=True):
                return predict(inputs, context)

        return predict_validated

    def predict_validated(inputs: dict, context) -> dict:
        settings = config()  # this thread's own settings: flipped for this call only, as config_context does
        before = settings["assume_finite"]
        settings["assume_finite"] = True
        try:
            return predict(inputs, context)
        finally:
            settings["assume_finite"] = before

    return predict_validated


def _sklearn_thread_config():
    """scikit-learn's accessor of the calling thread's settings dict, which config_context changes
    and restores through get_config/set_config at ~2.5 µs a request (4-5 µs of the runtime's own
    time once predict has run through the caches). It is private, so it is taken only when it is
    there and behaves as expected; otherwise None (the caller keeps config_context)."""
    try:
        from sklearn import get_config
        from sklearn._config import _get_threadlocal_config
    except ImportError:
        return None
    settings = _get_threadlocal_config()
    if not isinstance(settings, dict) or "assume_finite" not in settings:
        return None
    before = settings["assume_finite"]
    settings["assume_finite"] = not before
    follows = get_config()["assume_finite"] is (not before)  # the dict is the live settings, not a copy
    settings["assume_finite"] = before
    return _get_threadlocal_config if follows else None


def _one_input_error(inputs: dict):
    raise ValueError(f"a scikit-learn model takes one input tensor, got {', '.join(inputs) or 'none'}")


def usable_providers(requested: tuple[str, ...], available: list[str]) -> list[str]:
    """The requested execution providers this onnxruntime build has, in the requested order; the
    CPU provider always stays as the last resort."""
    usable = [name for name in requested if name in available]
    return usable if CPU in usable else [*usable, CPU]


def _load_onnx(model: ModelConfig, inputs_are_model_inputs: bool, outputs_are_model_outputs: bool):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings from graph optimisation are not the operator's concern
    providers = usable_providers(model.execution_providers, onnxruntime.get_available_providers())
    session = onnxruntime.InferenceSession(str(model.path), options, providers=providers)
    # onnxruntime drops a provider it cannot start (no GPU, no CUDA libraries) without raising:
    # what the session reports is what the model really runs on.
    active = session.get_providers()[0]
    wanted = model.execution_providers[0] if model.execution_providers else CPU
    if active != wanted:
        logger.warning("%s is not available here (onnxruntime %s offers %s); the model runs on %s",
                       wanted, onnxruntime.__version__, ", ".join(onnxruntime.get_available_providers()), active)
    else:
        logger.info("the model runs on %s", active)
    model_inputs = {node.name: _ONNX_TYPES.get(node.type) for node in session.get_inputs()}
    model_outputs = {node.name: _ONNX_TYPES.get(node.type) for node in session.get_outputs()}
    if inputs_are_model_inputs:
        _check_names("input", model.inputs, model_inputs, exact=True)
    if outputs_are_model_outputs:
        _check_names("output", model.outputs, model_outputs, exact=False)
        output_names = [spec.name for spec in model.outputs]
    else:
        output_names = list(model_outputs)

    def predict(inputs: dict, context) -> dict:
        return dict(zip(output_names, session.run(output_names, inputs)))

    predict.execution_provider = active
    return predict


def _check_names(role: str, declared, found: dict[str, str | None], exact: bool) -> None:
    declared_names = {spec.name for spec in declared}
    unknown = declared_names - set(found)
    missing = set(found) - declared_names if exact else set()
    if unknown or missing:
        raise ConfigError(f"the ONNX model's {role}s are {', '.join(sorted(found))}; serving.json declares "
                          f"{', '.join(sorted(declared_names)) or 'none'}")
    for spec in declared:
        if found[spec.name] is not None and found[spec.name] != spec.datatype:
            raise ConfigError(f"ONNX {role} '{spec.name}' is {found[spec.name]}, serving.json declares "
                              f"{spec.datatype}")


def _load_python(model: ModelConfig, inputs_are_model_inputs: bool, outputs_are_model_outputs: bool):
    target = resolve(model.handler, "model.handler")
    instance = target()  # a class or a factory: either way, calling it gives the model object
    if hasattr(instance, "load"):
        instance.load(str(model.path))
    if not callable(getattr(instance, "predict", None)):
        raise ConfigError(f"model.handler {model.handler} gave an object without predict(inputs)")
    predict = instance.predict
    if takes_context(predict):
        return predict
    return lambda inputs, context: predict(inputs)


_LOADERS = {"sklearn": _load_sklearn, "onnx": _load_onnx, "python": _load_python}
