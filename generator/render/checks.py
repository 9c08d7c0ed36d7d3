"""Parse every structured file back before anything is written: a template mistake becomes a
render error naming the file, not a broken deploy found hours later."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from generator.errors import Problem
from generator.render.environment import RenderedFile

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_UNIT_LINE = re.compile(r"^(\[[A-Za-z0-9 ._-]+\]|[A-Za-z][A-Za-z0-9]*=.*|[#;].*|)$")
_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".container", ".network", ".volume", ".target", ".path")


def check_files(files: list[RenderedFile], target: str) -> list[Problem]:
    problems: list[Problem] = []
    files = [f for f in files if f.generated]
    for rendered in files:
        name = rendered.path
        if name.endswith((".yaml", ".yml")):
            problems += _check(f"{target}/{name}", lambda c: list(yaml.load_all(c, Loader=_Loader)), rendered.content)
        elif name.endswith(".json"):
            problems += _check(f"{target}/{name}", json.loads, rendered.content)
        elif name.endswith(".toml"):
            problems += _check(f"{target}/{name}", _parse_toml, rendered.content)
        elif name.endswith(".py"):
            problems += _check(f"{target}/{name}", lambda c: compile(c, name, "exec"), rendered.content)
        elif name.endswith(_UNIT_SUFFIXES):
            problems += _unit_problems(f"{target}/{name}", rendered.content.decode("utf-8"))
    scripts = [f for f in files if f.path.endswith(".sh") or f.content.startswith(b"#!/usr/bin/env bash")]
    problems += _bash_problems(scripts, target)
    return problems


def _parse_toml(content: bytes) -> None:
    import tomllib  # few bundles have TOML; not worth its import on every render

    tomllib.loads(content.decode())


def _check(display: str, parse, content: bytes) -> list[Problem]:
    try:
        parse(content)
    except (ValueError, SyntaxError, yaml.YAMLError) as exc:  # TOMLDecodeError is a ValueError
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else getattr(exc, "lineno", None)
        return [Problem(f"rendered file does not parse: {exc}".splitlines()[0], display, line,
                        hint="a template bug: please report it with the spec")]
    return []


def _unit_problems(display: str, text: str) -> list[Problem]:
    problems = []
    continued = False
    for number, line in enumerate(text.split("\n"), 1):
        if not continued and not _UNIT_LINE.match(line):
            problems.append(Problem(f"not a unit-file line: {line[:60]!r}", display, number,
                                    hint="a template bug: please report it with the spec"))
        continued = line.endswith("\\") and not line.startswith(("#", ";"))
    return problems


def _bash_problems(scripts: list[RenderedFile], target: str) -> list[Problem]:
    problems = []
    for script in scripts:
        result = subprocess.run(["bash", "-n"], input=script.content, capture_output=True)
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
            problems.append(Problem(f"rendered script does not parse: {' '.join(message)}", f"{target}/{script.path}",
                                    hint="a template bug: please report it with the spec"))
    return problems
