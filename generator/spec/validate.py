"""Check loaded spec data against the published JSON Schema and the rules a schema cannot say.

Every error is collected (never just the first) and turned into a Problem that points at the
line and column of the offending value or key, names the field and says what was expected.
"""

from __future__ import annotations

import functools

from mlgen.errors import Problem
from mlgen.spec.fastcheck import fast_validator, validation_schema
from mlgen.spec.schema import plugin_targets, spec_schema
from mlgen.spec.load import SourceMap

# What a pattern means, in words, for the patterns users meet most.
_PATTERN_MEANING = {
    "^[a-z]([-a-z0-9]*[a-z0-9])?$": "a DNS-1123 label: lowercase letters, digits and '-', starting with a letter and not ending with '-'",
    "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$": "`module:attribute`, for example `handlers:preprocess`",
    "^[A-Za-z_][A-Za-z0-9_]*$": "an environment variable name: letters, digits and '_', not starting with a digit",
    "^[a-f0-9]{64}$": "64 lowercase hexadecimal digits (sha256sum prints them)",
    "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$": "a Kubernetes quantity such as 512Mi or 2Gi",
    "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f]*$": "free text without control characters other than tab and newline",
}
_SECRET_VALUE_KEYS = {"value", "password", "token", "data", "string_data", "stringData"}


@functools.cache
def _validator(plugins: tuple[str, ...] = ()):
    # Built once: jsonschema.validate() re-checks the schema and rebuilds the validator on each
    # call, which costs ~25x a reused validator when rendering many specs in one process.
    # The schema itself is checked by the test suite (check_schema costs ~50 ms per process).
    import jsonschema

    return jsonschema.Draft202012Validator(validation_schema(plugins))


def schema_problems(data: object, sources: SourceMap) -> list[Problem]:
    plugins = plugin_targets(data)
    if fast_validator(plugins)(data):
        return []
    problems: list[Problem] = []
    for error in _validator(plugins).iter_errors(data):
        problems.extend(_explain(error, sources))
    return problems


def _explain(error, sources: SourceMap) -> list[Problem]:
    path = tuple(error.absolute_path)
    kind = error.validator
    sub = error.schema if isinstance(error.schema, dict) else {}

    if kind == "additionalProperties":
        allowed = sorted(sub.get("properties", {}))
        extras = [key for key in error.instance if key not in sub.get("properties", {})]
        return [sources.problem(path + (key,), f"unknown field {key!r}", key=True,
                                hint=_unknown_hint(path, key, allowed)) for key in extras]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return [sources.problem(path, f"required field {missing!r} is missing",
                                hint=_describe(sub.get("properties", {}).get(missing)))]
    if kind == "dependentRequired":
        given = next((key for key, needed in error.validator_value.items() if key in error.instance), "?")
        missing = [name for name in error.validator_value.get(given, ()) if name not in error.instance]
        return [sources.problem(path + (given,), f"{given} needs {', '.join(missing)} beside it", key=True,
                                hint=_describe(sub.get("properties", {}).get(missing[0])) if missing else None)]
    if kind == "propertyNames":
        key = error.instance
        meaning = _meaning(error.validator_value.get("pattern", "")) or ""
        message = f"key {key!r} is not allowed here"
        return [sources.problem(path + (key,), message, key=True,
                                hint=f"expected {meaning}" if meaning else "see `mlgen schema` for the allowed form")]
    if kind == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        hint = None
        written = sources.plain_non_strings.get(path)
        if written is not None and "string" in (expected if isinstance(expected, list) else [expected]):
            hint = f'YAML reads {written} as {_yaml_kind(error.instance)}; quote it: "{written}"'
        return [sources.problem(path, f"expected {_article(expected_text)}, got {_yaml_kind(error.instance)}", hint=hint)]
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        close = _closest(str(error.instance), [str(c) for c in error.validator_value])
        hint = f"did you mean {close[0]!r}?" if close else None
        written = sources.plain_non_strings.get(path)
        if written is not None and written in [str(c) for c in error.validator_value]:
            # `python: 3.10` is the float 3.1: the choice was written, YAML changed it.
            hint = f'YAML reads {written} as {_yaml_kind(error.instance)}; quote it: "{written}"'
        return [sources.problem(path, f"{error.instance!r} is not one of: {choices}", hint=hint)]
    if kind == "const":
        return [sources.problem(path, f"expected {error.validator_value!r}, got {error.instance!r}")]
    if kind == "pattern":
        meaning = _meaning(error.validator_value)
        return [sources.problem(path, f"{error.instance!r} is not {meaning or 'of the expected form'}",
                                hint=None if meaning else f"expected to match {_published(error.validator_value)}")]
    if kind == "oneOf":
        return [sources.problem(path, f"{error.instance!r} is not valid here", hint=_describe(sub))]
    return [sources.problem(path, error.message)]


def _closest(word: str, choices: list[str]) -> list[str]:
    import difflib  # only a spec with errors needs it

    return difflib.get_close_matches(word, choices, n=1, cutoff=0.6)


def _published(pattern: str) -> str:
    """The pattern as the published schema writes it (validation uses \\Z for ECMA's $)."""
    return pattern[:-2] + "$" if pattern.endswith("\\Z") else pattern


def _meaning(pattern: str) -> str | None:
    return _PATTERN_MEANING.get(_published(pattern))


def _unknown_hint(path: tuple, key: str, allowed: list[str]) -> str:
    if path[:1] == ("secrets",) and key in _SECRET_VALUE_KEYS:
        return "a spec holds only references to secrets: name the secret with `secret` and keep the value in the platform's store"
    close = _closest(key, allowed)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"allowed: {', '.join(allowed)}" if allowed else "no fields are allowed here"


def _describe(subschema: dict | None) -> str | None:
    return subschema.get("description") if isinstance(subschema, dict) else None


def _article(text: str) -> str:
    return ("an " if text[:1] in "aeiou" else "a ") + text


# bool before int: True is an int to Python, a boolean to the person who wrote `yes`.
_KINDS = ((type(None), "null"), (bool, "a boolean"), (int, "an integer"), (float, "a number"),
          (str, "a string"), (list, "a list"), (dict, "a mapping"))


def _yaml_kind(value: object) -> str:
    return next((kind for cls, kind in _KINDS if isinstance(value, cls)), type(value).__name__)


def with_defaults(data: dict) -> dict:
    """A copy of valid spec data with every schema default filled in (the schema is the one
    place defaults are written down, so docs and behaviour cannot disagree)."""
    root = spec_schema(plugin_targets(data))
    result = _copy(data)
    _fill(result, root, root)
    return result


def _fill(instance: object, subschema: dict, root: dict) -> None:
    if "$ref" in subschema:
        subschema = _resolve(subschema["$ref"], root)
    if isinstance(instance, dict):
        for name, prop in subschema.get("properties", {}).items():
            if name not in instance and "default" in prop:
                instance[name] = _copy(prop["default"])
            if name in instance:
                _fill(instance[name], prop, root)
    elif isinstance(instance, list) and isinstance(subschema.get("items"), dict):
        for item in instance:
            _fill(item, subschema["items"], root)


def _copy(value: object) -> object:
    """A deep copy of plain YAML/JSON data (dicts, lists, scalars): copy.deepcopy's generality
    (memo, reducers) made it the largest cost of loading a spec."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _resolve(ref: str, root: dict) -> dict:
    node: object = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
