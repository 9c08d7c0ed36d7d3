"""The runtime as bundles run it: the predict CLI, a server that is live before it is ready, SIGTERM
draining an in-flight request, and the pipeline split into stage services behind a gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import RUNTIME_SRC, free_port

from . import apps

pytest.importorskip("requests")
import requests  # noqa: E402

WAIT_S = 30
V2_BODY = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [6.7, 3.0, 5.2, 2.3]}]}
PUBLIC_BODY = {"inputs": [{"name": "sepal", "datatype": "FP64", "shape": [1, 2], "data": [6.7, 3.0]},
                          {"name": "petal", "datatype": "FP64", "shape": [1, 2], "data": [5.2, 2.3]}]}


def run_predict(config, body: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlgen_runtime", "predict", "--config", str(config)],
                          input=body, capture_output=True, cwd=config.parent, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(RUNTIME_SRC)})


def test_the_predict_command_answers_one_request_from_stdin(sklearn_config, iris):
    done = run_predict(sklearn_config, json.dumps(V2_BODY).encode())
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outputs"][0]["data"] == iris[0].predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    v1 = run_predict(sklearn_config, b'{"instances": [[6.7, 3.0, 5.2, 2.3]]}')
    assert json.loads(v1.stdout)["predictions"][0]["predict"] == answer["outputs"][0]["data"][0]
    refused = run_predict(sklearn_config, b'{"inputs": []}')
    assert refused.returncode == 1 and b"non-empty 'inputs'" in refused.stderr and refused.stdout == b""


def wait_for_file(path, deadline_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


GATED_HANDLER = '''
import os, time

GATE = os.path.dirname(os.path.abspath(__file__))


def wait_for(name):
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(GATE, name)) and time.monotonic() < deadline:
        time.sleep(0.01)


class Model:
    def load(self, path):
        wait_for("release-load")

    def predict(self, inputs):
        if inputs["x"][0] == 42:  # the request the test holds in flight
            open(os.path.join(GATE, "predict-started"), "w").close()
            wait_for("release-predict")
        return {"y": inputs["x"] * 2}
'''


def test_a_server_is_live_but_answers_503_until_the_model_has_loaded(tmp_path, start_server):
    server = start_server(apps.python_app(tmp_path, GATED_HANDLER)).wait("/v2/health/live")
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}]}
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
    assert requests.get(f"{server.url}/v2/models/iris/ready", timeout=5).status_code == 503
    loading = requests.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=5)
    assert loading.status_code == 503 and "loading" in loading.json()["error"]
    (tmp_path / "release-load").touch()
    server.wait("/v2/health/ready")
    assert requests.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=5).json()["outputs"][0]["data"] == [2.0]


def test_sigterm_lets_the_request_in_flight_finish(tmp_path, start_server):
    (tmp_path / "release-load").touch()
    server = start_server(apps.python_app(tmp_path, GATED_HANDLER)).wait()
    answers = []
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [42]}]}
    client = threading.Thread(target=lambda: answers.append(
        requests.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=WAIT_S)))
    client.start()
    wait_for_file(tmp_path / "predict-started")
    server.process.terminate()
    (tmp_path / "release-predict").touch()
    client.join(WAIT_S)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["outputs"][0]["data"] == [84.0]
    # uvicorn re-raises the SIGTERM it caught once drained: systemd and Kubernetes count that as clean.
    assert server.process.wait(WAIT_S) in (0, -signal.SIGTERM)


def test_health_checks_answer_while_a_slow_prediction_runs(tmp_path, start_server):
    # Quick predictions run on the event loop; one that has not finished must not hold the loop.
    (tmp_path / "release-load").touch()
    server = start_server(apps.python_app(tmp_path, GATED_HANDLER)).wait()
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [42]}]}  # 42: held by the gate
    answers = []
    client = threading.Thread(target=lambda: answers.append(
        requests.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=WAIT_S)))
    client.start()
    wait_for_file(tmp_path / "predict-started")
    assert requests.get(f"{server.url}/v2/health/live", timeout=WAIT_S).status_code == 200
    assert not answers  # the prediction is still waiting for its release
    (tmp_path / "release-predict").touch()
    client.join(WAIT_S)
    assert answers and answers[0].status_code == 200


def test_a_load_failure_stops_the_server_with_a_clear_message(tmp_path, iris, start_server):
    server = start_server(apps.sklearn_app(tmp_path, iris[0], sha256="f" * 64))
    assert server.process.wait(WAIT_S) == 1  # a failure exit, so Restart=on-failure restarts it
    assert "serving.json expects ffff" in server.log_text()


def test_split_stages_answer_through_the_gateway_and_it_recovers_when_a_stage_returns(tmp_path, iris, start_server):
    ports = {stage: free_port() for stage in ("preprocess", "predict", "postprocess")}
    config = apps.pipeline_app(tmp_path, iris[0], {stage: f"http://127.0.0.1:9/{stage}" for stage in ports})
    urls = {f"MLGEN_STAGE_URL_{stage.upper()}": f"http://127.0.0.1:{port}" for stage, port in ports.items()}
    stages = {stage: start_server(config, stage, port=port) for stage, port in ports.items()}
    gateway = start_server(config, "gateway", env=urls)
    for server in (*stages.values(), gateway):
        server.wait()
    infer = f"{gateway.url}/v2/models/iris/infer"

    answer = requests.post(infer, json=PUBLIC_BODY, headers={"X-Request-ID": "split-1"}, timeout=WAIT_S)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0] == {"name": "species", "datatype": "BYTES", "shape": [1], "data": ["virginica"]}
    assert all("split-1" in server.log_text() for server in stages.values())  # the id crossed every stage

    refused = requests.post(infer, json={"inputs": [{**PUBLIC_BODY["inputs"][0], "datatype": "FP32"}]}, timeout=WAIT_S)
    assert refused.status_code == 400 and "expected FP64" in refused.json()["error"]
    failing = requests.post(infer, json={**PUBLIC_BODY, "parameters": {"fail": "preprocess"}}, timeout=WAIT_S)
    assert failing.status_code == 502 and "stage 'preprocess'" in failing.json()["error"]

    stages["predict"].stop()
    down = requests.post(infer, json=PUBLIC_BODY, timeout=WAIT_S)
    assert down.status_code == 503 and "stage 'predict'" in down.json()["error"]
    assert requests.get(f"{gateway.url}/v2/health/ready", timeout=WAIT_S).status_code == 503

    start_server(config, "predict", port=ports["predict"]).wait()
    back = requests.post(infer, json=PUBLIC_BODY, timeout=WAIT_S)
    assert back.status_code == 200 and back.json()["outputs"][0]["data"] == ["virginica"]
    metrics = requests.get(f"{gateway.url}/metrics", timeout=WAIT_S).text
    assert 'mlgen_gateway_stage_calls_total{stage="predict",outcome="unavailable"} 1' in metrics
