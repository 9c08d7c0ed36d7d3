"""Open Inference Protocol (KServe V2) and KServe V1 bodies: parsing requests into tensors by name and
encoding named outputs back, JSON or with the binary tensor data extension.

Validation against the declared inputs happens here, once, whatever the transport: names, datatype,
shape (-1 is a wildcard) and element count. `specs` None means "accept what the sender declares"
(an intermediate pipeline stage, whose inputs the spec does not describe).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import orjson

from . import tensors
from .config import TensorSpec
from .errors import RequestError

BINARY_HEADER = "inference-header-content-length"
_MAX_BRACKETS = 10_000
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_NO_BINARY = memoryview(b"")


@dataclass(slots=True)
class InferenceRequest:
    inputs: dict
    id: str | None = None
    parameters: dict = field(default_factory=dict)
    requested: list[str] | None = None  # output names asked for, in order; None: all
    binary: set[str] = field(default_factory=set)  # outputs to return as binary tensor data
    shapes: dict[str, list[int]] = field(default_factory=dict)  # each input's shape as sent


def parse_v2(body: bytes, headers, specs: tuple[TensorSpec, ...] | None) -> InferenceRequest:
    document, binary = _split_body(body, headers)
    if not isinstance(document, dict):
        raise RequestError(400, "request body must be a JSON object with 'inputs'")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise RequestError(400, "request needs a non-empty 'inputs' list" + expected(specs))
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(400, "'parameters' must be a JSON object")

    shapes: dict[str, list[int]] = {}
    inputs = _decode_tensors(raw_inputs, binary, specs, shapes)
    if specs is not None and len(inputs) < len(specs):
        require_all(inputs, specs)  # every input sent is a declared one by now: fewer means some are missing

    request = InferenceRequest(inputs, _request_id(document.get("id")), parameters, None, set(), shapes)
    binary_all = parameters.get("binary_data_output") is True
    raw_outputs = document.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list) or not all(isinstance(item, dict) for item in raw_outputs):
            raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
        request.requested = []
        for item in raw_outputs:
            name = item.get("name")
            if not isinstance(name, str):
                raise RequestError(400, "each requested output needs a string 'name'")
            request.requested.append(name)
            output_parameters = item.get("parameters") or {}
            if not isinstance(output_parameters, dict):
                raise RequestError(400, f"output '{name}' parameters must be a JSON object")
            wants_binary = output_parameters.get("binary_data", binary_all)
            if wants_binary is True:
                request.binary.add(name)
    elif binary_all:
        request.binary = _ALL
    return request


def parse_plain_v2(body: bytes, headers, specs: tuple[TensorSpec, ...] | None) -> InferenceRequest | None:
    """parse_v2's answer for the common request (see _plain_request), None for any other: parse_v2
    then reads it and words any refusal."""
    if specs is None or BINARY_HEADER in headers:
        return None
    try:
        document = _load_json(body)
    except RequestError:
        return None
    return _plain_request(document, specs) if type(document) is dict else None


def _plain_request(document: dict, specs: tuple[TensorSpec, ...]) -> InferenceRequest | None:
    """The common request, read with fewer steps: JSON `inputs` exactly as declared (each with name,
    datatype, shape and data, in the spec's order) and perhaps an `id`; no parameters, no outputs
    asked for. None for anything else, and for any tensor from_json refuses: parse_v2's general
    route then reads it and words the refusal, so both routes give the same answer."""
    raw_inputs, request_id = document.get("inputs"), document.get("id")
    if (len(document) != (1 if request_id is None else 2) or type(raw_inputs) is not list
            or len(raw_inputs) != len(specs) or (request_id is not None and type(request_id) is not str)):
        return None
    inputs, shapes = {}, {}
    for raw, spec in zip(raw_inputs, specs):
        if type(raw) is not dict or len(raw) != 4:
            return None
        name, shape, data = spec.name, raw.get("shape"), raw.get("data")
        if (raw.get("name") != name or raw.get("datatype") != spec.datatype or data is None
                or type(shape) is not list or not _dimensions(shape) or not tensors.shape_matches(spec.shape, shape)):
            return None
        try:
            inputs[name] = tensors.from_json(name, spec.datatype, shape, data)
        except RequestError:
            return None
        shapes[name] = shape
    return InferenceRequest(inputs, request_id or None, {}, None, set(), shapes)


class _Everything(set):
    """The binary set of a request that asked for every output in binary."""

    def __contains__(self, item) -> bool:
        return True

    def __bool__(self) -> bool:  # some output is asked for in binary, though the set holds no name
        return True


_ALL = _Everything()


def require_all(inputs: dict, specs) -> None:
    """Every declared input is there (checked once the request's tensors are decoded)."""
    if specs is not None:
        missing = [spec.name for spec in specs if spec.name not in inputs]
        if missing:
            raise RequestError(400, f"missing input(s) {', '.join(missing)}" + expected(specs))


def encode_v2(model_name: str, model_version: str, request_id: str, outputs: list[tuple],
              binary: set[str]) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a V2 infer response; `outputs` holds (name, datatype, shape, values)."""
    if not binary:  # the usual answer: every output as JSON data
        return orjson.dumps({"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": [
            {"name": name, "datatype": datatype, "shape": shape, "data": tensors.to_json_data(values)}
            for name, datatype, shape, values in outputs]}, option=_DUMPS_OPTIONS), {"content-type": "application/json"}
    documents, chunks = [], []
    for name, datatype, shape, values in outputs:
        document = {"name": name, "datatype": datatype, "shape": shape}
        if name in binary:
            chunk = tensors.to_binary(datatype, values)
            document["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            document["data"] = tensors.to_json_data(values)
        documents.append(document)
    header = orjson.dumps({"model_name": model_name, "model_version": model_version, "id": request_id,
                           "outputs": documents}, option=_DUMPS_OPTIONS)
    if not chunks:
        return header, {"content-type": "application/json"}
    return b"".join([header, *chunks]), {"content-type": "application/octet-stream",
                                         BINARY_HEADER: str(len(header))}


def plain_outputs(specs: tuple[TensorSpec, ...] | None) -> tuple[tuple, ...] | None:
    """What encode_plain_v2 checks each declared output against, (name, datatype, dtype, shape); None
    when an output cannot take that route (none declared, BYTES, or FP16, which orjson cannot write)."""
    if not specs or any(spec.datatype in ("BYTES", "FP16") for spec in specs):
        return None
    return tuple((spec.name, spec.datatype, tensors.numpy_dtype(spec.datatype), spec.shape) for spec in specs)


def encode_plain_v2(model_name: str, model_version: str, request_id: str, produced: dict, plan: tuple) -> bytes | None:
    """encode_v2's JSON body for the usual outputs: every declared one a numpy array of its declared
    dtype and shape, as a model returns them, written in one pass (no (name, datatype, shape, values)
    tuples between checking and writing). None when any output is otherwise: the general route
    (the service's outputs for the wire, then encode_v2) converts it or words why it does not fit."""
    documents = []
    for name, datatype, dtype, declared in plan:
        value = produced.get(name)
        if type(value) is not np.ndarray or value.dtype != dtype:  # != : an unpickled model's dtypes are copies
            return None
        shape = list(value.shape)
        if not tensors.shape_matches(declared, shape):
            return None
        documents.append({"name": name, "datatype": datatype, "shape": shape, "data": value.ravel()})
    return orjson.dumps({"model_name": model_name, "model_version": model_version, "id": request_id,
                         "outputs": documents}, option=_DUMPS_OPTIONS)


def encode_v2_request(inputs: dict, parameters: dict, request_id: str) -> tuple[bytes, dict[str, str]]:
    """A V2 infer request carrying every tensor as binary data (used between pipeline stages)."""
    documents, chunks = [], []
    for name, value in inputs.items():
        datatype, shape, values = tensors.to_wire(name, value, None)
        chunk = tensors.to_binary(datatype, values)
        chunks.append(chunk)
        documents.append({"name": name, "datatype": datatype, "shape": shape,
                          "parameters": {"binary_data_size": len(chunk)}})
    header = orjson.dumps({"id": request_id, "inputs": documents,
                           "parameters": {**parameters, "binary_data_output": True}})
    return b"".join([header, *chunks]), {"content-type": "application/octet-stream",
                                         BINARY_HEADER: str(len(header))}


def parse_v2_response(body: bytes, headers) -> dict:
    """Outputs by name from a V2 infer response (the gateway reading a stage's answer)."""
    document, binary = _split_body(body, headers)
    raw_outputs = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(raw_outputs, list):
        raise RequestError(502, "response has no 'outputs' list")
    return _decode_tensors(raw_outputs, binary, None)


def parse_v1(body: bytes, specs: tuple[TensorSpec, ...]) -> InferenceRequest:
    """`{"instances": [...]}`: rows of the single input, or objects keyed by input name."""
    document = _load_json(body)
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "request body must be a JSON object with a non-empty 'instances' list")
    if len(specs) == 1:
        columns = {specs[0].name: instances}
    elif all(isinstance(row, dict) for row in instances):
        columns = {spec.name: [row.get(spec.name) for row in instances] for spec in specs}
    else:
        raise RequestError(400, "with several inputs each instance must be an object keyed by input name"
                           + expected(specs))
    inputs, shapes = {}, {}
    for spec in specs:
        column = columns[spec.name]
        shape = shapes[spec.name] = _nested_shape(column)
        if not tensors.shape_matches(spec.shape, shape):
            raise RequestError(400, f"input '{spec.name}' instances have shape {shape}, expected "
                               f"{list(spec.shape)}")
        inputs[spec.name] = tensors.from_json(spec.name, spec.datatype, shape, column)
    return InferenceRequest(inputs=inputs, parameters=document.get("parameters") or {}, shapes=shapes)


def encode_v1(outputs: list[tuple]) -> bytes:
    if len(outputs) == 1:
        _, _, shape, values = outputs[0]
        return orjson.dumps({"predictions": _nested(values, shape)}, option=_DUMPS_OPTIONS)
    rows = {name: _nested(values, shape) for name, _, shape, values in outputs}
    count = min(len(column) for column in rows.values())
    return orjson.dumps({"predictions": [{name: column[i] for name, column in rows.items()}
                                         for i in range(count)]}, option=_DUMPS_OPTIONS)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_message(body: bytes) -> str:
    """The message of an error_body (for a transport that carries it elsewhere, as gRPC does)."""
    return orjson.loads(body)["error"]


def _nested(values, shape):
    if isinstance(values, list):  # BYTES: rebuild rows from the flat list
        width = len(values) // shape[0] if len(shape) > 1 and shape[0] else 0
        return [values[i * width:(i + 1) * width] for i in range(shape[0])] if width else values
    return values.tolist() if values.dtype.kind == "f" and values.dtype.itemsize == 2 else values


def _nested_shape(column: list) -> list[int]:
    shape, probe = [], column
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe or len(shape) > 32:
            break
        probe = probe[0]
    return shape


def _split_body(body: bytes, headers) -> tuple[object, memoryview]:
    """The JSON document and the binary tensor data that follows it (binary tensor data extension)."""
    header_length = headers.get(BINARY_HEADER)
    if header_length is None:
        return _load_json(body), _NO_BINARY
    try:
        split = int(header_length)
    except ValueError:
        raise RequestError(400, f"{BINARY_HEADER} must be an integer") from None
    if not 0 <= split <= len(body):
        raise RequestError(400, f"{BINARY_HEADER} {split} is outside the body of {len(body)} bytes")
    return _load_json(body[:split]), memoryview(body)[split:]


def _decode_tensors(raw_tensors: list, binary: memoryview, specs, shapes: dict | None = None) -> dict:
    tensors_by_name, offset = {}, 0
    for raw in raw_tensors:
        name, datatype, shape = tensor_header(raw)
        if name in tensors_by_name:
            raise RequestError(400, f"tensor '{name}' appears twice")
        check_input(name, datatype, shape, specs)
        if shapes is not None:
            shapes[name] = shape
        parameters = raw.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RequestError(400, f"tensor '{name}' parameters must be a JSON object")
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(400, f"tensor '{name}' binary_data_size {size!r} exceeds the binary data sent")
            tensors_by_name[name] = tensors.from_binary(name, datatype, shape, binary[offset:offset + size])
            offset += size
        elif "data" in raw:
            tensors_by_name[name] = tensors.from_json(name, datatype, shape, raw["data"])
        else:
            raise RequestError(400, f"tensor '{name}' has neither 'data' nor binary_data_size")
    if offset != len(binary):
        raise RequestError(400, f"{len(binary) - offset} bytes of binary data belong to no tensor")
    return tensors_by_name


def _load_json(raw: bytes):
    # orjson 3.8 builds Python objects recursively and crashes the process (segfault) on ~150,000
    # nested brackets, which fit in a 1 MB body. Bodies with that many brackets at all are rare
    # (a 64-row request has 65), so they take the stdlib parser, which stops at its recursion limit.
    if len(raw) > _MAX_BRACKETS and raw.count(b"[") + raw.count(b"{") > _MAX_BRACKETS:
        return _load_json_bounded(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # also NaN and Infinity, which JSON does not have
        raise RequestError(400, f"body is not valid JSON: {exc.msg}") from None


def _load_json_bounded(raw: bytes):
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise RequestError(400, f"body is not valid JSON: {str(exc).splitlines()[0]}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def tensor_header(raw) -> tuple[str, str, list[int]]:
    if not isinstance(raw, dict):
        raise RequestError(400, "each tensor must be an object with name, datatype, shape")
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str):
        raise RequestError(400, "each tensor needs a string 'name'")
    if not isinstance(datatype, str) or datatype not in tensors.DATATYPES:  # a list is not hashable
        raise RequestError(400, f"tensor '{name}' datatype {datatype!r} is not one of "
                           f"{', '.join(tensors.DATATYPES)}")
    if not (type(shape) is list and len(shape) <= 32 and _dimensions(shape)):
        raise RequestError(400, f"tensor '{name}' shape must be a list of non-negative integers")
    return name, datatype, shape


def _dimensions(shape: list) -> bool:
    # A loop, not all() over a generator: this runs for every tensor of every request.
    for dim in shape:
        if type(dim) is not int or dim < 0:  # bool is an int subclass, and no dimension
            return False
    return True


def check_input(name: str, datatype: str, shape: list[int], specs) -> None:
    """One input tensor's header against the declared inputs (None: accept what is sent)."""
    if specs is None:
        return
    for spec in specs:
        if spec.name == name:
            break
    else:
        raise RequestError(400, f"unknown input '{name}'" + expected(specs))
    if datatype != spec.datatype:
        raise RequestError(400, f"input '{name}' has datatype {datatype}, expected {spec.datatype}")
    if not tensors.shape_matches(spec.shape, shape):
        raise RequestError(400, f"input '{name}' has shape {shape}, expected {list(spec.shape)} (-1: any size)")


def expected(specs) -> str:
    if not specs:
        return ""
    return "; expected " + ", ".join(f"'{s.name}' {s.datatype} {list(s.shape)}" for s in specs)


def _request_id(value) -> str | None:
    return value if isinstance(value, str) and value else None
