"""A failing handler, a failing model call and a failing stage answer a 5xx whose body says what
happened in fixed words and the request id: never the exception's text, a file path or an internal
URL. Those go to the log under the same request id, where the operator looks."""

from __future__ import annotations

import json
import logging
import re

import pytest

from helpers import free_port

from . import apps

pytest.importorskip("requests")
import requests  # noqa: E402

SECRET_DETAIL = "cannot open /srv/models/private/weights.bin via http://10.0.0.7:9000/bucket"
LEAKS = re.compile(r"(/\w)|(://)|(\b\w+Error\b)|(Traceback)|(10\.0\.0\.7)|(127\.0\.0\.1)|(weights)")
RAISING_HANDLER = f'''
class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        raise OSError({SECRET_DETAIL!r})


def preprocess(inputs):
    raise ValueError({SECRET_DETAIL!r})
'''
X = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}


def assert_clean(status: int, body: bytes, request_id: str) -> None:
    assert status >= 500
    message = json.loads(body)["error"]
    assert f"request id {request_id}" in message
    assert not LEAKS.search(message.replace(f"request id {request_id}", "")), message


@pytest.mark.parametrize("where", ["handler", "preprocess"])
def test_a_handler_that_raises_leaves_its_words_in_the_log_not_in_the_answer(tmp_path, caplog, where):
    from mlgen_runtime import load_service

    # A module name of its own: in-process services of other tests import their own `handler`.
    (tmp_path / "leaky_handler.py").write_text(RAISING_HANDLER)
    pipeline = {"preprocess": "leaky_handler:preprocess" if where == "preprocess" else None, "postprocess": None,
                "topology": "collocated", "stage_urls": {}}
    service = load_service(apps.python_app(tmp_path, "", handler="leaky_handler:Model", pipeline=pipeline))
    with caplog.at_level(logging.ERROR, logger="mlgen_runtime"):
        response = service.handle("POST", "/v2/models/iris/infer", {"x-request-id": "req-1"}, json.dumps(X).encode())
    assert_clean(response.status, response.body, "req-1")
    assert any(SECRET_DETAIL in record.getMessage() and record.request_id == "req-1" for record in caplog.records)


def test_a_model_call_that_raises_inside_the_loader_leaves_nothing_internal_in_the_answer(tmp_path, iris, caplog):
    from mlgen_runtime import load_service

    # Declared wider than the estimator takes: scikit-learn itself raises, naming the estimator.
    config = apps.sklearn_app(tmp_path, iris[0], inputs=[{"name": "input-0", "datatype": "FP32", "shape": [-1, -1]}],
                              outputs=[{"name": "predict", "datatype": "INT64", "shape": [-1]}])
    service = load_service(config)
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    with caplog.at_level(logging.ERROR, logger="mlgen_runtime"):
        response = service.handle("POST", "/v2/models/iris/infer", {"x-request-id": "req-2"}, json.dumps(body).encode())
    assert_clean(response.status, response.body, "req-2")
    assert any("LogisticRegression" in record.getMessage() for record in caplog.records)


def test_a_gateway_names_the_failing_stage_but_not_its_address_or_its_error(tmp_path, iris, start_server):
    ports = {stage: free_port() for stage in ("preprocess", "predict", "postprocess")}
    config = apps.pipeline_app(tmp_path, iris[0], {stage: f"http://127.0.0.1:{port}" for stage, port in ports.items()})
    stages = {stage: start_server(config, stage, port=port) for stage, port in ports.items()}
    gateway = start_server(config, "gateway")
    for server in (*stages.values(), gateway):
        server.wait()
    infer = f"{gateway.url}/v2/models/iris/infer"
    body = {"inputs": [{"name": "sepal", "datatype": "FP64", "shape": [1, 2], "data": [5.1, 3.5]},
                       {"name": "petal", "datatype": "FP64", "shape": [1, 2], "data": [1.4, 0.2]}]}

    failing = requests.post(infer, json={**body, "parameters": {"fail": "preprocess"}},
                            headers={"x-request-id": "req-3"}, timeout=30)
    assert failing.status_code == 502 and "stage 'preprocess'" in failing.json()["error"]
    assert_clean(failing.status_code, failing.content, "req-3")

    stages["predict"].stop()
    down = requests.post(infer, json=body, headers={"x-request-id": "req-4"}, timeout=30)
    assert down.status_code == 503 and "stage 'predict' is unreachable" in down.json()["error"]
    assert_clean(down.status_code, down.content, "req-4")
    log = gateway.log_text()
    assert f"127.0.0.1:{ports['predict']}" in log and "req-4" in log  # the operator still learns where
