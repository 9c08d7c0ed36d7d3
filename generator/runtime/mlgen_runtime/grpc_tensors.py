"""ModelInferRequest / ModelInferResponse messages to and from the tensors the Service works with.

The checks are HTTP's own (protocol.tensor_header, protocol.check_input, tensors.from_json and
from_binary), so a request refused over one transport is refused over the other with the same
message. Contents come typed (`contents.fp32_contents`, ...) or raw (`raw_input_contents`, the
binary tensor layout: little-endian, BYTES as 4-byte length + bytes); the answer comes back the way
the request came, so a client gets what it sent.
"""

from __future__ import annotations

from . import grpc_predict_v2_pb2 as pb
from . import protocol, tensors
from .errors import RequestError

# The typed contents field of each datatype (FP16 has none: it travels raw).
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def parse_request(message: pb.ModelInferRequest, specs) -> protocol.InferenceRequest:
    raw = message.raw_input_contents
    if not message.inputs:
        raise RequestError(400, "request needs a non-empty 'inputs' list" + protocol.expected(specs))
    if raw and len(raw) != len(message.inputs):
        raise RequestError(400, f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    inputs, shapes = {}, {}
    for index, tensor in enumerate(message.inputs):
        name, datatype, shape = protocol.tensor_header(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)})
        if name in inputs:
            raise RequestError(400, f"tensor '{name}' appears twice")
        protocol.check_input(name, datatype, shape, specs)
        shapes[name] = shape
        if raw:
            inputs[name] = tensors.from_binary(name, datatype, shape, memoryview(raw[index]))
        else:
            inputs[name] = _from_contents(name, datatype, shape, tensor.contents)
    protocol.require_all(inputs, specs)
    return protocol.InferenceRequest(inputs=inputs, id=message.id or None, parameters=_parameters(message.parameters),
                                     requested=[output.name for output in message.outputs] or None, shapes=shapes)


def _from_contents(name: str, datatype: str, shape: list[int], contents: pb.InferTensorContents):
    field = CONTENTS.get(datatype)
    if field is None:
        raise RequestError(400, f"input '{name}' is {datatype}, which travels in raw_input_contents only")
    values = getattr(contents, field)
    if datatype == "BYTES":
        try:
            values = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise RequestError(400, f"input '{name}' BYTES element is not UTF-8 text") from None
        return tensors.from_json(name, datatype, shape, values)
    return tensors.from_json(name, datatype, shape, list(values))


def _parameters(parameters) -> dict:
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in parameters.items()
            if value.WhichOneof("parameter_choice")}


def encode_response(model_name: str, model_version: str, request_id: str, outputs: list[tuple],
                    raw: bool) -> pb.ModelInferResponse:
    """`outputs` holds (name, datatype, shape, values), as for HTTP."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id)
    for name, datatype, shape, values in outputs:
        tensor = response.outputs.add(name=name, datatype=datatype, shape=shape)
        if raw or datatype not in CONTENTS:
            response.raw_output_contents.append(tensors.to_binary(datatype, values))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(value.encode() for value in values)
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(values.ravel().tolist())
    if not raw and any(output[1] not in CONTENTS for output in outputs):
        # A response is raw or typed as a whole: with an FP16 output, every output goes raw.
        return encode_response(model_name, model_version, request_id, outputs, raw=True)
    return response
