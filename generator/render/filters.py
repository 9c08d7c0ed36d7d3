"""Escaping filters, one per output syntax. Every spec value reaches a file through one of these,
so a quote, newline, `$(…)` or `%` in a value stays data in the file it lands in."""

from __future__ import annotations

import json
import re
import shlex

import orjson
import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNIT_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


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


def systemd_text(value: object) -> str:
    """A free-text unit setting such as Description=: specifiers escaped; line breaks and
    control characters, which would end or corrupt the setting, become spaces."""
    return _UNIT_UNSAFE.sub(" ", str(value)).replace("%", "%%")


def systemd_word(value: object) -> str:
    """One quoted word for ExecStart= or Environment=: C-escapes, `%` specifiers and `$`
    expansion all neutralised (systemd.service(5), "Command lines")."""
    text = str(value)
    if "\x00" in text:
        raise UnsafeValue("a NUL character cannot appear in a unit file")
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
               .replace("\n", "\\n").replace("\t", "\\t"))
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'


def envfile(value: object) -> str:
    """A double-quoted value for a systemd EnvironmentFile= (and docker --env-file style readers
    that honour quotes). Inside double quotes systemd unescapes \\" \\\\ \\` \\$ and keeps newlines."""
    text = str(value)
    if _CONTROL.search(text):
        raise UnsafeValue("systemd refuses environment values with control characters other than tab and newline")
    escaped = re.sub(r'(["\\`$])', r"\\\1", text)
    return f'"{escaped}"'


_NGINX_SAFE = re.compile(r"[A-Za-z0-9._/:*@+\[\]-]+")


def nginx_word(value: object) -> str:
    """One bare nginx argument (a path, a host name, an address). nginx expands `$variables`
    even inside quotes and ends a directive at `;`, so anything beyond plain path and name
    characters is refused rather than escaped."""
    text = str(value)
    if not _NGINX_SAFE.fullmatch(text):
        raise UnsafeValue(f"{text!r} cannot be written into an nginx configuration: only letters, digits and ._/:*@+-[] are allowed")
    return text


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
    "systemd": systemd_text,
    "systemd_word": systemd_word,
    "envfile": envfile,
    "nginx": nginx_word,
}
