"""Read a YAML spec into plain data while remembering where every value came from.

PyYAML alone loses positions, accepts duplicate keys silently and expands alias bombs without
limit; this module composes the node graph (C parser when available) and builds the data itself,
so each of those becomes an error that points at a line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlgen.errors import Problem, SpecError, field_path

MAX_SPEC_BYTES = 1024 * 1024
MAX_NODES = 100_000  # far above any real spec; an alias bomb expands past it at once

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_LEADING_TAB = re.compile(r"^[ ]*\t", re.MULTILINE)


@dataclass(frozen=True)
class Position:
    """A place in a file: 1-based line and column."""

    file: str
    line: int
    column: int


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a loaded document stands in its file."""

    values: dict[tuple, Position] = field(default_factory=dict)
    keys: dict[tuple, Position] = field(default_factory=dict)
    # Plain (unquoted) scalars that YAML resolved to something other than a string: the text as
    # written, so "expected a string" can say `quote it: "no"` (the Norway problem).
    plain_non_strings: dict[tuple, str] = field(default_factory=dict)

    def locate(self, path: tuple, *, key: bool = False) -> Position | None:
        """The closest known position for `path`, walking up to its parents."""
        table = self.keys if key else self.values
        path = tuple(path)
        while True:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: tuple, message: str, *, hint: str | None = None, key: bool = False) -> Problem:
        where = self.locate(path, key=key)
        return Problem(
            message,
            file=where.file if where else None,
            line=where.line if where else None,
            column=where.column if where else None,
            field=field_path(path) or None,
            hint=hint,
        )

    def merge(self, other: "SourceMap") -> None:
        self.values.update(other.values)
        self.keys.update(other.keys)
        self.plain_non_strings.update(other.plain_non_strings)


def load_yaml(path: Path, display: str | None = None) -> tuple[object, SourceMap, bytes]:
    """Parse one YAML document from `path`. Returns (data, source map, raw bytes)."""
    name = display or str(path)
    raw = _read(path, name)
    text = _decode(raw, name)
    tab = _LEADING_TAB.search(text)
    if tab:
        line = text.count("\n", 0, tab.start()) + 1
        column = tab.end() - tab.start()
        raise SpecError(Problem("a tab is used for indentation", name, line, column,
                                hint="YAML indents with spaces only"))
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SpecError(Problem(f"YAML syntax error: {message}", name,
                                mark.line + 1 if mark else None, mark.column + 1 if mark else None)) from None
    except yaml.YAMLError as exc:
        raise SpecError(Problem(f"YAML syntax error: {exc}", name)) from None
    if node is None:
        raise SpecError(Problem("the file is empty", name, hint="start from `mlgen init` or examples/iris/spec.yaml"))
    builder = _Builder(name)
    data = builder.build(node, ())
    if builder.problems:
        raise SpecError(builder.problems)
    return data, builder.sources, raw


def _read(path: Path, name: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(Problem("no such file", name)) from None
    except IsADirectoryError:
        raise SpecError(Problem("is a folder, not a spec file", name)) from None
    except OSError as exc:
        raise SpecError(Problem(f"cannot be read: {exc.strerror}", name)) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(Problem(f"the file is larger than {MAX_SPEC_BYTES // 1024} KiB", name,
                                hint="a spec describes a service; data belongs in files it points to"))
    return raw


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(Problem(f"byte 0x{raw[exc.start]:02x} is not valid UTF-8", name, line, column,
                                hint="save the file as UTF-8")) from None
    return text.removeprefix("\ufeff")


class _Builder:
    """Turns a composed node graph into dicts, lists and scalars, recording positions."""

    def __init__(self, name: str):
        self.name = name
        self.sources = SourceMap()
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._nodes = 0

    def _position(self, node: yaml.Node) -> Position:
        return Position(self.name, node.start_mark.line + 1, node.start_mark.column + 1)

    def _fail(self, node: yaml.Node, path: tuple, message: str, hint: str | None = None) -> None:
        where = self._position(node)
        self.problems.append(Problem(message, where.file, where.line, where.column,
                                     field_path(path) or None, hint))

    def build(self, node: yaml.Node, path: tuple) -> object:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._fail(node, path, f"the document expands to more than {MAX_NODES} values",
                       "aliases (*name) may multiply content; write the values out")
            raise SpecError(self.problems[-1:])
        self.sources.values[path] = self._position(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        value = self._constructor.construct_object(node)
        if not node.style and node.tag != _STR_TAG:  # plain style: None (Python parser) or "" (C parser)
            self.sources.plain_non_strings[path] = node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: tuple) -> dict:
        result: dict = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._fail(key_node, path, "merge keys (<<) are not supported", "write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                self._fail(key_node, path, f"key {shown!r} is not a string",
                           f'quote it: "{shown}"' if isinstance(key_node, yaml.ScalarNode) else None)
                continue
            key = key_node.value
            if key in seen:
                first = seen[key].start_mark
                self._fail(key_node, path + (key,), f"duplicate key {key!r}",
                           f"first defined at line {first.line + 1}")
                continue
            seen[key] = key_node
            self.sources.keys[path + (key,)] = self._position(key_node)
            result[key] = self.build(value_node, path + (key,))
        return result
