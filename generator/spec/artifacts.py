"""The model file against the spec, at validate time and without running it: an ONNX graph's
inputs and outputs against model.inputs/outputs (the comparison the runtime makes at load, made
before anything ships), a scikit-learn pickle's version against the pinned requirement, and its
n_features_in_ against the input's width. A tensor the pipeline's own steps stand in front of
(preprocess) or behind (postprocess) is the handler's business, not the model's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mlgen.errors import Level, Problem
from mlgen.spec.distributions import FORMAT_REQUIREMENTS, project_name
from mlgen.spec.load import SourceMap

SKLEARN = "scikit-learn"


def artifact_problems(data: dict, sources: SourceMap, model_path: Path) -> list[Problem]:
    model, pipeline = data["model"], data["pipeline"]
    faces_inputs, faces_outputs = not pipeline.get("preprocess"), not pipeline.get("postprocess")
    if model["format"] == "onnx" and model_path.is_file():
        return _onnx_problems(model, sources, model_path, faces_inputs, faces_outputs)
    if model["format"] == "sklearn":
        problems = _sklearn_interface_problems(model, sources, faces_inputs, faces_outputs)
        if model_path.is_file():
            problems += _pickle_problems(data, sources, model_path, faces_inputs)
        return problems
    return []


def _warning(problem: Problem) -> Problem:
    return replace(problem, level=Level.WARNING)


# --- ONNX -------------------------------------------------------------------------------------

def _onnx_problems(model: dict, sources: SourceMap, path: Path, faces_inputs: bool, faces_outputs: bool) -> list[Problem]:
    from mlgen.spec.onnxgraph import NotOnnx, read_graph

    try:
        graph = read_graph(path)
    except (NotOnnx, OSError) as error:
        return [_warning(sources.problem(("model", "path"), f"{model['path']} could not be read as an ONNX model ({error}): "
                                                            "its inputs and outputs are not checked"))]
    problems = []
    if faces_inputs:
        problems += _tensor_problems("inputs", model, graph.inputs, sources, every=True)
    if faces_outputs:
        problems += _tensor_problems("outputs", model, graph.outputs, sources, every=False)
    return problems


def _tensor_problems(side: str, model: dict, found, sources: SourceMap, *, every: bool) -> list[Problem]:
    """`every`: the spec must declare each of the model's tensors (a session needs every input;
    an output may be left out)."""
    by_name = {tensor.name: tensor for tensor in found}
    listing = ", ".join(_describe(tensor) for tensor in found) or "none"
    role = side[:-1]
    problems = []
    for index, declared in enumerate(model[side]):
        tensor = by_name.get(declared["name"])
        if tensor is None:
            problems.append(sources.problem((("model", side, index, "name")),
                                            f"the ONNX model has no {role} {declared['name']!r}",
                                            hint=f"the model's {side}: {listing}"))
            continue
        if tensor.datatype is not None and tensor.datatype != declared["datatype"]:
            problems.append(sources.problem(("model", side, index, "datatype"),
                                            f"the ONNX model's {role} {tensor.name!r} is {tensor.datatype}, not {declared['datatype']}",
                                            hint=f"datatype: {tensor.datatype}"))
        if tensor.dims is not None and not _shapes_agree(tensor.dims, declared["shape"]):
            problems.append(sources.problem(("model", side, index, "shape"),
                                            f"the ONNX model's {role} {tensor.name!r} has shape {_dims(tensor.dims)}, "
                                            f"which {declared['shape']} does not match",
                                            hint=f"shape: {_spec_shape(tensor.dims)}"))
    if every and not any(declared["name"] not in by_name for declared in model[side]):  # else said above
        declared_names = {declared["name"] for declared in model[side]}
        missing = [tensor for tensor in found if tensor.name not in declared_names]
        if missing:
            problems.append(sources.problem(("model", side), f"the ONNX model also needs {role} "
                                                             f"{', '.join(_describe(t) for t in missing)}, which model.{side} does not declare",
                                            hint=f"the model's {side}: {listing}; declare exactly these, or add a preprocess step"))
    return problems


def _shapes_agree(dims: tuple, shape: list[int]) -> bool:
    if len(dims) != len(shape):
        return False
    return all(not isinstance(dim, int) or dim <= 0 or size == -1 or size == dim for dim, size in zip(dims, shape))


def _dims(dims: tuple) -> str:
    return "[" + ", ".join(str(dim) if isinstance(dim, int) and dim > 0 else "N" if dim == -1 else str(dim)
                           for dim in dims) + "]"


def _spec_shape(dims: tuple) -> str:
    return "[" + ", ".join(str(dim) if isinstance(dim, int) and dim > 0 else "-1" for dim in dims) + "]"


def _describe(tensor) -> str:
    parts = [tensor.datatype or "not a tensor"] + ([_dims(tensor.dims)] if tensor.dims is not None else [])
    return f"{tensor.name} ({' '.join(parts)})"


# --- scikit-learn -----------------------------------------------------------------------------

def _sklearn_interface_problems(model: dict, sources: SourceMap, faces_inputs: bool, faces_outputs: bool) -> list[Problem]:
    """What the runtime's scikit-learn loader refuses at load (runtime/loaders.py), said earlier."""
    problems = []
    if faces_inputs and len(model["inputs"]) != 1:
        problems.append(sources.problem(("model", "inputs"), f"a scikit-learn model takes one input tensor, not {len(model['inputs'])}",
                                        hint="declare one input of shape [-1, FEATURES], or add a preprocess step that combines them"))
    if faces_outputs:
        labels = [tensor["name"] for tensor in model["outputs"] if tensor["name"] != "predict_proba"]
        if len(labels) > 1:
            problems.append(sources.problem(("model", "outputs"), f"a scikit-learn model answers predict() once (and predict_proba), "
                                                                  f"but model.outputs declares {', '.join(labels)}",
                                            hint="keep one output for predict() and name the probabilities predict_proba, "
                                                 "or add a postprocess step"))
    return problems


def _pickle_problems(data: dict, sources: SourceMap, path: Path, faces_inputs: bool) -> list[Problem]:
    from mlgen.spec.pickles import Unreadable, scan

    shown = data["model"]["path"]
    try:
        facts = scan(path)
    except (Unreadable, OSError, EOFError, ValueError) as error:
        return [_warning(sources.problem(("model", "path"), f"{shown} could not be scanned as a pickle ({error}): "
                                                            "the scikit-learn version that made it is not checked"))]
    problems = []
    if facts.sklearn_version:
        problems += _version_problems(data, sources, shown, facts.sklearn_version)
    features = facts.n_features_in
    if faces_inputs and features is not None and len(data["model"]["inputs"]) == 1:
        shape = data["model"]["inputs"][0]["shape"]
        if len(shape) != 2 or shape[1] not in (-1, features):
            problems.append(sources.problem(("model", "inputs", 0, "shape"),
                                            f"{shown} was fitted on rows of {features} features, which shape {shape} does not match",
                                            hint=f"shape: [-1, {features}]"))
    return problems


def _version_problems(data: dict, sources: SourceMap, shown: str, made_with: str) -> list[Problem]:
    """A pickle loads reliably only with the scikit-learn that made it."""
    pin = f"{SKLEARN}=={made_with}"
    requirements = data["runtime"]["requirements"]
    for index, requirement in enumerate(requirements):
        if project_name(requirement) != SKLEARN:
            continue
        pinned = _pinned_version(requirement)
        if pinned is None:
            return [_warning(sources.problem(("runtime", "requirements", index),
                                             f"{requirement} does not pin the scikit-learn that pickled {shown} ({made_with})",
                                             hint=f"use {pin}"))]
        if pinned != made_with:
            return [sources.problem(("runtime", "requirements", index),
                                    f"{shown} was pickled by scikit-learn {made_with}, but {requirement} is pinned",
                                    hint=f"use {pin}, or retrain the model with scikit-learn {pinned}")]
        return []
    default = next(r for r in FORMAT_REQUIREMENTS["sklearn"] if project_name(r) == SKLEARN)
    # At the requirements the spec lists, or else at the model the pin is for.
    where = ("runtime", "requirements") if ("runtime", "requirements") in sources.values else ("model", "path")
    return [_warning(sources.problem(where,
                                     f"scikit-learn is not pinned: bundles install {default}, which need not be the "
                                     f"{made_with} that pickled {shown}", hint=f"add {pin} to runtime.requirements"))]


def _pinned_version(requirement: str) -> str | None:
    """The version of `name==X` (or `===X`), without markers; None for a range or a wildcard."""
    specifier = requirement.split(";")[0]
    for operator in ("===", "=="):
        if operator in specifier:
            version = specifier.split(operator, 1)[1].split(",")[0].strip()
            return None if "," in specifier or version.endswith(".*") else version
    return None
