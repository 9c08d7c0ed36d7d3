"""Parse every structured file back before anything is written: a template mistake becomes a
render error naming the file, not a broken deploy found hours later."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

import yaml

from mlgen.errors import Problem
from mlgen.resources import cache_dir
from mlgen.render.environment import RenderedFile

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_files(files: list[RenderedFile], target: str, extra: Mapping[str, Callable] | None = None) -> list[Problem]:
    """Problems in the generated files of `target`: YAML, JSON, TOML, Python and shell scripts
    everywhere, plus the target's own `extra` checks (file suffix → check(display, content))."""
    checks = {**CORE_CHECKS, **(extra or {})}
    problems: list[Problem] = []
    files = [f for f in files if f.generated]
    for rendered in files:
        suffix = next((s for s in checks if rendered.path.endswith(s)), None)
        if suffix is not None:
            problems += checks[suffix](f"{target}/{rendered.path}", rendered.content)
    scripts = [f for f in files if f.path.endswith(".sh") or f.content.startswith(b"#!/usr/bin/env bash")]
    problems += _bash_problems(scripts, target)
    return problems


_PARSE_ERRORS = (ValueError, SyntaxError, yaml.YAMLError)  # TOMLDecodeError is a ValueError


def parser_check(parse: Callable[[bytes], object], errors: tuple[type[Exception], ...] = ()) -> Callable[[str, bytes], list[Problem]]:
    """A check from a parser that raises ValueError, SyntaxError, a YAML error or one of `errors`
    (the parser's own exception types) on bad input."""
    return lambda display, content: _check(display, parse, content, _PARSE_ERRORS + errors)


def _parse_toml(content: bytes) -> None:
    import tomllib  # few bundles have TOML; not worth its import on every render

    tomllib.loads(content.decode())


def _check(display: str, parse, content: bytes, errors: tuple[type[Exception], ...]) -> list[Problem]:
    try:
        parse(content)
    except errors as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else getattr(exc, "lineno", None) or getattr(exc, "line", None)
        return [Problem(f"rendered file does not parse: {exc}".splitlines()[0], display, line,
                        hint="a template bug: please report it with the spec")]
    return []


def _bash_problems(scripts: list[RenderedFile], target: str) -> list[Problem]:
    """`bash -n` over every script, in one bash: each script becomes the body of a function of a
    single file (a function body parses as the script does), so a bundle's ten scripts cost one
    process instead of ten. Only when that fails is each script checked alone, for its message."""
    parsed = _ParsedScripts()
    scripts = [script for script in scripts if not parsed.seen(script.content)]
    if not scripts:
        return []
    import subprocess  # only when a script is new to this bash: most renders find every one parsed before

    combined = b"".join(b"__mlgen_script_%d() {\n%s\n}\n" % (index, script.content) for index, script in enumerate(scripts))
    if subprocess.run(["bash", "-n"], input=combined, capture_output=True).returncode == 0:
        parsed.remember(script.content for script in scripts)
        return []
    problems = []
    for script in scripts:
        result = subprocess.run(["bash", "-n"], input=script.content, capture_output=True)
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
            problems.append(Problem(f"rendered script does not parse: {' '.join(message)}", f"{target}/{script.path}",
                                    hint="a template bug: please report it with the spec"))
    return problems


class _ParsedScripts:
    """Scripts this bash has parsed without error before, by their sha256: parsing is most of what
    `bash -n` costs (about 0.3 ms a KB), and a re-render mostly produces scripts already seen. Kept
    per bash binary (path, size, mtime), so another bash checks everything again."""

    def __init__(self) -> None:
        bash = shutil.which("bash") or "bash"
        try:
            stat = os.stat(bash)
            identity = hashlib.sha256(f"{bash}\n{stat.st_size}\n{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        except OSError:
            identity = "unknown"
        self.folder = cache_dir("bash-n") / identity

    def _marker(self, content: bytes) -> Path:
        return self.folder / hashlib.sha256(content).hexdigest()

    def seen(self, content: bytes) -> bool:
        return self._marker(content).exists()

    def remember(self, contents) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for content in contents:
                self._marker(content).touch()
        except OSError:  # a read-only home only costs the next render the same parse
            pass


def _python(content: bytes) -> None:
    compile(content, "<rendered>", "exec")


CORE_CHECKS = {
    ".yaml": parser_check(lambda c: list(yaml.load_all(c, Loader=_Loader))),
    ".yml": parser_check(lambda c: list(yaml.load_all(c, Loader=_Loader))),
    ".json": parser_check(json.loads),
    ".toml": parser_check(_parse_toml),
    ".py": parser_check(_python),
}
