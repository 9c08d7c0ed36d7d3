"""Adaptive batching (`runtime.batching`): requests that arrive together share one model call, and
each still gets its own answer, its own error and its own place in the metrics."""

from __future__ import annotations

import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import EXAMPLES, run_mlgen

from . import apps

pytest.importorskip("requests")
import requests  # noqa: E402

# A model whose call has a fixed cost, and which tells each row how many rows its call computed.
# A negative input makes it raise: the request carrying it must fail alone.
COUNTING_MODEL = '''
import time
import numpy as np


class Model:
    def predict(self, inputs):
        x = inputs["x"]
        if (x < 0).any():
            raise ValueError("negative measurements")
        time.sleep(0.05)
        return {"y": x * 2, "call_rows": np.full(len(x), len(x), dtype=np.int64)}
'''
OUTPUTS = [{"name": "y", "datatype": "FP64", "shape": [-1]}, {"name": "call_rows", "datatype": "INT64", "shape": [-1]}]
BATCHING = {"batching": {"max_batch_size": 16, "max_latency_ms": 300}}


def body(values: list[float]) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": values}]}


def send_together(url: str, bodies: list) -> list[requests.Response]:
    """POST every body at the same moment, one client thread each."""
    start = threading.Barrier(len(bodies))

    def send(document):
        start.wait()
        return requests.post(url, json=document, timeout=30)

    with ThreadPoolExecutor(len(bodies)) as clients:
        return list(clients.map(send, bodies))


@pytest.fixture
def batching_server(tmp_path, start_server):
    config = apps.python_app(tmp_path, COUNTING_MODEL, outputs=OUTPUTS, runtime=BATCHING)
    return start_server(config).wait()


def test_requests_arriving_together_share_one_model_call_and_each_gets_its_own_rows(batching_server):
    url = batching_server.url + "/v2/models/iris/infer"
    bodies = [body([float(i), float(i) + 0.5]) for i in range(6)]
    answers = send_together(url, bodies)
    assert [answer.status_code for answer in answers] == [200] * 6
    for i, answer in enumerate(answers):
        outputs = {output["name"]: output for output in answer.json()["outputs"]}
        assert outputs["y"]["data"] == [2.0 * i, 2.0 * i + 1.0] and outputs["y"]["shape"] == [2]
    calls = [answer.json()["outputs"][1]["data"][0] for answer in answers]
    assert max(calls) > 2, f"every request ran alone: {calls}"
    metrics = requests.get(batching_server.url + "/metrics", timeout=5).text
    assert 'mlgen_requests_total{route="v2_infer",stage="all",status="200"} 6' in metrics
    batches = int(re.search(r'mlgen_batches_total\{stage="all"\} (\d+)', metrics).group(1))
    assert 1 <= batches < 6
    assert 'mlgen_batched_rows_total{stage="all"} 12' in metrics


def test_a_bad_request_never_fails_its_batch_mates(batching_server):
    url = batching_server.url + "/v2/models/iris/infer"
    wrong_type = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    answers = send_together(url, [body([1.0]), body([-1.0]), wrong_type, body([3.0]), body([4.0])])
    assert [answer.status_code for answer in answers] == [200, 500, 400, 200, 200]
    assert answers[1].json()["error"].startswith("the model could not answer this request (request id ")
    assert answers[2].json()["error"] == "input 'x' has datatype FP32, expected FP64"
    assert [answer.json()["outputs"][0]["data"] for i, answer in enumerate(answers) if i in (0, 3, 4)] == \
        [[2.0], [6.0], [8.0]]
    log = batching_server.log_text()
    assert "running each on its own" in log


def test_batched_text_outputs_are_split_back_per_request(tmp_path, start_server, iris):
    config = apps.pipeline_app(tmp_path, iris[0])
    apps.set_runtime(config, BATCHING)
    server = start_server(config).wait()
    flowers = [([5.1, 3.5], [1.4, 0.2]), ([6.7, 3.0], [5.2, 2.3]), ([5.9, 3.0], [4.2, 1.5])]
    bodies = [{"inputs": [{"name": "sepal", "datatype": "FP64", "shape": [1, 2], "data": sepal},
                          {"name": "petal", "datatype": "FP64", "shape": [1, 2], "data": petal}]}
              for sepal, petal in flowers]
    answers = send_together(server.url + "/v2/models/iris/infer", bodies)
    species = [answer.json()["outputs"][0]["data"] for answer in answers]
    expected = iris[0].predict([sepal + petal for sepal, petal in flowers])
    assert species == [[["setosa", "versicolor", "virginica"][label]] for label in expected]


def test_batching_a_model_whose_first_dimension_is_not_the_batch_is_a_located_error(tmp_path):
    spec_dir = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", spec_dir)
    spec = spec_dir / "spec.yaml"
    text = spec.read_text().replace("shape: [-1, 4]", "shape: [1, 4]", 1)
    spec.write_text(text.replace("runtime:\n", "runtime:\n  batching:\n    max_batch_size: 8\n", 1))
    done = run_mlgen("validate", spec)
    assert done.returncode == 1
    # The error points at the batching settings the spec wrote.
    line = next(number for number, row in enumerate(spec.read_text().splitlines(), 1) if "max_batch_size" in row)
    assert re.search(rf"spec.yaml:{line}:\d+: runtime.batching: batching needs the batch as the first dimension "
                     r"of every tensor, but input '[^']+' has shape \[1, 4\]", done.stderr), done.stderr
    assert "Traceback" not in done.stderr
