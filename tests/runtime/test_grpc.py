"""The Open Inference Protocol over gRPC (`runtime.grpc_port`), spoken by real clients: tritonclient's
gRPC client (raw tensor contents), its generated stub with typed contents, and grpcio's health
checking client. Every answer equals the HTTP answer of the same server, errors included."""

from __future__ import annotations

import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import EXAMPLES, free_port, run_mlgen

from . import apps
from .test_processes import GATED_HANDLER, WAIT_S, wait_for_file

pytest.importorskip("requests")
pytest.importorskip("tritonclient.grpc")
pytest.importorskip("grpc_health")
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
import tritonclient.grpc as triton  # noqa: E402
import tritonclient.http as triton_http  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402


class Served:
    """A server with gRPC on, and a client of each kind."""

    def __init__(self, server, grpc_port: int):
        self.server, self.grpc_port = server, grpc_port
        self.grpc = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        self.http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def close(self):
        self.grpc.close()
        self.http.close()
        self.channel.close()


def serve_with_grpc(config, start_server, **runtime):
    port = free_port()
    apps.set_runtime(config, {"grpc_port": port, **runtime})
    return Served(start_server(config).wait(), port)


@pytest.fixture
def iris_served(tmp_path, start_server, iris):
    served = serve_with_grpc(apps.sklearn_app(tmp_path, iris[0]), start_server, max_body_bytes=4096)
    yield served
    served.close()


def infer_both(served, name: str, rows: np.ndarray, datatype: str, outputs: list[str]):
    """The same request through tritonclient over gRPC (raw contents) and over HTTP (binary tensors)."""
    answers = []
    for module, client in ((triton, served.grpc), (triton_http, served.http)):
        tensor = module.InferInput(name, list(rows.shape), datatype)
        tensor.set_data_from_numpy(rows)
        answers.append(client.infer("iris", [tensor], outputs=[module.InferRequestedOutput(o) for o in outputs]))
    return [{output: answer.as_numpy(output) for output in outputs} for answer in answers]


def test_a_grpc_client_sees_the_server_model_and_metadata_http_sees(iris_served):
    client, http = iris_served.grpc, iris_served.http
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1.0.0")
    metadata = client.get_model_metadata("iris", as_json=True)
    over_http = http.get_model_metadata("iris")
    assert metadata["name"] == over_http["name"] and metadata["versions"] == over_http["versions"]
    assert metadata["platform"] == over_http["platform"] == "sklearn"
    for side in ("inputs", "outputs"):
        assert [{**tensor, "shape": [int(dim) for dim in tensor["shape"]]} for tensor in metadata[side]] == over_http[side]
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "mlgen" and "binary_tensor_data" in server["extensions"]


def test_iris_over_grpc_answers_what_http_answers(iris_served, iris):
    estimator, features = iris
    rows = features[::7]
    over_grpc, over_http = infer_both(iris_served, "input-0", rows, "FP32", ["predict", "predict_proba"])
    assert over_grpc["predict"].tolist() == over_http["predict"].tolist() == estimator.predict(rows).tolist()
    np.testing.assert_array_equal(over_grpc["predict_proba"], over_http["predict_proba"])


def test_typed_contents_get_typed_contents_back(iris_served, iris):
    estimator, features = iris
    rows = features[:3]
    request = service_pb2.ModelInferRequest(model_name="iris", id="typed-1")
    tensor = request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    answer = iris_served.stub.ModelInfer(request, timeout=10)
    assert answer.id == "typed-1" and not answer.raw_output_contents
    outputs = {output.name: output for output in answer.outputs}
    assert list(outputs["predict"].contents.int64_contents) == estimator.predict(rows).tolist()
    assert list(outputs["predict_proba"].shape) == [3, 3]
    np.testing.assert_allclose(outputs["predict_proba"].contents.fp64_contents, estimator.predict_proba(rows).ravel())


def grpc_error(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return raised.value.status(), raised.value.message()


def http_error(served, path: str, body: dict) -> str:
    answer = requests.post(served.server.url + path, json=body, timeout=10)
    return answer.json()["error"]


def test_refusals_carry_the_http_message_with_the_matching_grpc_status(iris_served):
    client = iris_served.grpc
    wrong = triton.InferInput("input-0", [1, 4], "FP64")
    wrong.set_data_from_numpy(np.zeros((1, 4)))
    status, message = grpc_error(lambda: client.infer("iris", [wrong]))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert message == http_error(iris_served, "/v2/models/iris/infer", {"inputs": [
        {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [0, 0, 0, 0]}]})
    assert message == "input 'input-0' has datatype FP64, expected FP32"

    rows = triton.InferInput("input-0", [1, 4], "FP32")
    rows.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    status, message = grpc_error(lambda: client.infer("tulip", [rows]))
    assert status == "StatusCode.NOT_FOUND" and message == "unknown model 'tulip'; this service serves 'iris'"
    status, message = grpc_error(lambda: client.infer("iris", [rows], model_version="9"))
    assert status == "StatusCode.NOT_FOUND" and message == "unknown version of model 'iris'; serving 1.0.0"

    big = triton.InferInput("input-0", [400, 4], "FP32")  # 6,400 bytes: over the 4,096-byte body limit
    big.set_data_from_numpy(np.zeros((400, 4), dtype=np.float32))
    status, message = grpc_error(lambda: client.infer("iris", [big]))
    assert status == "StatusCode.RESOURCE_EXHAUSTED" and "exceeds max_body_bytes 4096" in message

    metrics = requests.get(iris_served.server.url + "/metrics", timeout=5).text
    assert 'mlgen_requests_total{route="grpc_infer",stage="all",status="400"} 1' in metrics
    assert 'mlgen_requests_total{route="grpc_infer",stage="all",status="404"} 2' in metrics
    assert 'mlgen_requests_total{route="grpc_infer",stage="all",status="413"} 1' in metrics


def test_the_grpc_health_checking_protocol_says_serving(iris_served):
    health = health_pb2_grpc.HealthStub(iris_served.channel)
    for service in ("", "inference.GRPCInferenceService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_an_onnx_model_answers_the_same_over_grpc_and_http(tmp_path, start_server, iris):
    estimator, features = iris
    served = serve_with_grpc(apps.onnx_app(tmp_path, estimator), start_server)
    try:
        over_grpc, over_http = infer_both(served, "float_input", features[::9], "FP32", ["label", "probabilities"])
        assert over_grpc["label"].tolist() == over_http["label"].tolist() == estimator.predict(features[::9]).tolist()
        np.testing.assert_array_equal(over_grpc["probabilities"], over_http["probabilities"])
        assert served.http.get_model_metadata("iris")["parameters"] == {"execution_provider": "CPUExecutionProvider"}
    finally:
        served.close()


def test_text_outputs_of_a_pipeline_are_the_same_over_grpc_and_http(tmp_path, start_server, iris):
    served = serve_with_grpc(apps.pipeline_app(tmp_path, iris[0]), start_server)
    try:
        answers = []
        for module, client in ((triton, served.grpc), (triton_http, served.http)):
            sepal, petal = module.InferInput("sepal", [2, 2], "FP64"), module.InferInput("petal", [2, 2], "FP64")
            sepal.set_data_from_numpy(np.array([[5.1, 3.5], [6.7, 3.0]]))
            petal.set_data_from_numpy(np.array([[1.4, 0.2], [5.2, 2.3]]))
            answers.append(client.infer("iris", [sepal, petal]).as_numpy("species").tolist())
        assert answers[0] == answers[1] == [b"setosa", b"virginica"]
        typed = service_pb2.ModelInferRequest(model_name="iris")
        for name, values in (("sepal", [5.1, 3.5]), ("petal", [1.4, 0.2])):
            typed.inputs.add(name=name, datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend(values)
        answer = served.stub.ModelInfer(typed, timeout=10)
        assert list(answer.outputs[0].contents.bytes_contents) == [b"setosa"]
    finally:
        served.close()


def test_sigterm_lets_the_grpc_call_in_flight_finish_and_refuses_new_ones(tmp_path, start_server):
    (tmp_path / "release-load").touch()
    served = serve_with_grpc(apps.python_app(tmp_path, GATED_HANDLER), start_server)
    held = triton.InferInput("x", [1], "FP64")
    held.set_data_from_numpy(np.array([42.0]))  # 42: held by the gate until released
    answers = []
    caller = threading.Thread(target=lambda: answers.append(served.grpc.infer("iris", [held]).as_numpy("y")))
    caller.start()
    wait_for_file(tmp_path / "predict-started")
    served.server.process.terminate()
    fresh = grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}")
    health = health_pb2_grpc.HealthStub(fresh)
    deadline = time.monotonic() + WAIT_S
    while True:  # the server stops taking calls while the one in flight goes on
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            break
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        assert time.monotonic() < deadline, "the server kept serving after SIGTERM"
        time.sleep(0.05)
    (tmp_path / "release-predict").touch()
    caller.join(WAIT_S)
    assert answers and answers[0].tolist() == [84.0]
    assert served.server.process.wait(WAIT_S) in (0, -15)
    fresh.close()
    served.close()



def test_grpc_calls_arriving_together_share_a_batch_and_more_calls_than_cores_are_answered(tmp_path, start_server):
    from .test_batching import BATCHING, COUNTING_MODEL, OUTPUTS

    # Without batching the server has two threads per core; with it, enough for a batch to gather.
    served = serve_with_grpc(apps.python_app(tmp_path, COUNTING_MODEL, outputs=OUTPUTS), start_server, **BATCHING)
    try:
        start = threading.Barrier(12)

        def call(number: int):
            tensor = triton.InferInput("x", [1], "FP64")
            tensor.set_data_from_numpy(np.array([float(number)]))
            start.wait()
            answer = served.grpc.infer("iris", [tensor])
            return answer.as_numpy("y").tolist(), int(answer.as_numpy("call_rows")[0])

        with ThreadPoolExecutor(12) as clients:
            answers = list(clients.map(call, range(12)))
        assert [y for y, _ in answers] == [[2.0 * number] for number in range(12)]
        assert max(rows for _, rows in answers) > 4, f"the calls did not gather: {answers}"
        metrics = requests.get(served.server.url + "/metrics", timeout=5).text
        assert 'mlgen_requests_total{route="grpc_infer",stage="all",status="200"} 12' in metrics
        assert 'mlgen_batched_rows_total{stage="all"} 12' in metrics
    finally:
        served.close()


def test_a_serverless_render_refuses_grpc_and_names_the_targets_that_serve_it(tmp_path):
    spec_dir = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", spec_dir)
    spec = spec_dir / "spec.yaml"
    spec.write_text(spec.read_text().replace("runtime:\n", "runtime:\n  grpc_port: 9090\n", 1))
    done = run_mlgen("render", spec, "--target", "serverless", "-o", tmp_path / "out")
    line = next(number for number, row in enumerate(spec.read_text().splitlines(), 1) if "grpc_port" in row)
    assert done.returncode == 1
    assert re.search(rf"spec.yaml:{line}:\d+: runtime.grpc_port: .* serves HTTP only: a function cannot listen "
                     r"for gRPC \(the onprem, cloud and kubernetes targets serve runtime.grpc_port", done.stderr), done.stderr
    assert "Traceback" not in done.stderr
