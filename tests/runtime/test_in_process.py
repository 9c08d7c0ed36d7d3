"""The in-process API serverless handlers call: load once, handle many, same answers as over HTTP."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest


from . import apps

pytest.importorskip("numpy")
import numpy as np  # noqa: E402
from mlgen_runtime import ConfigError, load_service  # noqa: E402

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def v2(name: str, rows, datatype: str = "FP32") -> bytes:
    return json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": [len(rows), len(rows[0])],
                                   "data": rows}]}).encode()


def outputs(response) -> dict:
    assert response.status == 200, response.body
    return {o["name"]: np.reshape(o["data"], o["shape"]) for o in json.loads(response.body)["outputs"]}


def test_a_loaded_sklearn_service_answers_like_the_model(sklearn_config, iris):
    estimator, _ = iris
    service = load_service(sklearn_config)
    response = service.handle("POST", "/v2/models/iris/infer", {"Content-Type": "application/json",
                                                                "X-Request-ID": "lambda-1"}, v2("input-0", ROWS))
    assert response.headers["x-request-id"] == "lambda-1"
    np.testing.assert_array_equal(outputs(response)["predict"], estimator.predict(np.float32(ROWS)))
    assert service.handle("GET", "/v2/health/ready", {}, b"").status == 200


def test_an_onnx_export_answers_like_the_sklearn_model(tmp_path, iris):
    estimator, _ = iris
    service = load_service(apps.onnx_app(tmp_path, estimator))
    got = outputs(service.handle("POST", "/v2/models/iris/infer", {}, v2("float_input", ROWS)))
    np.testing.assert_array_equal(got["label"], estimator.predict(np.float32(ROWS)))
    np.testing.assert_allclose(got["probabilities"], estimator.predict_proba(np.float32(ROWS)), atol=1e-5)


def test_onnx_names_that_do_not_match_the_spec_fail_at_load_time(tmp_path, iris):
    config = apps.onnx_app(tmp_path, iris[0])
    document = json.loads(config.read_text())
    document["model"]["inputs"][0]["name"] = "input-0"
    config.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="ONNX model's inputs are float_input; serving.json declares input-0"):
        load_service(config)


def test_the_model_file_is_verified_against_its_sha256(tmp_path, iris):
    config = apps.sklearn_app(tmp_path, iris[0], sha256="0" * 64)
    with pytest.raises(ConfigError, match="serving.json expects 0000"):
        load_service(config)
    digest = hashlib.sha256((tmp_path / "model" / "model.joblib").read_bytes()).hexdigest()
    assert load_service(apps.sklearn_app(tmp_path, iris[0], sha256=digest)).ready


def test_a_collocated_pipeline_speaks_the_public_interface(tmp_path, iris):
    service = load_service(apps.pipeline_app(tmp_path, iris[0]))
    body = json.dumps({"inputs": [{"name": "sepal", "datatype": "FP64", "shape": [2, 2], "data": [5.1, 3.5, 6.7, 3.0]},
                                  {"name": "petal", "datatype": "FP64", "shape": [2, 2], "data": [1.4, 0.2, 5.2, 2.3]}]})
    got = outputs(service.handle("POST", "/v2/models/iris/infer", {}, body.encode()))
    assert got["species"].tolist() == ["setosa", "virginica"]
    assert got["confidence"].shape == (2,)


CONTEXT_HANDLER = '''
class Model:
    def load(self, path):
        self.factor = float(open(path).read())

    def predict(self, inputs, context):
        if (inputs["x"] < 0).any():
            raise ValueError("negative x: " + context.request_id)
        return {"y": inputs["x"] * self.factor * context.parameters.get("scale", 1)}


def make_model():  # a factory works as well as a class
    return Model()


class Broken:
    def predict(self, inputs):
        return {"y": ["not", "numbers"]}
'''


@pytest.mark.parametrize("handler", ["handler:Model", "handler:make_model"])
def test_a_python_model_gets_the_request_context_when_it_asks_for_it(tmp_path, handler):
    service = load_service(apps.python_app(tmp_path, CONTEXT_HANDLER, handler=handler))
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1, 2]}], "parameters": {"scale": 10}}
    got = outputs(service.handle("POST", "/v2/models/iris/infer", {}, json.dumps(body).encode()))
    assert got["y"].tolist() == [20.0, 40.0]


def test_a_model_that_raises_is_a_500_that_names_the_request_but_not_the_exception(tmp_path, caplog):
    service = load_service(apps.python_app(tmp_path, CONTEXT_HANDLER))
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [-1]}]}
    with caplog.at_level(logging.ERROR, logger="mlgen_runtime"):
        response = service.handle("POST", "/v2/models/iris/infer", {"x-request-id": "r-7"}, json.dumps(body).encode())
    assert response.status == 500
    assert json.loads(response.body) == {
        "error": "the model could not answer this request (request id r-7); the service log has the details"}
    logged = [record for record in caplog.records if record.exc_info and record.request_id == "r-7"]
    assert logged and "negative x" in logged[0].getMessage()


def test_a_model_answer_that_does_not_fit_the_declared_output_is_a_500_the_log_explains(tmp_path, caplog):
    service = load_service(apps.python_app(tmp_path, CONTEXT_HANDLER, handler="handler:Broken"))
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}]}
    with caplog.at_level(logging.ERROR, logger="mlgen_runtime"):
        response = service.handle("POST", "/v2/models/iris/infer", {"x-request-id": "r-8"}, json.dumps(body).encode())
    assert response.status == 500
    assert "(request id r-8)" in json.loads(response.body)["error"]
    assert any("output 'y' does not fit the spec" in record.getMessage() for record in caplog.records)


def test_hostile_bodies_never_reach_a_500(sklearn_config):
    service = load_service(sklearn_config)
    bodies = [b"", b"null", b"0", b'"x"', b"\xff\xfe", b'{"inputs": {}}', b'{"inputs": [1]}',
              b'{"inputs": [{"name": 1}]}', b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": "x"}]}',
              b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": {"a": 1}}]}',
              b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}], "outputs": 3}',
              b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}], "parameters": []}',
              b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}, '
              b'{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}]}',
              b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [99999999999, 99999999999], "data": [1]}]}']
    for body in bodies:
        response = service.handle("POST", "/v2/models/iris/infer", {}, body)
        assert 400 <= response.status < 500, (body, response.body)
        assert "error" in json.loads(response.body)
    oversized = service.handle("POST", "/v2/models/iris/infer", {}, b" " * 1_000_001)
    assert oversized.status == 413


@pytest.mark.parametrize(("section", "field"), [("runtime", "port"), ("observability", "log_format"),
                                                ("pipeline", "topology")])
def test_a_serving_json_missing_a_field_mlgen_writes_names_it(tmp_path, iris, section, field):
    """The spec's schema holds the defaults and mlgen writes every field, so the runtime does not
    guess one: a hand-edited serving.json that lost a field says which."""
    config = apps.sklearn_app(tmp_path, iris[0])
    document = json.loads(config.read_text())
    del document[section][field]
    config.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=rf"missing field '?{section}\.{field}"):
        load_service(config)
