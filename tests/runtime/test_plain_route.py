"""The common request's route (Service._plain: V2 JSON tensors exactly as declared, answered in one
pass) gives the very answer, status and metrics the general route (begin, settle, finish) gives,
for every request a client may send; anything it does not take is answered by the general route."""

from __future__ import annotations

import json

import numpy as np
import pytest

from . import apps

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from mlgen_runtime import load_service, protocol, tensors  # noqa: E402
from mlgen_runtime.config import TensorSpec  # noqa: E402

INFER = "/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def services(tmp_path_factory, iris):
    """The same iris classifier twice: one service answers with the plain route, one without it."""
    folder = apps.sklearn_app(tmp_path_factory.mktemp("plain-route"), iris[0])
    plain, general = load_service(folder), load_service(folder)
    assert plain._plain_paths, "the classifier's service takes the plain route"
    general._plain_paths = frozenset()
    return plain, general


def both(services, body, headers=None, path=INFER):
    """(status, headers, body) from each service; the request id is the caller's, so both match."""
    headers = {"x-request-id": "req-1", **(headers or {})}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return [(r.status, r.headers, r.body) for r in (s.answer("POST", path, headers, raw) for s in services)]


def tensor(data, shape=None, **fields):
    rows = data if isinstance(data, list) and data and isinstance(data[0], list) else None
    return {"name": "input-0", "datatype": "FP32", "shape": shape or [len(rows) if rows else 1, 4], "data": data, **fields}


@pytest.mark.parametrize("body", [
    {"inputs": [tensor([ROW])]},
    {"inputs": [tensor([ROW] * 64)]},
    {"inputs": [tensor(ROW * 3, shape=[3, 4])]},                       # flat data
    {"id": "mine", "inputs": [tensor([ROW])]},
    {"id": "", "inputs": [tensor([ROW])]},
    {"id": 7, "inputs": [tensor([ROW])]},
    {"inputs": [tensor([ROW])], "parameters": {"binary_data_output": True}},
    {"inputs": [tensor([ROW])], "outputs": [{"name": "predict_proba"}]},
    {"inputs": [tensor([ROW], parameters={})]},
    {"inputs": [tensor([ROW])], "extra": 1},
    {"inputs": [tensor([[5.1, "3.5", 1.4, 0.2]])]},                   # a string among numbers
    {"inputs": [tensor([[5.1, float("nan"), 1.4, 0.2]])]},
    {"inputs": [tensor([[1e39, 3.5, 1.4, 0.2]])]},                    # past FP32
    {"inputs": [tensor([[True, 3.5, 1.4, 0.2]])]},
    {"inputs": [tensor([ROW[:3]])]},
    {"inputs": [tensor([ROW], shape=[1, 5])]},
    {"inputs": [tensor([ROW], datatype="FP64")]},
    {"inputs": [tensor([ROW], name="other")]},
    {"inputs": [tensor([ROW]), tensor([ROW])]},
    {"inputs": []},
    {"inputs": {"input-0": [ROW]}},
    [ROW],
    b"{not json",
    b"",
])
def test_each_request_gets_the_same_answer_either_way(services, body):
    plain, general = both(services, body)
    assert plain == general


@pytest.mark.parametrize("body", [{"inputs": [tensor([ROW])]}, {"id": "x", "inputs": [tensor([ROW] * 64)]}])
def test_the_common_request_takes_the_plain_route(services, body):
    exchange = services[0]._plain("POST", INFER, {}, json.dumps(body).encode())
    assert exchange is not None and exchange.response.status == 200


def test_binary_data_and_a_refused_key_take_the_general_route(services):
    header = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    plain, general = both(services, header + np.float32(ROW).tobytes(),
                          {protocol.BINARY_HEADER: str(len(header))})
    assert plain == general and plain[0] == 200


def test_both_routes_count_the_same_requests(services):
    for service in services:
        service.metrics._requests.clear()
    for body in ({"inputs": [tensor([ROW])]}, {"inputs": [tensor([ROW[:3]])]}, {"inputs": [tensor([ROW] * 2)]}):
        both(services, body)
    plain, general = services
    assert plain.metrics._requests == general.metrics._requests == {("v2_infer", 200): 2, ("v2_infer", 400): 1}


scalars = st.one_of(st.floats(), st.integers(min_value=-2**64, max_value=2**64), st.booleans(), st.none(),
                    st.sampled_from(["1.5", "a"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(scalars, min_size=1, max_size=12), rows=st.integers(min_value=0, max_value=3),
       nested=st.booleans(), datatype=st.sampled_from(["FP32", "FP32", "FP64", "INT64"]),
       with_id=st.sampled_from([None, "id-1", 3]))
def test_generated_requests_get_the_same_answer_either_way(services, values, rows, nested, datatype, with_id):
    flat = (values * 4 * max(rows, 1))[:4 * rows]
    data = [flat[i * 4:(i + 1) * 4] for i in range(rows)] if nested else flat
    body = {"inputs": [{"name": "input-0", "datatype": datatype, "shape": [rows, 4], "data": data}]}
    if with_id is not None:
        body["id"] = with_id
    try:
        encoded = json.dumps(body, allow_nan=True).encode()
    except ValueError:
        return
    plain, general = both(services, encoded)
    assert plain == general


SPECS = (TensorSpec("label", "INT64", (-1,)), TensorSpec("scores", "FP32", (-1, 3)))


@pytest.mark.parametrize("produced", [
    {"label": np.array([0, 2], dtype=np.int64), "scores": np.zeros((2, 3), dtype=np.float32)},
    {"label": np.array([0, 2], dtype=">i8"), "scores": np.zeros((2, 3), dtype=np.float32)},       # byte order
    {"label": np.arange(6, dtype=np.int64)[::3], "scores": np.ones((3, 2), np.float32).T},     # strided views
    {"label": np.array([0, 2], dtype=np.int32), "scores": np.zeros((2, 3), dtype=np.float32)},  # another dtype
    {"label": [0, 2], "scores": np.zeros((2, 3), dtype=np.float32)},                           # a list
    {"label": np.array([0, 2], dtype=np.int64), "scores": np.zeros((2, 4), dtype=np.float32)},  # wrong shape
    {"label": np.array([0, 2], dtype=np.int64)},                                                # one missing
])
def test_the_plain_encoding_writes_what_the_general_one_does_or_leaves_it_to_it(produced):
    plan = protocol.plain_outputs(SPECS)
    body = protocol.encode_plain_v2("m", "1", "id", produced, plan)
    outputs = []
    try:
        for spec in SPECS:
            datatype, shape, values = tensors.to_wire(spec.name, produced[spec.name], spec.datatype)
            if not tensors.shape_matches(spec.shape, shape):
                raise ValueError("shape")
            outputs.append((spec.name, datatype, shape, values))
    except (KeyError, ValueError, TypeError):
        assert body is None  # the general route words the error
        return
    general, _ = protocol.encode_v2("m", "1", "id", outputs, frozenset())
    if body is not None:
        assert body == general
    else:  # taken by the general route only: a conversion the plain one does not make
        assert any(type(value) is not np.ndarray or value.dtype != tensors.numpy_dtype(spec.datatype)
                   for spec, value in ((spec, produced[spec.name]) for spec in SPECS))


def test_outputs_orjson_cannot_write_keep_the_general_encoding():
    assert protocol.plain_outputs((TensorSpec("half", "FP16", (-1,)),)) is None
    assert protocol.plain_outputs((TensorSpec("text", "BYTES", (-1,)),)) is None
    assert protocol.plain_outputs(None) is None
