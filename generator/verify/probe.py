"""What verify sends and how it judges the answer: the spec's examples (or, without any, one request
of zeros shaped like model.inputs) as Open Inference Protocol requests, and each answer compared
with the example's expected outputs, numbers within its tolerance."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping

from mlgen.spec import ServiceModel


@dataclass(frozen=True)
class Probe:
    label: str  # "example 1", "a request of zeros"
    body: bytes
    expected: Mapping[str, object]  # output name → nested data; empty: every declared output must come back
    tolerance: float


def probes(model: ServiceModel) -> list[Probe]:
    if model.examples:
        return [Probe(f"example {index}", _body(model, example.inputs), example.outputs, example.tolerance)
                for index, example in enumerate(model.examples, 1)]
    zeros = {t.name: _zeros(t.datatype, [1 if d == -1 else d for d in t.shape]) for t in model.model.inputs}
    return [Probe("a request of zeros built from model.inputs (the spec has no examples)", _body(model, zeros), {}, 0.0)]


def infer_path(model: ServiceModel) -> str:
    return f"/v2/models/{model.name}/infer"


def _body(model: ServiceModel, inputs: Mapping[str, object]) -> bytes:
    tensors = []
    for tensor in model.model.inputs:
        data = _plain(inputs[tensor.name])
        tensors.append({"name": tensor.name, "datatype": tensor.datatype, "shape": _shape(data), "data": _flat(data)})
    return json.dumps({"inputs": tensors}).encode()


def _zeros(datatype: str, shape: list[int]):
    value = "x" if datatype == "BYTES" else False if datatype == "BOOL" else 0
    for size in reversed(shape):
        value = [value] * size if not isinstance(value, list) else [list(value) for _ in range(size)]
    return value


def judge(model: ServiceModel, probe: Probe, status: int, body: bytes) -> str | None:
    """None when the answer is right, else what is wrong with it, in a sentence."""
    try:
        answer = json.loads(body)
    except ValueError:
        return f"{probe.label}: HTTP {status} with a body that is not JSON: {body[:200]!r}"
    if status != 200:
        return f"{probe.label}: HTTP {status}: {answer.get('error', answer) if isinstance(answer, dict) else answer}"
    outputs = {o.get("name"): o for o in answer.get("outputs", []) if isinstance(o, dict)}
    wanted = list(probe.expected) or [t.name for t in model.model.outputs]
    missing = [name for name in wanted if name not in outputs]
    if missing:
        return (f"{probe.label}: the answer has no output {', '.join(missing)} "
                f"(it has {', '.join(map(str, outputs)) or 'none'})")
    for name, expected in probe.expected.items():
        expected_flat, got = _flat(_plain(expected)), outputs[name].get("data")
        if not _same(expected_flat, got, probe.tolerance):
            return f"{probe.label}: output {name} is {_short(got)}, expected {_short(expected_flat)}"
    return None


def _same(expected: list, got: object, tolerance: float) -> bool:
    if not isinstance(got, list) or len(got) != len(expected):
        return False
    for want, have in zip(expected, got):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (want, have))
        if numbers and not math.isclose(want, have, rel_tol=tolerance, abs_tol=tolerance):
            return False
        if not numbers and want != have:
            return False
    return True


def _plain(value: object) -> object:
    """The spec's read-only tuples back into lists."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _shape(data: object) -> list[int]:
    shape = []
    while isinstance(data, list):
        shape.append(len(data))
        data = data[0] if data else None
    return shape


def _flat(data: object) -> list:
    if not isinstance(data, list):
        return [data]
    return [item for part in data for item in _flat(part)]


def _short(data: object, limit: int = 120) -> str:
    text = json.dumps(data)
    return text if len(text) <= limit else text[:limit] + "…"
