"""An ONNX model's graph inputs and outputs (names, element types, dimensions) read straight from
the protobuf wire format: no onnx package, no inference session. Node and weight records are
skipped by seeking over them, so a large model costs little more than a small one.

Field numbers from onnx/onnx.proto (ModelProto.graph = 7; GraphProto.initializer = 5, input = 11,
output = 12; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1; Tensor.elem_type = 1,
shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2;
TensorProto.name = 8)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

# TensorProto.DataType → the Open Inference Protocol's datatype (onnx.proto's enum); the types the
# runtime's loader knows (runtime/loaders.py), the others are not compared.
ELEMENT_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES",
                 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64"}
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class NotOnnx(ValueError):
    """The file is not a protobuf ModelProto this reader understands."""


@dataclass(frozen=True)
class GraphTensor:
    name: str
    datatype: str | None  # None: not a tensor (a sequence or map) or an unknown element type
    dims: tuple[int | str, ...] | None  # ints, names of symbolic dims, -1 for unnamed; None: rank unknown

    @property
    def rank(self) -> int | None:
        return None if self.dims is None else len(self.dims)


@dataclass(frozen=True)
class Graph:
    inputs: tuple[GraphTensor, ...]  # what a session asks for: initializers left out
    outputs: tuple[GraphTensor, ...]


def read_graph(path) -> Graph:
    with open(path, "rb") as stream:
        size = stream.seek(0, 2)
        stream.seek(0)
        for number, kind, value in _fields(stream, size):
            if number == 7 and kind == LENGTH:
                return _graph(stream, value)
    raise NotOnnx("no graph in the file")


def _graph(stream: BinaryIO, length: int) -> Graph:
    end = stream.tell() + length
    inputs, outputs, weights = [], [], set()
    for number, kind, value in _fields(stream, end):
        if kind != LENGTH:
            continue
        if number in (11, 12):
            (inputs if number == 11 else outputs).append(_value_info(_message(stream, value)))
        elif number == 5:
            weights.add(_tensor_name(stream, value))
    # Before IR version 4 the weights were listed among the inputs too; a session leaves them out.
    return Graph(tuple(t for t in inputs if t.name not in weights), tuple(outputs))


def _fields(stream: BinaryIO, end: int):
    """(field number, wire type, value) up to `end`; a length-delimited field yields its length
    with the stream at its start, and is skipped unless the consumer reads it."""
    while stream.tell() < end:
        key = _varint(stream)
        number, kind = key >> 3, key & 7
        if kind == VARINT:
            yield number, kind, _varint(stream)
        elif kind == LENGTH:
            length = _varint(stream)
            start = stream.tell()
            if start + length > end:
                raise NotOnnx("a field runs past the end of its message")
            yield number, kind, length
            stream.seek(start + length)
        elif kind in (FIXED64, FIXED32):
            stream.seek(8 if kind == FIXED64 else 4, 1)
        else:
            raise NotOnnx(f"wire type {kind} is not protobuf")


def _varint(stream: BinaryIO) -> int:
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise NotOnnx("the file ends inside a field")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise NotOnnx("a varint longer than 64 bits")


def _message(stream: BinaryIO, length: int) -> bytes:
    data = stream.read(length)
    if len(data) != length:
        raise NotOnnx("the file ends inside a message")
    return data


def _parse(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """A small message's fields; length-delimited values as bytes."""
    stream = io.BytesIO(data)
    return [(number, kind, stream.read(value) if kind == LENGTH else value)
            for number, kind, value in _fields(stream, len(data))]


def _value_info(data: bytes) -> GraphTensor:
    name, datatype, dims = "", None, None
    for number, kind, value in _parse(data):
        if number == 1 and kind == LENGTH:
            name = value.decode("utf-8", "replace")
        elif number == 2 and kind == LENGTH:
            for type_number, type_kind, tensor in _parse(value):
                if type_number == 1 and type_kind == LENGTH:  # tensor_type; anything else is not a tensor
                    datatype, dims = _tensor_type(tensor)
    return GraphTensor(name, datatype, dims)


def _tensor_type(data: bytes) -> tuple[str | None, tuple | None]:
    datatype, dims = None, None
    for number, kind, value in _parse(data):
        if number == 1 and kind == VARINT:
            datatype = ELEMENT_TYPES.get(value)
        elif number == 2 and kind == LENGTH:
            dims = tuple(_dimension(dim) for dim_number, dim_kind, dim in _parse(value) if dim_number == 1 and dim_kind == LENGTH)
    return datatype, dims


def _dimension(data: bytes) -> int | str:
    for number, kind, value in _parse(data):
        if number == 1 and kind == VARINT:
            return value
        if number == 2 and kind == LENGTH:
            return value.decode("utf-8", "replace")
    return -1


def _tensor_name(stream: BinaryIO, length: int) -> str:
    """A weight's name, seeking over its data (raw_data can be most of the file)."""
    for number, kind, value in _fields(stream, stream.tell() + length):
        if number == 8 and kind == LENGTH:
            return _message(stream, value).decode("utf-8", "replace")
    return ""
