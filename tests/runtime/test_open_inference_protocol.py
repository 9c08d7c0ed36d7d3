"""A real client (tritonclient[http], binary tensors by default) and plain requests against a served
scikit-learn iris model: every answer equals calling the model directly."""

from __future__ import annotations

import pytest

pytest.importorskip("numpy")
pytest.importorskip("requests")
pytest.importorskip("tritonclient")
import numpy as np  # noqa: E402
import requests  # noqa: E402
import tritonclient.http as triton  # noqa: E402


@pytest.fixture
def client(sklearn_server):
    with_client = triton.InferenceServerClient(sklearn_server.url.removeprefix("http://"))
    yield with_client
    with_client.close()


def test_a_triton_client_sees_a_live_ready_server_and_model_with_its_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1.0.0")
    metadata = client.get_model_metadata("iris")
    assert metadata["versions"] == ["1.0.0"]
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert [output["name"] for output in metadata["outputs"]] == ["predict", "predict_proba"]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
def test_triton_infer_returns_what_the_model_predicts(client, iris, binary):
    estimator, features = iris
    rows = features[::10]
    tensor = triton.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    requested = [triton.InferRequestedOutput("predict", binary_data=binary),
                 triton.InferRequestedOutput("predict_proba", binary_data=binary)]
    result = client.infer("iris", [tensor], outputs=requested, request_id="story-1")
    assert result.get_response()["id"] == "story-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(rows), rtol=1e-12)


def test_triton_infer_without_requested_outputs_gets_all_of_them_in_binary(client, iris):
    estimator, features = iris
    tensor = triton.InferInput("input-0", [3, 4], "FP32")
    tensor.set_data_from_numpy(features[:3])
    result = client.infer("iris", [tensor], model_version="1.0.0")
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(features[:3]))
    assert result.as_numpy("predict_proba").shape == (3, 3)


def test_asking_for_one_output_returns_only_that_one(sklearn_server, iris):
    estimator, features = iris
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": features[:2].tolist()}],
            "outputs": [{"name": "predict_proba"}]}
    answer = requests.post(f"{sklearn_server.url}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert output["name"] == "predict_proba" and output["shape"] == [2, 3]
    np.testing.assert_allclose(np.reshape(output["data"], (2, 3)), estimator.predict_proba(features[:2]))


def test_kserve_v1_predict_answers_one_prediction_per_instance(sklearn_server, iris):
    estimator, features = iris
    answer = requests.post(f"{sklearn_server.url}/v1/models/iris:predict",
                           json={"instances": features[:4].tolist()}, timeout=10)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [row["predict"] for row in predictions] == estimator.predict(features[:4]).tolist()
    assert requests.get(f"{sklearn_server.url}/v1/models/iris", timeout=10).json() == {"name": "iris", "ready": True}


def test_the_request_id_is_propagated_or_generated(sklearn_server, iris):
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    given = requests.post(f"{sklearn_server.url}/v2/models/iris/infer", json=body,
                          headers={"X-Request-ID": "abc-123"}, timeout=10)
    assert given.headers["x-request-id"] == "abc-123"
    generated = requests.post(f"{sklearn_server.url}/v2/models/iris/infer", json=body, timeout=10)
    assert len(generated.headers["x-request-id"]) == 32


def test_metrics_count_requests_by_route_stage_and_status(sklearn_server):
    requests.get(f"{sklearn_server.url}/v2/health/live", timeout=10)
    requests.post(f"{sklearn_server.url}/v2/models/iris/infer", data=b"{", timeout=10)
    text = requests.get(f"{sklearn_server.url}/metrics", timeout=10).text
    assert 'mlgen_requests_total{route="v2_live",stage="all",status="200"}' in text
    assert 'mlgen_requests_total{route="v2_infer",stage="all",status="400"}' in text
    assert 'mlgen_request_duration_seconds_bucket{route="v2_infer",stage="all",le="+Inf"}' in text
    assert 'mlgen_requests_in_flight{stage="all"} 1' in text  # the /metrics request itself
    assert 'mlgen_model_ready{stage="all"} 1' in text
    assert "mlgen_model_load_seconds" in text


def test_each_request_writes_one_json_access_line_with_its_id(sklearn_server):
    requests.get(f"{sklearn_server.url}/v2/health/live", headers={"X-Request-ID": "log-line-1"}, timeout=10)
    requests.get(f"{sklearn_server.url}/v2", timeout=10)  # the line above is written before this answers
    import json

    lines = [json.loads(line) for line in sklearn_server.log_text().splitlines() if "log-line-1" in line]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "log-line-1" and lines[0]["status"] == 200
