"""fit → render → parse back: one target's files for one ServiceModel, all in memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mlgen import targets
from mlgen.errors import Level, Problem, RenderError
from mlgen.lock import Platform, locked
from mlgen.render import RenderedFile, Renderer, check_files
from mlgen.spec import ServiceModel
from mlgen.spec.artifact_uri import access_problems
from mlgen.spec.distributions import project_name


@dataclass(frozen=True)
class TargetPlan:
    """One target's files for a spec, rendered and fitted, with the warnings to print."""

    target: str
    files: list[RenderedFile]
    warnings: tuple[Problem, ...]


def plan_target(model: ServiceModel, name: str, renderer: Renderer) -> TargetPlan:
    target = targets.get(name)
    fitness = (target.fit(model) + lock_problems(model, target) + fetch_problems(model, name)
               + security_problems(model, target) + rollout_problems(model, target))
    if not any(p.field == "resources.gpu" and p.level is Level.ERROR for p in fitness):
        fitness += gpu_wheel_problems(model)  # only where the target runs the GPU at all
    errors = [p for p in fitness if p.level is Level.ERROR]
    if errors:
        raise RenderError(errors)
    files = sorted(target.plan(model, target_renderer(renderer, target)), key=lambda f: f.path)
    duplicates = sorted(path for path, count in Counter(f.path for f in files).items() if count > 1)
    if duplicates:
        raise RenderError(Problem(f"target {name} planned {', '.join(duplicates)} twice"))
    return TargetPlan(name, files, tuple(p for p in fitness if p.level is Level.WARNING))


def security_problems(model: ServiceModel, target: targets.Target) -> list[Problem]:
    """A model anyone can call is a warning that says who; runtime.admin_port an error on a target
    whose probes and health checks would still ask the public port."""
    problems = []
    callers = target.open_to(model) if target.open_to and model.security.public else None
    if callers:
        problems.append(model.problem(("security",), f"security.auth is none: {callers} can call the model ({target.name})",
                                      hint=f"set security: {{auth: api_key, api_keys: [{{secret: {model.name}-api-keys}}]}}, or auth: jwt",
                                      warning=True))
    if model.runtime.admin_port is not None and not target.admin_port:
        able = [name for name in targets.available() if targets.get(name).admin_port]
        problems.append(model.problem(("runtime", "admin_port"), f"the {target.name} target does not route its probes and "
                                      "health checks to runtime.admin_port yet",
                                      hint=f"targets that do: {', '.join(able)}" if able else
                                      "remove it for this target (mlgen serve and the runtime itself honour it)"))
    return problems


# Targets whose bundles give the service what a fetched model needs (a writable cache, read access
# for the platform's identity, a startup allowance for the download). Every built-in target now;
# a target left out (a plugin) refuses a `model.uri` spec rather than rendering a bundle that
# cannot fetch its model.
FETCHING_TARGETS: frozenset[str] = frozenset({"cloud", "kubernetes", "onprem", "serverless"})


def fetch_problems(model: ServiceModel, name: str) -> list[Problem]:
    if not model.model.fetched:
        return []
    if name not in FETCHING_TARGETS:
        return [model.problem(("model", "uri"), f"target {name} cannot deploy a model fetched from model.uri yet",
                              hint="ship the model in the bundle with model.path (the runtime itself fetches, "
                                   "verifies and caches model.uri: python -m mlgen_runtime serve)")]
    target = targets.get(name)
    if target.model_access:
        return target.model_access(model)
    return access_problems(model, name, model.target(name).get("provider"))


def rollout_problems(model: ServiceModel, target: targets.Target) -> list[Problem]:
    strategy = model.rollout.strategy
    if strategy in target.rollouts:
        return []
    able = [name for name in targets.available() if strategy in targets.get(name).rollouts]
    own = f"; {target.name} releases with {', '.join(target.rollouts)}" if len(target.rollouts) > 1 else ""
    return [model.problem(("rollout", "strategy"), f"the {target.name} target cannot release with {strategy}",
                          hint=(f"targets that can: {', '.join(able)}" if able else
                                "no target renders it yet: use all_at_once") + own)]


def gpu_wheel_problems(model: ServiceModel) -> list[Problem]:
    """A GPU bundle runs ONNX on onnxruntime-gpu (bundle.requirements); a user pin of the CPU
    onnxruntime would install the same `onnxruntime` package beside it, and whichever lands last
    wins: CUDA could silently go."""
    if model.resources.gpu <= 0 or model.model.format != "onnx":
        return []
    return [model.problem(("runtime", "requirements", index),
                          f"{requirement!r} is the CPU build; with resources.gpu the bundle installs onnxruntime-gpu, "
                          "and both install the same onnxruntime package",
                          hint=f"pin onnxruntime-gpu instead: {requirement.replace('onnxruntime', 'onnxruntime-gpu', 1)!r}")
            for index, requirement in enumerate(model.runtime.requirements)
            if project_name(requirement) == "onnxruntime"]


def lock_problems(model: ServiceModel, target: targets.Target) -> list[Problem]:
    """A stale lock is an error (the bundle would install something else than the spec asks
    for); no lock, or none for this target, a warning (the build is not reproducible)."""
    return list(locked(model, target.platform(model)).problems) if target.platform else []


def configured_targets(model: ServiceModel) -> list[str]:
    """The targets the spec itself sets under `targets:` (every target when it sets none)."""
    table = getattr(model.sources, "values", {})
    named = [name for name in targets.available() if ("targets", name) in table]
    return named or targets.available()


def deployed_platforms(model: ServiceModel) -> list[Platform]:
    """Each platform the spec deploys to: one per target it configures (with its provider)."""
    return [targets.get(name).platform(model) for name in configured_targets(model) if targets.get(name).platform]


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
