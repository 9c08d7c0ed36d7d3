"""The core escaping filters, one per output syntax every target writes (shell, YAML, JSON).
Every spec value reaches a file through one of these or through a target's own filters
(`Target.filters`, e.g. systemd and nginx for onprem), so a quote, newline, `$(…)` or `%` in a
value stays data in the file it lands in."""

from __future__ import annotations

import json
import re
import shlex

import orjson
import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class UnsafeValue(ValueError):
    """A value that cannot be written into a file of this syntax without changing its meaning."""


def shell(value: object) -> str:
    """One shell word, single-quoted where needed: safe inside bash scripts. Words with `=` are
    quoted too: bare, `6=x` reads as an indexed assignment inside `( … )` and `a=b` as an
    assignment at the start of a command (shellcheck SC2191)."""
    text = str(value)
    if "\x00" in text:
        raise UnsafeValue("a NUL character cannot appear in a shell script")
    quoted = shlex.quote(text)
    return f"'{text}'" if quoted == text and "=" in text else quoted


def yaml_value(value: object) -> str:
    """A YAML flow value on one line (strings always double-quoted, so `no`, `0x1F`, `*a`, `# x`
    stay strings); PyYAML writes the escapes its own and other YAML parsers read back exactly."""
    if isinstance(value, str):
        dumped = yaml.dump(value, Dumper=_Dumper, default_style='"', width=1 << 30, allow_unicode=True)
    else:
        dumped = yaml.dump(_plain(value), Dumper=_Dumper, default_flow_style=True, width=1 << 30,
                           allow_unicode=True, sort_keys=False)
    return dumped.removesuffix("\n...\n").rstrip("\n")


def yaml_block(value: object, indent: int = 0) -> str:
    """A YAML block (mapping or list) indented by `indent` spaces after its first line."""
    dumped = yaml.dump(_plain(value), Dumper=_Dumper, default_flow_style=False, width=1 << 30,
                       allow_unicode=True, sort_keys=False).rstrip("\n")
    return dumped.replace("\n", "\n" + " " * indent)


def pretty_json(value: object, *, ascii_only: bool = False) -> str:
    """The form of every JSON file mlgen writes: two-space indent, sorted keys. orjson, because
    json's indenting encoder is pure Python and was a quarter of a batch render. `ascii_only`
    escapes every non-ASCII character (as json's ensure_ascii does), for JSON that is embedded in
    YAML, where U+2028 and friends would read as line breaks."""
    text = orjson.dumps(_plain(value), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return _NON_ASCII.sub(_json_escape, text) if ascii_only else text


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _json_escape(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_value(value: object, indent: int | None = None) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, indent=indent, sort_keys=indent is not None)


def _plain(value: object) -> object:
    """Mapping proxies and tuples (the frozen ServiceModel) as dicts and lists for dumpers."""
    if hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


FILTERS = {
    "shell": shell,
    "yaml": yaml_value,
    "yaml_block": yaml_block,
    "json": json_value,
}
