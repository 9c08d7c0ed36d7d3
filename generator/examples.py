"""What a bundle is asked to prove it answers: the spec's examples (or, without any, one request of
zeros shaped like model.inputs) as Open Inference Protocol requests, and each answer judged against
the example's expected outputs, numbers within its tolerance (smoke.judge). `mlgen verify` sends
them; an on-prem blue-green release sends them to a new version before it gets traffic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mlgen import smoke
from mlgen.render import RenderedFile
from mlgen.render.filters import pretty_json
from mlgen.spec import ServiceModel

# Where a bundle carries its release check: the judge and what it sends (relative to the bundle).
RELEASE_EXAMPLES = "release/examples.json"
RELEASE_SMOKE = "release/smoke.py"


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
        tensors.append({"name": tensor.name, "datatype": tensor.datatype, "shape": _shape(data), "data": smoke.flat(data)})
    return json.dumps({"inputs": tensors}).encode()


def _zeros(datatype: str, shape: list[int]):
    value = "x" if datatype == "BYTES" else False if datatype == "BOOL" else 0
    for size in reversed(shape):
        value = [value] * size if not isinstance(value, list) else [list(value) for _ in range(size)]
    return value


def documents(model: ServiceModel) -> list[dict]:
    """The probes as smoke.py reads them (a bundle's release/examples.json): each request, and the
    outputs it must bring back, expected data flattened."""
    return [_document(model, probe) for probe in probes(model)]


def release_files(model: ServiceModel) -> list[RenderedFile]:
    """release/examples.json and release/smoke.py, for a bundle that checks a new version itself
    before it gets traffic (on-prem blue-green, a Kubernetes preview, a Lambda PreTraffic hook)."""
    return [RenderedFile.text(RELEASE_EXAMPLES, pretty_json(documents(model)) + "\n"),
            RenderedFile.text(RELEASE_SMOKE, Path(smoke.__file__).read_text(encoding="utf-8"))]


def _document(model: ServiceModel, probe: Probe) -> dict:
    return {"label": probe.label, "request": json.loads(probe.body), "tolerance": probe.tolerance,
            "expected": {name: smoke.flat(_plain(value)) for name, value in probe.expected.items()},
            "outputs": list(probe.expected) or [t.name for t in model.model.outputs]}


def judge(model: ServiceModel, probe: Probe, status: int, body: bytes) -> str | None:
    """None when the answer is right, else what is wrong with it, in a sentence."""
    return smoke.judge(_document(model, probe), status, body)


def _plain(value: object) -> object:
    """The spec's read-only tuples back into lists."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _shape(data: object) -> list[int]:
    shape = []
    while isinstance(data, list):
        shape.append(len(data))
        data = data[0] if data else None
    return shape
