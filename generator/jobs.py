"""One spec's work as a value: render or validate a spec file and return what happened (records
and problems), never raising for the user's mistakes. The CLI runs these for many specs, in one
process or several (`--jobs`), and one failing spec does not stop the others."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mlgen.errors import DriftError, MlgenError, Problem, UsageError
from mlgen.spec.build import SpecInputs


@dataclass(frozen=True)
class RenderOptions:
    """What `mlgen render` (and `mlgen diff`) asks of each spec."""

    targets: tuple[str, ...]  # empty: the targets each spec configures (`--target all`)
    out: Path
    nested: bool  # OUT/<name>/<target> (several specs) instead of OUT/<target>
    mode: str = "write"  # write | check | dry-run
    force: bool = False
    templates: Path | None = None
    inputs: SpecInputs = SpecInputs()


@dataclass
class Outcome:
    """What happened to one spec: a record per target (or one for validate), its problems and its exit code."""

    spec: str
    records: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    exit_code: int = 0


def expand(arguments: Iterable[Path]) -> list[Path]:
    """Spec arguments as files: a folder stands for every spec under it, a quoted glob for its
    matches; anything else is passed on as given (a missing file is reported by the loader)."""
    found: list[Path] = []
    for argument in arguments:
        text = str(argument)
        if argument.is_dir():
            specs = _specs_under(argument)
            if not specs:  # else `mlgen render empty/` would do nothing and exit 0
                raise UsageError(Problem(f"{text}: no spec under this folder (a YAML file with `kind: ModelService`)"))
            found.extend(specs)
        elif not argument.exists() and glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise UsageError(Problem(f"{text}: no file matches this pattern"))
            found.extend(Path(match) for match in matches)
        else:
            found.append(argument)
    return list(dict.fromkeys(found))


def _specs_under(folder: Path) -> list[Path]:
    specs = []
    for path in sorted(folder.rglob("*.y*ml")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            continue
        if "kind: ModelService" in head:
            specs.append(path)
    return specs


def run(specs: list[Path], work: Callable[[Path], Outcome], jobs: int = 1) -> Iterator[Outcome]:
    """Outcomes in the order of `specs`; with jobs > 1, computed in that many processes."""
    if jobs <= 1 or len(specs) < 2:
        yield from map(work, specs)
        return
    from concurrent.futures import ProcessPoolExecutor  # ~15 ms to import; only for --jobs

    with ProcessPoolExecutor(max_workers=min(jobs, len(specs), os.cpu_count() or 1)) as pool:
        yield from pool.map(work, specs, chunksize=max(1, len(specs) // (jobs * 8)))


def validate_one(spec: Path, inputs: SpecInputs) -> Outcome:
    outcome = Outcome(str(spec))
    with _collect(outcome):
        model = inputs.load(spec)
        outcome.problems.extend(model.warnings)
        outcome.records.append({"spec": str(spec), "ok": True, "name": model.name, "version": model.version})
    return outcome


def render_one(spec: Path, options: RenderOptions) -> Outcome:
    from mlgen import output
    from mlgen.plan import parse_back, plan_target
    from mlgen.render import Renderer

    outcome = Outcome(str(spec))
    with _collect(outcome):
        model = options.inputs.load(spec)
        outcome.problems.extend(model.warnings)
        renderer = Renderer(options.templates)
    if outcome.exit_code:
        return outcome
    from mlgen.plan import configured_targets

    for name in options.targets or configured_targets(model):
        dest = options.out / model.name / name if options.nested else options.out / name
        # Each target on its own: one that does not fit does not hide the next one's problems.
        with _collect(outcome, {"target": name, "out": str(dest)}):
            plan = plan_target(model, name, renderer)
            # A warning about the spec itself (no lock, say) is printed once, not once per target.
            outcome.problems.extend(p for p in plan.warnings if p not in outcome.problems)
            check_changed = lambda changes, plan=plan: parse_back(plan, only={*changes.created, *changes.updated})
            if options.mode == "write":
                changes = output.write(plan.files, dest, model.spec_digest, force=options.force, before_write=check_changed)
            else:
                changes = output.compare(plan.files, dest, model.spec_digest, want_diffs=options.mode == "check")
                check_changed(changes)
            outcome.records.append({"spec": str(spec), "target": name, "out": str(dest), "ok": True,
                                    "mode": options.mode, **changes.as_json(), "diffs": changes.diffs})
            if options.mode == "check" and changes.any:
                raise DriftError(Problem(f"{dest} is out of date", str(spec), hint="run the same mlgen render without --check"))
    return outcome


class _collect:
    """Turns an MlgenError into the outcome's problems and exit code (and a failed record, with
    `record`'s fields)."""

    def __init__(self, outcome: Outcome, record: dict | None = None):
        self.outcome = outcome
        self.record = record or {}

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback) -> bool:
        if isinstance(error, MlgenError):
            # A problem of the spec itself (a stale lock, say) comes once, not once per target.
            self.outcome.problems.extend(p for p in error.problems if p not in self.outcome.problems)
            self.outcome.exit_code = max(self.outcome.exit_code, error.exit_code)
            self.outcome.records.append({"spec": self.outcome.spec, **self.record, "ok": False})
            return True
        return False
