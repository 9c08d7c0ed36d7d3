"""Every malformed, hostile or oversized request gets a clean JSON 4xx saying what was expected; never
a traceback, never a 500."""

from __future__ import annotations

import pytest

pytest.importorskip("requests")
import requests  # noqa: E402

GOOD_TENSOR = {"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}


def infer(server, body, **kwargs):
    return requests.post(f"{server.url}/v2/models/iris/infer", data=body, timeout=10, **kwargs)


def tensor(**changes) -> dict:
    return {"inputs": [{**GOOD_TENSOR, **changes}]}


@pytest.mark.parametrize("body, expected", [
    (b"{", "not valid JSON"),
    (b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [NaN, 1, 2, 3]}]}',
     "not valid JSON"),
    (b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [Infinity, 1, 2, 3]}]}',
     "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, ("JSON object", "depth limit exceeded")),  # orjson 3.8 parses it; newer ones refuse
    (b"[" * 400_000 + b"]" * 400_000, "nested too deeply"),  # crashes orjson 3.8 if it gets there
    (b'{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": '
     + b"[" * 20_000 + b"]" * 20_000 + b"}]}", "nested too deeply"),
    (b"[]", "JSON object"),
    (b'{"inputs": []}', "non-empty 'inputs'"),
], ids=["truncated", "nan", "infinity", "deep-nesting", "very-deep-nesting", "deep-data", "not-an-object",
    "no-inputs"])
def test_bodies_that_are_not_inference_requests_are_refused(sklearn_server, body, expected):
    answer = infer(sklearn_server, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert any(text in error for text in ((expected,) if isinstance(expected, str) else expected)), error


@pytest.mark.parametrize("changes, expected", [
    ({"name": "features"}, "unknown input 'features'; expected 'input-0' FP32 [-1, 4]"),
    ({"datatype": "FP64"}, "datatype FP64, expected FP32"),
    ({"datatype": "FLOAT"}, "datatype 'FLOAT' is not one of"),
    ({"shape": [1, 3], "data": [1, 2, 3]}, "shape [1, 3], expected [-1, 4]"),
    ({"shape": [4]}, "shape [4], expected [-1, 4]"),
    ({"shape": [2, 4]}, "has 4 elements, shape [2, 4] needs 8"),
    ({"shape": [1, -4]}, "non-negative integers"),
    ({"data": ["a", "b", "c", "d"]}, "holds strings, expected FP32"),
    ({"data": [1, None, 2, 3]}, "expected FP32"),
    ({"data": [[1, 2], [3]]}, "not a regular array"),
    ({"data": [1e300, 1, 2, 3]}, "do not fit FP32"),
    ({"data": None}, "has 1 elements, shape [1, 4] needs 4"),
], ids=["name", "datatype", "bad-datatype", "shape-rank-2", "shape-rank-1", "element-count", "negative-dim",
        "strings", "null", "ragged", "overflow", "null-data"])
def test_tensors_that_do_not_match_the_declared_input_are_refused(sklearn_server, changes, expected):
    answer = requests.post(f"{sklearn_server.url}/v2/models/iris/infer", json=tensor(**changes), timeout=10)
    assert answer.status_code == 400
    assert expected in answer.json()["error"]


def test_a_huge_array_that_does_not_match_the_shape_is_refused_cleanly(sklearn_server):
    body = b'{"inputs":[{"name":"input-0","datatype":"FP32","shape":[1,4],"data":[' + b"1," * 200_000 + b"1]}]}"
    answer = infer(sklearn_server, body)
    assert answer.status_code == 400 and "elements" in answer.json()["error"]


def test_binary_tensor_data_that_does_not_add_up_is_refused(sklearn_server):
    header = b'{"inputs":[{"name":"input-0","datatype":"FP32","shape":[1,4],"parameters":{"binary_data_size":16}}]}'
    short = infer(sklearn_server, header + b"\0" * 8,
                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]
    extra = infer(sklearn_server, header + b"\0" * 20,
                  headers={"Inference-Header-Content-Length": str(len(header))})
    assert extra.status_code == 400 and "belong to no" in extra.json()["error"]
    beyond = infer(sklearn_server, header, headers={"Inference-Header-Content-Length": "99999"})
    assert beyond.status_code == 400


def test_unknown_outputs_models_versions_routes_and_methods(sklearn_server):
    url = sklearn_server.url
    unknown_output = requests.post(f"{url}/v2/models/iris/infer",
                                   json={**tensor(), "outputs": [{"name": "label"}]}, timeout=10)
    assert unknown_output.status_code == 400 and "unknown output(s) label" in unknown_output.json()["error"]
    assert requests.post(f"{url}/v2/models/mnist/infer", json=tensor(), timeout=10).status_code == 404
    assert requests.get(f"{url}/v2/models/iris/versions/9", timeout=10).status_code == 404
    assert requests.get(f"{url}/v2/nothing", timeout=10).json()["error"] == "no route /v2/nothing"
    assert requests.get(f"{url}/v1/models/mnist", timeout=10).status_code == 404
    assert requests.get(f"{url}/v2/models/iris/infer", timeout=10).status_code == 405
    assert requests.post(f"{url}/v2/health/live", timeout=10).status_code == 405


def test_v1_instances_that_do_not_fit_are_refused(sklearn_server):
    url = f"{sklearn_server.url}/v1/models/iris:predict"
    assert requests.post(url, json={"instances": [[1, 2, 3]]}, timeout=10).status_code == 400
    assert requests.post(url, json={"rows": [[1, 2, 3, 4]]}, timeout=10).status_code == 400
    assert requests.post(url, json={"instances": [["a", "b", "c", "d"]]}, timeout=10).status_code == 400


def test_a_body_over_max_body_bytes_is_refused_by_its_content_length(sklearn_server):
    answer = infer(sklearn_server, b" " * 1_000_001)
    assert answer.status_code == 413
    assert "max_body_bytes 1000000" in answer.json()["error"]


def test_a_chunked_body_is_refused_while_it_streams_past_the_limit(sklearn_server):
    sent = []

    def chunks():  # no Content-Length: the server can only count what arrives
        for _ in range(40):
            sent.append(1)
            yield b" " * 50_000

    try:
        answer = infer(sklearn_server, chunks())
    except requests.ConnectionError:
        # The server may close the connection once it has answered 413, before the upload ends.
        return
    assert answer.status_code == 413
