"""JSON `data` into tensors: the direct routes for plain FP32/FP64/INT64 numbers (a Python loop for a
few elements, the array module for more) give exactly the array, or the refusal, that numpy's general
route gives, whatever a client sends."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers import RUNTIME_SRC

sys.path.insert(0, str(RUNTIME_SRC))
from mlgen_runtime import tensors  # noqa: E402
from mlgen_runtime.errors import RequestError  # noqa: E402

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROW = [5.1, 3.5, 1.4, 0.2]


ROUTES = ("few", "array", "general")


def outcome(datatype: str, shape: list[int], data, *, route: str):
    """What from_json makes of `data`: ("array", dtype, shape, bytes) or ("refused", status, message).
    `route` forces one route whatever the element count: "few" the Python loop, "array" the array
    module's, "general" numpy's discovery."""
    saved = tensors._PLAIN_NUMBERS, tensors._DIRECT_FROM
    if route == "general":
        tensors._PLAIN_NUMBERS = {}
    else:
        tensors._DIRECT_FROM = 1 if route == "array" else 10**9
    try:
        array = tensors.from_json("x", datatype, shape, data)
    except RequestError as exc:
        return ("refused", exc.status, exc.message)
    finally:
        tensors._PLAIN_NUMBERS, tensors._DIRECT_FROM = saved
    return ("array", array.dtype.str, array.shape, array.tobytes())  # bytes: -0.0 and 0.0 differ


def same_either_way(datatype: str, shape: list[int], data) -> tuple:
    general = outcome(datatype, shape, data, route="general")
    for route in ("few", "array"):
        assert outcome(datatype, shape, data, route=route) == general, (route, datatype, shape, data)
    return general


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT64"])
@pytest.mark.parametrize("rows", [1, 64])
def test_plain_numbers_take_the_direct_route_flat_or_nested(datatype, rows):
    row = [5, 3, 1, 0] if datatype == "INT64" else ROW
    for data in ([row] * rows, row * rows):
        assert tensors._from_plain_numbers(datatype, [rows, 4], rows * 4, data) is not None
        assert tensors._from_few_numbers(datatype, [rows, 4], rows * 4, data) is not None
        kind, dtype, shape, _ = same_either_way(datatype, [rows, 4], data)
        assert (kind, shape) == ("array", (rows, 4))
        assert dtype == np.dtype(tensors.DATATYPES[datatype]).str


def test_deeper_nesting_and_rank_one_take_the_direct_route():
    cube = [[[1.5, 2.5], [3.5, 4.5]], [[5.5, 6.5], [7.5, 8.5]]]
    assert tensors._from_plain_numbers("FP32", [2, 2, 2], 8, cube) is not None
    assert same_either_way("FP32", [2, 2, 2], cube)[0] == "array"
    assert same_either_way("FP64", [3], [1.0, 2, -0.0])[0] == "array"


@pytest.mark.parametrize("datatype, shape, data", [
    ("FP32", [2, 4], [ROW, ROW[:3]]),                      # a short row: wrong length
    ("FP32", [2, 4], [ROW[:3], ROW + [9.0]]),              # ragged rows with the right total
    ("FP32", [2, 4], ROW * 3),                             # flat, too many
    ("FP32", [2, 4], [ROW]),                               # nested, too few rows
    ("FP32", [2, 2], [ROW[:2], 7.0]),                      # a row that is a number
    ("FP32", [1, 4], [["5.1", 3.5, 1.4, 0.2]]),            # a string among numbers
    ("FP32", [1, 4], [[5.1, None, 1.4, 0.2]]),             # null
    ("FP32", [1, 4], [[True, False, True, True]]),         # booleans only: refused
    ("FP32", [1, 4], [[True, 1.5, 2, 3]]),                 # a boolean first, then numbers: accepted
    ("FP32", [1, 4], [[1.5, True, 2, 3]]),                 # a boolean among numbers: accepted
    ("INT64", [1, 4], [[5, 3, 1, 0.5]]),                   # a float in INT64
    ("INT64", [1, 4], [[5, 3, 1, 1.0]]),                   # 1.0 is a float too
    ("INT64", [1, 2], [2**63, 1]),                         # past INT64
    ("INT64", [1, 2], [-2**63, 2**63 - 1]),                # the ends of INT64
    ("INT64", [1, 2], [1, True]),
    ("FP32", [1, 2], [1e39, 1.0]),                         # does not fit FP32 (non-finite once cast)
    ("FP64", [1, 2], [1e300, 1.0]),                        # fits FP64
    ("FP32", [1, 2], [2**53 + 1, 3]),                      # integers a double cannot hold
    ("FP64", [1, 2], [2**64, 1.5]),                        # an integer past int64 among floats
    ("FP32", [1, 2], [10**400, 1.0]),                      # past any double
    ("FP32", [1, 2], [16777217, 1]),                       # rounds in FP32, the same way on both routes
    ("FP32", [2], [[1.0], [2.0]]),                         # nested deeper than the shape
    ("FP32", [2, 1], [1.0, 2.0]),                          # flat for a rank-2 shape
    ("FP32", [], [4.0]),                                   # rank 0
    ("FP32", [1, 4], []),                                  # empty data
    ("FP32", [1, 4], {"a": 1}),                            # not a list
    ("FP32", [1, 4], "5.1 3.5 1.4 0.2"),
    ("FP32", [2, 2], ["ab", "cd"]),                        # strings as long as the rows
    ("FP32", [2, 2], [{"a": 1, "b": 2}, {"c": 3, "d": 4}]),  # objects as long as the rows
])
def test_anything_else_gets_the_general_routes_answer(datatype, shape, data):
    same_either_way(datatype, shape, data)


def test_bytes_and_other_datatypes_keep_the_general_route():
    assert tensors.from_json("x", "BYTES", [2], ["a", "b"]) == ["a", "b"]
    assert tensors.from_json("x", "INT32", [1, 2], [[1, 2]]).dtype == np.int32
    with pytest.raises(RequestError, match="must be a list of strings"):
        tensors.from_json("x", "BYTES", [2], [1.0, 2.0])


scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-2**70, max_value=2**70), st.integers(min_value=-1000, max_value=1000),
    st.booleans(), st.none(), st.sampled_from(["1.5", "", "a"]))


@settings(max_examples=400, deadline=None)
@given(datatype=st.sampled_from(["FP32", "FP64", "INT64"]),
       rows=st.integers(min_value=1, max_value=4), width=st.integers(min_value=1, max_value=4),
       values=st.lists(scalars, min_size=1, max_size=20), nested=st.booleans(),
       shape_error=st.sampled_from([0, 0, 0, 1, -1]))
def test_both_routes_agree_on_generated_requests(datatype, rows, width, values, nested, shape_error):
    count = rows * width
    flat = (values * count)[:count]
    data = [flat[i * width:(i + 1) * width] for i in range(rows)] if nested else flat
    if shape_error and data:
        data = data[:-1] if shape_error < 0 else data + [data[0]]
    same_either_way(datatype, [rows, width], data)
