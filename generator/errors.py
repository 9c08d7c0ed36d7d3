"""Errors as values: every problem knows where it is (file, line, column, field) and how to fix it.

Library code collects `Problem`s and raises one `MlgenError` carrying all of them; only cli.py
turns them into text and an exit code, so no traceback ever reaches a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Level(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) with a spec, a file or a render, located where it can be."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    field: str | None = None  # dotted path into the spec, e.g. "model.inputs[0].shape"
    hint: str | None = None
    level: Level = Level.ERROR

    def sort_key(self) -> tuple:
        return (self.file or "", self.line or 0, self.column or 0, self.field or "", self.message)

    def render(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line, self.column) if part is not None)
        parts = [where] if where else []
        if self.level is Level.WARNING:
            parts.append("warning")
        if self.field:
            parts.append(self.field)
        text = ": ".join(parts + [self.message])
        return f"{text} ({self.hint})" if self.hint else text

    def as_json(self) -> dict:
        return {
            "level": self.level.value,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


class MlgenError(Exception):
    """A failure the user can act on. Exit code 1 unless a subclass says otherwise."""

    exit_code = 1

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(p.render() for p in self.problems))


class SpecError(MlgenError):
    """The spec (or an overlay) is not valid."""


class RenderError(MlgenError):
    """A template produced output that does not parse, or a target cannot represent the spec."""


class ConflictError(MlgenError):
    """Writing would overwrite files a person edited, or the output folder is not safe to write."""


class DriftError(MlgenError):
    """`--check` found that rendering would change the output."""


class UsageError(MlgenError):
    exit_code = 2


def field_path(parts: tuple | list) -> str:
    """("model", "inputs", 0, "shape") -> "model.inputs[0].shape"."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
