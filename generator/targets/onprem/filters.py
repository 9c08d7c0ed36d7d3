"""Escaping filters for the syntaxes of a Linux host: systemd unit settings, environment files and
nginx. Every spec value that reaches those files passes through one of these."""

from __future__ import annotations

import re

from mlgen.render.filters import UnsafeValue

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNIT_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


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


FILTERS = {
    "systemd": systemd_text,
    "systemd_word": systemd_word,
    "envfile": envfile,
    "nginx": nginx_word,
}
