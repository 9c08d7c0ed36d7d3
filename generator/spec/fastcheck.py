"""A compiled fast path for the schema check.

Most specs are valid, and a batch render validates hundreds of them: fastjsonschema turns the
schema into plain Python once (cached as a module with its bytecode beside it), which accepts a
valid spec in microseconds and imports in a few milliseconds, against ~45 ms to import
jsonschema and ~1.5 ms per spec to walk it. Only a spec this rejects goes on to jsonschema, whose
errors are the ones users read (all of them, with positions and hints).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import os
import re
import tempfile
from typing import Callable

from mlgen.resources import cache_dir
from mlgen.spec.schema import spec_schema

_TRAILING_DOLLAR = re.compile(r"(?<!\\)\$$")


@functools.cache
def validation_schema(plugins: tuple[str, ...] = ()) -> dict:
    """The published schema with Python-exact anchors. Its patterns are ECMA-262, where `$`
    ends the string; in Python's `re` a `$` also matches before a final newline, which would let
    `name: "iris\\n"` through into unit files and scripts. `\\Z` means what `$` means in ECMA."""
    strict = copy.deepcopy(spec_schema(plugins))
    _anchor(strict)
    return strict


def _anchor(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                node[key] = _TRAILING_DOLLAR.sub(r"\\Z", value)
            elif key not in ("examples", "default", "const", "enum"):
                _anchor(value)
    elif isinstance(node, list):
        for item in node:
            _anchor(item)


@functools.cache
def fast_validator(plugins: tuple[str, ...] = ()) -> Callable[[object], bool]:
    """A function that says whether data is valid; compiled once per schema version (and per set
    of plugin targets a spec configures)."""
    # Keyed by the schema as published (the anchoring below is a function of it and of LAYOUT), so
    # a cached module costs neither the schema's deep copy nor fastjsonschema's import.
    source = json.dumps(spec_schema(plugins), sort_keys=True)
    key = hashlib.sha256(f"{_compiler_stamp()}\n{LAYOUT}\n{source}".encode()).hexdigest()[:16]
    module = _cached_module(key, lambda: _self_contained(_compile(plugins)))
    check = getattr(module, next(name for name in dir(module) if name.startswith("validate_")))

    def is_valid(data: object) -> bool:
        try:
            check(data)
        except ValueError:  # the module's own exceptions (fastjsonschema's, were its import line kept, are ValueErrors too)
            return False
        return True

    return is_valid


def _compile(plugins: tuple[str, ...]) -> str:
    import fastjsonschema  # only when the cached module is missing

    definition = dict(validation_schema(plugins), **{"$schema": "http://json-schema.org/draft-07/schema#"})
    return fastjsonschema.compile_to_code(definition)


def _compiler_stamp() -> str:
    """Which fastjsonschema compiles the schema (its place and install time, read without importing
    it): upgrading it regenerates the cached module."""
    origin = importlib.util.find_spec("fastjsonschema").origin
    return f"{origin} {os.stat(origin).st_mtime_ns}"


# The cached module runs without fastjsonschema and decimal (~2 ms of imports a render):
# - it compiles every pattern of the schema when imported (about 40 of them); a spec meets a
#   handful, so each is compiled when first used instead;
# - its exceptions are its own: the fast path asks only whether the spec is valid, and jsonschema
#   says why not;
# - `Decimal` appears only in its number checks, `isinstance(value, (int, float, Decimal))`. A spec
#   is YAML, where no value is a Decimal; were one passed, the fast path would reject it and
#   jsonschema, which runs on every rejection, would judge it as before.
LAYOUT = "self-contained-3"  # part of the cache key: a change here (or to _anchor) regenerates the module
_EAGER_PATTERNS = re.compile(r"^REGEX_PATTERNS = \{\n.*?^\}\n", re.MULTILINE | re.DOTALL)
_LAZY_PATTERNS = """class _Patterns(dict):
    def __missing__(self, pattern):
        self[pattern] = compiled = re.compile(pattern)
        return compiled


REGEX_PATTERNS = _Patterns()
"""
_IMPORTS = {
    "from decimal import Decimal\n": """class Decimal:
    \"\"\"Stands for decimal.Decimal in the number checks: no value of a YAML spec is one.\"\"\"
""",
    "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n": """class JsonSchemaException(ValueError):
    def __init__(self, message, *details, **named):
        super().__init__(message)


JsonSchemaValueException = JsonSchemaValuesException = JsonSchemaException
""",
}


def _self_contained(code: str) -> str:
    for line, replacement in _IMPORTS.items():
        code = code.replace(line, replacement, 1)  # a line a later fastjsonschema words otherwise stays as it is
    return _EAGER_PATTERNS.sub(lambda _match: _LAZY_PATTERNS, code, count=1)


def _cached_module(key: str, generate: Callable[[], str]):
    folder = cache_dir("schema")
    path = folder / f"schema_{key}.py"
    try:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, encoding="utf-8") as handle:
                handle.write(generate())
            os.replace(handle.name, path)
            # Written explicitly: PYTHONDONTWRITEBYTECODE must not make every run recompile ~250 KB.
            import py_compile  # only when the module is generated (it imports traceback and textwrap)

            py_compile.compile(str(path), doraise=True)
    except OSError:
        namespace: dict = {}
        exec(compile(generate(), "<mlgen schema>", "exec"), namespace)
        return type("Compiled", (), namespace)
    spec = importlib.util.spec_from_file_location(f"mlgen_schema_{key}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
