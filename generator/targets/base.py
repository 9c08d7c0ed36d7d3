"""What a target is: a name, what it is for, and two functions of the ServiceModel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from generator.errors import Problem
from generator.render import RenderedFile, Renderer
from generator.spec import ServiceModel


def _fits_always(model: ServiceModel) -> list[Problem]:
    return []


@dataclass(frozen=True)
class Target:
    name: str
    summary: str  # one line: what this target is for
    plan: Callable[[ServiceModel, Renderer], list[RenderedFile]]
    # Platform limits and lossy mappings: errors stop the render, warnings are printed.
    fit: Callable[[ServiceModel], list[Problem]] = _fits_always
    providers: dict[str, str] = field(default_factory=dict)  # provider → one line
