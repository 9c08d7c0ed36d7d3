"""Bundle `app/` folders for the runtime tests, built the way mlgen lays them out: serving.json, the
model under model/, handler modules next to serving.json. Models are trained here, small and fast."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

IRIS_INPUTS = [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
IRIS_OUTPUTS = [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]


def iris_estimator():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(features, labels), features.astype("float32")


NO_AUTH = {"auth": "none", "header": "authorization", "api_keys": [], "jwt": None, "stage_token": None}


def write_serving_json(app_dir: Path, model: dict, *, name: str = "iris", pipeline: dict | None = None,
                       runtime: dict | None = None, observability: dict | None = None,
                       security: dict | None = None) -> Path:
    document = {
        "format_version": 1, "name": name, "version": "1.0.0",
        "model": {"execution_providers": ["CPUExecutionProvider"], "version": "1.0.0", "uri": None,
                  "max_bytes": 2**31, "cache_dir": "../model-cache", **model},
        "pipeline": pipeline or {"preprocess": None, "postprocess": None, "topology": "collocated",
                                 "stage_urls": {}},
        "runtime": {"port": 8080, "workers": 1, "timeout_s": 30, "max_body_bytes": 1_000_000, "grpc_port": None,
                    "batching": None, "admin_port": None, **(runtime or {})},
        "observability": {"metrics": True, "log_format": "json", "log_level": "info", **(observability or {})},
        "security": {**NO_AUTH, **(security or {})},
    }
    path = app_dir / "serving.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def set_runtime(config: Path, runtime: dict) -> None:
    """Change runtime fields of a written serving.json (as a spec's runtime section would)."""
    document = json.loads(config.read_text())
    document["runtime"].update(runtime)
    config.write_text(json.dumps(document, indent=2))


def sklearn_app(app_dir: Path, estimator, **options) -> Path:
    import joblib

    (app_dir / "model").mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, app_dir / "model" / "model.joblib")
    model = {"format": "sklearn", "path": "model/model.joblib", "sha256": options.pop("sha256", None),
             "handler": None, "inputs": options.pop("inputs", IRIS_INPUTS),
             "outputs": options.pop("outputs", IRIS_OUTPUTS)}
    return write_serving_json(app_dir, model, **options)


def onnx_app(app_dir: Path, estimator) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(estimator, initial_types=[("float_input", FloatTensorType([None, 4]))],
                                 options={id(estimator): {"zipmap": False}}, target_opset=17)
    (app_dir / "model").mkdir(parents=True, exist_ok=True)
    (app_dir / "model" / "model.onnx").write_bytes(onnx_model.SerializeToString())
    model = {"format": "onnx", "path": "model/model.onnx", "sha256": None, "handler": None,
             "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                         {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]}
    return write_serving_json(app_dir, model)


def python_app(app_dir: Path, handler_source: str, *, inputs=None, outputs=None, **options) -> Path:
    """A `python` format model: handler.py holds the user's class, model/ a file it reads in load()."""
    (app_dir / "model").mkdir(parents=True, exist_ok=True)
    (app_dir / "model" / "weights.txt").write_text("2.0\n")
    (app_dir / "handler.py").write_text(textwrap.dedent(handler_source))
    model = {"format": "python", "path": "model/weights.txt", "sha256": None,
             "handler": options.pop("handler", "handler:Model"),
             "inputs": inputs or [{"name": "x", "datatype": "FP64", "shape": [-1]}],
             "outputs": outputs or [{"name": "y", "datatype": "FP64", "shape": [-1]}]}
    return write_serving_json(app_dir, model, **options)


# Pre/postprocess around the iris model: the public interface takes named measurements (FP64, one
# row per flower) and answers species names (BYTES); the model in the middle sees its own tensors.
PIPELINE_HANDLERS = '''
import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def preprocess(inputs, context):
    rows = np.stack([inputs["sepal"][:, 0], inputs["sepal"][:, 1], inputs["petal"][:, 0], inputs["petal"][:, 1]], axis=1)
    if context.parameters.get("fail") == "preprocess":
        raise RuntimeError("preprocess was asked to fail")
    return {"input-0": rows.astype(np.float32)}


def postprocess(outputs):
    return {"species": [SPECIES[i] for i in outputs["predict"]],
            "confidence": outputs["predict_proba"].max(axis=1)}
'''
PIPELINE_INPUTS = [{"name": "sepal", "datatype": "FP64", "shape": [-1, 2]},
                   {"name": "petal", "datatype": "FP64", "shape": [-1, 2]}]
PIPELINE_OUTPUTS = [{"name": "species", "datatype": "BYTES", "shape": [-1]},
                    {"name": "confidence", "datatype": "FP64", "shape": [-1]}]


def pipeline_app(app_dir: Path, estimator, stage_urls: dict | None = None) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "iris_steps.py").write_text(PIPELINE_HANDLERS)
    pipeline = {"preprocess": "iris_steps:preprocess", "postprocess": "iris_steps:postprocess",
                "topology": "microservices" if stage_urls else "collocated", "stage_urls": stage_urls or {}}
    return sklearn_app(app_dir, estimator, inputs=PIPELINE_INPUTS, outputs=PIPELINE_OUTPUTS, pipeline=pipeline)
