"""User callables named `module:attr` in serving.json, and the context they may ask for.

Modules resolve against the folder holding serving.json (put on sys.path by the service). Whether a
callable takes the context is decided once here from its signature, never per request.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

from .config import ConfigError


@dataclass(frozen=True)
class RequestContext:
    """Second argument of handlers that declare one."""

    request_id: str
    parameters: dict = field(default_factory=dict)


def resolve(reference: str, where: str):
    module_name, _, attr_path = reference.partition(":")
    if not module_name or not attr_path:
        raise ConfigError(f"{where} {reference!r} must look like module:attribute")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where} {reference!r}: cannot import {module_name}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{where} {reference!r}: {module_name} has no attribute {attr_path}") from None
    if not callable(target):
        raise ConfigError(f"{where} {reference!r} is not callable")
    return target


def takes_context(function) -> bool:
    """True when `function` accepts a second positional argument (the RequestContext)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: call them with the inputs only
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def as_stage(reference: str, where: str):
    """A `module:function` pipeline step as `step(tensors, context) -> dict`."""
    function = resolve(reference, where)
    if takes_context(function):
        return function
    return lambda tensors, context: function(tensors)
