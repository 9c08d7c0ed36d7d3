"""Parse-back for the unit files a host bundle carries (systemd units, Quadlet units): every line
is a section header, a `Key=value` setting, a comment or blank, or continues the line above."""

from __future__ import annotations

import re

from mlgen.errors import Problem

_UNIT_LINE = re.compile(r"^(\[[A-Za-z0-9 ._-]+\]|[A-Za-z][A-Za-z0-9]*=.*|[#;].*|)$")
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".container", ".network", ".volume", ".target", ".path")


def unit_problems(display: str, content: bytes) -> list[Problem]:
    problems = []
    continued = False
    for number, line in enumerate(content.decode("utf-8").split("\n"), 1):
        if not continued and not _UNIT_LINE.match(line):
            problems.append(Problem(f"not a unit-file line: {line[:60]!r}", display, number,
                                    hint="a template bug: please report it with the spec"))
        continued = line.endswith("\\") and not line.startswith(("#", ";"))
    return problems


CHECKS = {suffix: unit_problems for suffix in UNIT_SUFFIXES}
