"""The registry: every target mlgen can render, in one table.

A target is a `Target` (see base.py). Built-in targets are imported only when used, so a render
for one target does not pay for the others; third-party targets register through the entry-point
group `mlgen.targets` and appear here beside them.
"""

from __future__ import annotations

import functools
import importlib

from mlgen.errors import Problem, UsageError
from mlgen.targets.base import Target, TradeOff

__all__ = ["Target", "TradeOff", "available", "get", "resolve"]

BUILTIN: dict[str, str] = {
    "onprem": "mlgen.targets.onprem",
    "cloud": "mlgen.targets.cloud",
    "kubernetes": "mlgen.targets.kubernetes",
    "serverless": "mlgen.targets.serverless",
}


def available() -> list[str]:
    """Names of the targets that can be rendered: built-in ones that exist, then plugins."""
    names = [name for name, module in BUILTIN.items() if importlib.util.find_spec(module) is not None]
    return names + sorted(ep.name for ep in _plugins() if ep.name not in BUILTIN)


def get(name: str) -> Target:
    if name in BUILTIN and importlib.util.find_spec(BUILTIN[name]) is not None:
        return importlib.import_module(BUILTIN[name]).TARGET
    for ep in _plugins() if name not in BUILTIN else ():
        if ep.name == name:
            target = ep.load()
            if not isinstance(target, Target):
                raise UsageError(Problem(f"plugin target {name!r} ({ep.value}) is not a mlgen.targets.base.Target"))
            return target
    raise UsageError(Problem(f"unknown target {name!r}", hint=f"choose from: {', '.join(available())}, or all"))


def resolve(selection: str) -> list[str]:
    """`onprem,kubernetes` or `all` → target names, in registry order, checked."""
    if selection == "all":
        return available()
    names = [part.strip() for part in selection.split(",") if part.strip()]
    for name in names:
        get(name)
    return list(dict.fromkeys(names))


@functools.cache
def _plugins() -> tuple:
    from importlib.metadata import entry_points  # scanning installed packages costs ~10 ms

    return tuple(entry_points(group="mlgen.targets"))
