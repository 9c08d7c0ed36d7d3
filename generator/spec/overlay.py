"""Environments: overlay files and `--set path=value` merged onto the base spec, keeping track of
where each value came from so errors point at the overlay's own line and `mlgen explain` can say
whether a value is a default, the base spec's, an overlay's or a `--set`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mlgen.errors import Problem, SpecError, UsageError
from mlgen.spec.load import Position, SourceMap, load_yaml

_SEGMENT = re.compile(r"([A-Za-z0-9_.-]+?)((?:\[\d+\])*)(?:\.|$)")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def apply_overlays(data: dict, sources: SourceMap, overlays: tuple[Path, ...]) -> None:
    """Deep-merge each overlay onto `data` in order: mappings merge, lists and scalars replace."""
    for overlay in overlays:
        layer, layer_sources, _raw = load_yaml(Path(overlay), str(overlay))
        if not isinstance(layer, dict):
            raise SpecError(layer_sources.problem((), "an overlay must be a mapping of fields to change"))
        _merge(data, layer)
        sources.merge(layer_sources)


def _merge(base: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def apply_sets(data: dict, sources: SourceMap, assignments: tuple[str, ...]) -> None:
    """`metadata.labels.team=ml`, `model.inputs[0].shape=[-1, 8]`: values typed as YAML."""
    for assignment in assignments:
        path_text, sep, raw = assignment.partition("=")
        if not sep or not path_text:
            raise UsageError(Problem(f"--set {assignment!r} is not PATH=VALUE", hint="for example --set scaling.max_replicas=20"))
        path = parse_path(path_text)
        try:
            value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise UsageError(Problem(f"--set {path_text}: the value is not valid YAML: {exc}".splitlines()[0])) from None
        _assign(data, path, value, assignment)
        where = Position(f"--set {assignment}", None, None)  # type: ignore[arg-type]
        for known in [p for p in sources.values if p[: len(path)] == path]:
            del sources.values[known]
        sources.values[path] = where
        sources.keys[path] = where
        if not isinstance(value, str) and not raw.strip().startswith(("'", '"')):
            sources.plain_non_strings[path] = raw.strip()


def parse_path(text: str) -> tuple:
    """"model.inputs[0].shape" -> ("model", "inputs", 0, "shape")."""
    parts: list = []
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if not match or match.end() == position:
            raise UsageError(Problem(f"{text!r} is not a field path", hint="for example model.inputs[0].shape"))
        parts.append(match.group(1))
        parts.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group(2)))
        position = match.end()
    return tuple(parts)


def _assign(data: dict, path: tuple, value: object, assignment: str) -> None:
    node: object = data
    for index, part in enumerate(path[:-1]):
        following = path[index + 1]
        if isinstance(node, dict):
            node = node.setdefault(part, [] if isinstance(following, int) else {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise UsageError(Problem(f"--set {assignment}: {'.'.join(map(str, path[:index + 1]))} does not exist"))
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
        node[last:last + 1] = [value]
    else:
        raise UsageError(Problem(f"--set {assignment}: cannot set {last!r} there"))


def origin(sources: SourceMap, path: tuple, base_file: str) -> str:
    """Where the value at `path` came from, in words."""
    where = sources.values.get(path)
    if where is None:
        return "default (from the schema)"
    if where.file.startswith("--set "):
        return where.file
    kind = "base spec" if where.file == base_file else "overlay"
    return f"{kind} {where.file}:{where.line}:{where.column}"
