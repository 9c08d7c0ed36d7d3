"""fit → render → parse back: one target's files for one ServiceModel, all in memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mlgen import targets
from mlgen.errors import Level, Problem, RenderError
from mlgen.render import RenderedFile, Renderer, check_files
from mlgen.spec import ServiceModel


@dataclass(frozen=True)
class TargetPlan:
    target: str
    files: list[RenderedFile]
    warnings: tuple[Problem, ...]


def plan_target(model: ServiceModel, name: str, renderer: Renderer) -> TargetPlan:
    target = targets.get(name)
    fitness = target.fit(model)
    errors = [p for p in fitness if p.level is Level.ERROR]
    if errors:
        raise RenderError(errors)
    files = sorted(target.plan(model, target_renderer(renderer, target)), key=lambda f: f.path)
    duplicates = sorted(path for path, count in Counter(f.path for f in files).items() if count > 1)
    if duplicates:
        raise RenderError(Problem(f"target {name} planned {', '.join(duplicates)} twice"))
    return TargetPlan(name, files, tuple(p for p in fitness if p.level is Level.WARNING))


def target_renderer(renderer: Renderer, target: targets.Target) -> Renderer:
    """The renderer `target`'s plan gets: the core filters plus its own, with its Jinja options."""
    return renderer.for_target(target.name, target.filters, target.jinja_options, target.templates)


def parse_back(plan: TargetPlan, only: set[str] | None = None) -> None:
    """Raise when a rendered structured file does not parse. `only` limits the check to files
    that will be written: unchanged ones were checked when they were first written."""
    files = plan.files if only is None else [f for f in plan.files if f.path in only]
    problems = check_files(files, plan.target, targets.get(plan.target).checks)
    if problems:
        raise RenderError(problems)
