"""Tensors on the wire (Open Inference Protocol datatypes) and in handlers (numpy arrays, lists of str).

Decoding is strict because it is the service's input validation: a value that numpy would silently
truncate, wrap or stringify (1.5 into INT64, 300 into UINT8, "a" into FP32) is refused with a 400 that
says what was expected. Numeric tensors reach handlers as numpy arrays shaped as sent; BYTES tensors
as flat lists of str (row-major), because that is what text handlers want to iterate over.
"""

from __future__ import annotations

import struct
from array import array as typed_array
from functools import reduce
from math import prod
from operator import iadd

import numpy as np

from .errors import RequestError

# V2 datatype -> numpy dtype name (None: BYTES, carried as Python str).
DATATYPES: dict[str, str | None] = {
    "BOOL": "bool",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64",
    "BYTES": None,
}
_DTYPES = {name: np.dtype(dtype) for name, dtype in DATATYPES.items() if dtype}
_DATATYPE_OF_DTYPE = {dtype: name for name, dtype in _DTYPES.items()}
# numpy kinds a JSON array may arrive as, per target kind: ints may fill a float tensor, not the reverse.
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_LENGTH_PREFIX = struct.Struct("<I")
# Datatypes whose JSON data takes the direct route (_from_plain_numbers): the array module's type
# code that converts each Python number, and the dtype the tensor ends up with.
_PLAIN_NUMBERS = {"FP32": ("d", np.dtype("float32")), "FP64": ("d", np.dtype("float64")),
                  "INT64": ("q", np.dtype("int64"))}
# From this many elements the array module's conversion beats a Python loop over them (a loop over
# one 4-feature row: 1.0 µs; numpy's discovery 1.65, the array module's route 2.4; bench/runtime_json_tensors.py).
_DIRECT_FROM = 32
_INT64_RANGE = (-(2 ** 63), 2 ** 63)
# Below this magnitude an integer is exact as a double (see _from_plain_numbers).
_EXACT_IN_DOUBLE = 2.0 ** 53


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype of a numeric V2 datatype."""
    return _DTYPES[datatype]


def element_count(shape) -> int:
    return prod(shape)


def shape_matches(declared: tuple[int, ...], shape: list[int]) -> bool:
    if len(declared) != len(shape):
        return False
    for want, got in zip(declared, shape):
        if want != got and want != -1:
            return False
    return True


def from_json(name: str, datatype: str, shape: list[int], data) -> np.ndarray | list[str]:
    """A tensor from V2 JSON `data` (flat row-major, or nested as the shape)."""
    count = prod(shape)
    if datatype == "BYTES":
        values = _flatten_strings(name, data, len(shape))
        if len(values) != count:
            raise RequestError(400, f"input '{name}' has {len(values)} elements, shape {shape} needs {count}")
        return values
    if datatype in _PLAIN_NUMBERS:
        array = (_from_plain_numbers if count >= _DIRECT_FROM else _from_few_numbers)(datatype, shape, count, data)
        if array is not None:
            return array
    dtype = _DTYPES[datatype]
    kind = dtype.kind
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(400, f"input '{name}' data is not a regular array of {datatype} values") from None
    size = array.size
    if size != count:
        raise RequestError(400, f"input '{name}' has {size} elements, shape {shape} needs {count}")
    if size and array.dtype.kind not in _ACCEPTED_KINDS[kind]:
        raise RequestError(400, f"input '{name}' data holds {_describe_kind(array)}, expected {datatype} values")
    if kind in "iu" and size:
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise RequestError(400, f"input '{name}' has values outside the {datatype} range")
    array = array.astype(dtype, copy=False).reshape(shape)
    # count_nonzero, not isfinite(...).all(): the same answer without ndarray.all's Python wrapper (~1 µs).
    if kind == "f" and size and np.count_nonzero(np.isfinite(array)) != size:
        raise RequestError(400, f"input '{name}' has values that do not fit {datatype}")
    return array


def _from_plain_numbers(datatype: str, shape: list[int], count: int, data) -> np.ndarray | None:
    """The common request (FP32, FP64 or INT64 numbers, flat or nested as the shape) without numpy's
    type and shape discovery over nested lists, which costs more than the rest of the validation
    together (64x4 FP32: 9.0 µs the general way, 7.4 µs this way; 64x4 INT64, which the general
    way range-checks, 11.1 against 5.8; bench/runtime_json_tensors.py). None whenever the data is
    anything else or might convert differently: from_json's general route then decides, and words
    any refusal, so both routes give the same arrays and the same errors.

    The array module converts each element strictly: "d" takes ints and floats (and bools), "q"
    ints (and bools); it raises TypeError on str, None, lists and dicts, OverflowError past its
    range. Bools are the one thing numpy sees differently, and only when every element is one (an
    all-bool array is refused; bools among numbers count as 0 and 1): data starting with a bool
    goes the general way."""
    code, dtype = _PLAIN_NUMBERS[datatype]
    values = data
    if type(values) is not list:
        return None
    try:
        if type(values[0]) is list:  # nested: every level as long as the shape says
            if len(values) != shape[0]:
                return None
            for width in shape[1:]:
                if list(map(len, values)).count(width) != len(values):
                    return None
                values = reduce(iadd, values, [])  # a loop of list +=: half of chain's cost
        if len(values) != count or type(values[0]) is bool:
            return None
        numbers = typed_array(code)
        numbers.fromlist(values)
    except (TypeError, OverflowError, IndexError):  # IndexError: empty data, or a shape of rank 0
        return None
    if code == "q":
        return np.frombuffer(numbers, dtype).reshape(shape)
    doubles = np.frombuffer(numbers, np.float64)
    # Every value under 2**53 in magnitude, so it fits FP32, and an integer among them was exact as
    # a double (it then rounds once, as numpy's int64 cast does); NaN fails the comparison. 1e20 is
    # legal too, and takes the general way. (A sum of squares would be one call fewer, but
    # overflows into a RuntimeWarning on 1e200.)
    if not np.maximum.reduce(np.abs(doubles)) < _EXACT_IN_DOUBLE:
        return None
    return doubles.astype(dtype, copy=False).reshape(shape)


def _from_few_numbers(datatype: str, shape: list[int], count: int, data) -> np.ndarray | None:
    """_from_plain_numbers for a tensor of fewer than _DIRECT_FROM elements (a row or two, the most
    common request): each element's type and range checked in a Python loop, then one numpy call
    on values known to convert exactly. None whenever anything is unusual (a bool, a str, a value
    out of range, NaN, a rank above 2): the general route then decides and words the refusal."""
    values = data
    if type(values) is not list or not values:
        return None
    if type(values[0]) is list:  # nested: rows of the declared width
        if len(shape) != 2 or len(values) != shape[0]:
            return None
        width, flat = shape[1], []
        for row in values:
            if type(row) is not list or len(row) != width:
                return None
            flat += row
        values = flat
    if len(values) != count:
        return None
    if datatype == "INT64":
        low, high = _INT64_RANGE
        for value in values:
            if type(value) is not int or not low <= value < high:
                return None
    else:
        # Under 2**53 in magnitude: fits FP32, and an int among them is exact as a double (NaN fails
        # the comparison), as in _from_plain_numbers.
        for value in values:
            kind = type(value)
            if (kind is not float and kind is not int) or not -_EXACT_IN_DOUBLE < value < _EXACT_IN_DOUBLE:
                return None
    return np.array(values, _PLAIN_NUMBERS[datatype][1]).reshape(shape)


def from_binary(name: str, datatype: str, shape: list[int], raw: memoryview) -> np.ndarray | list[str]:
    """A tensor from the binary tensor data extension (little-endian; BYTES as 4-byte length + bytes)."""
    count = element_count(shape)
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise RequestError(400, f"input '{name}' binary BYTES data is truncated")
            (length,) = _LENGTH_PREFIX.unpack_from(raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise RequestError(400, f"input '{name}' binary BYTES data is truncated")
            try:
                values.append(str(raw[offset:offset + length], "utf-8"))
            except UnicodeDecodeError:
                raise RequestError(400, f"input '{name}' BYTES element is not UTF-8 text") from None
            offset += length
        if len(values) != count:
            raise RequestError(400, f"input '{name}' has {len(values)} elements, shape {shape} needs {count}")
        return values
    dtype = _DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            400, f"input '{name}' has {len(raw)} bytes of binary data, shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize}")
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise RequestError(400, f"input '{name}' has NaN or infinite values")
    return array


def to_wire(name: str, value, datatype: str | None) -> tuple[str, list[int], np.ndarray | list[str]]:
    """(datatype, shape, values) of a handler's output; `datatype` None infers it from the value.

    Raises TypeError/ValueError when the value cannot be what the spec declared: that is a bug in the
    model or handler, reported as a 500 by the caller.
    """
    if type(value) is np.ndarray and datatype in _DTYPES and value.dtype == _DTYPES[datatype] and value.flags.c_contiguous:
        return datatype, list(value.shape), value  # what a model usually returns: the declared dtype already
    if isinstance(value, list) and value and isinstance(value[0], str) and datatype in (None, "BYTES"):
        return "BYTES", [len(value)], value
    array = np.asarray(value)
    if datatype is None:
        datatype = _infer_datatype(name, array)
    if datatype == "BYTES":
        flat = array.ravel().tolist()
        return "BYTES", list(array.shape), [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    dtype = _DTYPES[datatype]
    if array.dtype.kind not in "biuf":
        raise TypeError(f"output '{name}' holds {array.dtype} values, declared {datatype}")
    return datatype, list(array.shape), np.ascontiguousarray(array, dtype=dtype)


def to_binary(datatype: str, values) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in values:
            encoded = item.encode()
            parts.append(_LENGTH_PREFIX.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()


def to_json_data(values):
    """Flat row-major data for V2 JSON; orjson serializes the numpy array itself (fast path)."""
    if type(values) is list:
        return values
    flat = values if values.ndim == 1 else values.ravel()
    # orjson has no float16 ("e"); comparing the dtype's character code, not `== np.float16` (~1 µs a call).
    return flat.tolist() if flat.dtype.char == "e" else flat


def _infer_datatype(name: str, array: np.ndarray) -> str:
    if array.dtype.kind in "USO":
        return "BYTES"
    found = _DATATYPE_OF_DTYPE.get(array.dtype.newbyteorder("="))
    if found is None:
        raise TypeError(f"output '{name}' has dtype {array.dtype}, which has no V2 datatype")
    return found


def _flatten_strings(name: str, data, depth: int) -> list[str]:
    values = data
    for _ in range(max(depth - 1, 0)):
        if not (isinstance(values, list) and values and isinstance(values[0], list)):
            break
        values = [item for row in values if isinstance(row, list) for item in row]
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise RequestError(400, f"input '{name}' data must be a list of strings for BYTES")
    return values


def _describe_kind(array: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "floating-point numbers",
            "U": "strings"}.get(array.dtype.kind, "values of mixed or non-numeric types")
