"""A scikit-learn model skips its own NaN/infinity check only where the runtime has made it already:
on the request's own tensors, never on what a preprocess step returns."""

from __future__ import annotations

import json

import pytest

from . import apps

pytest.importorskip("sklearn")
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from mlgen_runtime import load_service, loaders  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

SEEN: list[bool] = []  # scikit-learn's assume_finite during each predict
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]

NAN_STEPS = '''
import numpy as np


def preprocess(inputs):
    rows = np.array(inputs["input-0"], dtype=np.float32)
    rows[0, 0] = np.nan  # what a careless preprocess step may hand the model
    return {"input-0": rows}
'''


class FiniteCheckRecorder(LogisticRegression):
    def predict(self, X):
        SEEN.append(sklearn.get_config()["assume_finite"])
        return super().predict(X)


@pytest.fixture(scope="module")
def estimator():
    features, labels = load_iris(return_X_y=True)
    return FiniteCheckRecorder(max_iter=500).fit(features, labels)


def infer(service, rows, binary: bytes | None = None):
    tensor = {"name": "input-0", "datatype": "FP32", "shape": [len(rows), 4]}
    if binary is None:
        return service.handle("POST", "/v2/models/iris/infer", {}, json.dumps({"inputs": [{**tensor, "data": rows}]}).encode())
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(binary)}}]}).encode()
    return service.handle("POST", "/v2/models/iris/infer", {"Inference-Header-Content-Length": str(len(header))},
                          header + binary)


@pytest.mark.parametrize("settings_accessor", ["thread's own settings", "config_context"])
def test_the_requests_own_tensors_reach_the_model_checked_once(tmp_path, estimator, monkeypatch, settings_accessor):
    if settings_accessor == "config_context":  # a scikit-learn without the private accessor
        monkeypatch.setattr(loaders, "_sklearn_thread_config", lambda: None)
    service = load_service(apps.sklearn_app(tmp_path, estimator, outputs=[apps.IRIS_OUTPUTS[0]]))
    expected = estimator.predict(np.float32(ROWS)).tolist()
    SEEN.clear()
    response = infer(service, ROWS)
    assert response.status == 200, response.body
    assert json.loads(response.body)["outputs"][0]["data"] == expected
    assert SEEN == [True]
    assert sklearn.get_config()["assume_finite"] is False  # the process's setting is left as it was
    # NaN is refused by the runtime's validation, before the model.
    nan_rows = np.array(ROWS, dtype="<f4")
    nan_rows[1, 2] = np.nan
    refused = infer(service, ROWS, binary=nan_rows.tobytes())
    assert refused.status == 400 and b"NaN" in refused.body
    assert SEEN == [True]


def test_a_preprocess_steps_output_keeps_scikit_learns_own_check(tmp_path, estimator):
    (tmp_path / "nan_steps.py").write_text(NAN_STEPS)
    pipeline = {"preprocess": "nan_steps:preprocess", "postprocess": None, "topology": "collocated", "stage_urls": {}}
    service = load_service(apps.sklearn_app(tmp_path, estimator, outputs=[apps.IRIS_OUTPUTS[0]], pipeline=pipeline))
    SEEN.clear()
    response = infer(service, ROWS)
    assert response.status == 500  # scikit-learn refused the NaN: the runtime did not hide it
    assert SEEN == [False]
