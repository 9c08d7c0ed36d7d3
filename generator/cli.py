"""The command line: parse arguments, call the library, print. Nothing else lives here.

Exit codes: 0 ok; 1 invalid spec, failed check, conflict or drift; 2 usage error. Results go to
stdout, problems to stderr; `--format json` prints one JSON document on stdout for machines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from generator import __version__
from generator.errors import DriftError, Level, MlgenError, Problem

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      help="text for people, json for machines.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mlgen")
@click.option("--debug", is_flag=True, help="Show a traceback for unexpected failures.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Render one model-serving spec into on-prem, cloud VM, Kubernetes and serverless deployments."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", "-t", "selection", default="all", show_default=True,
              help="Target name, a comma-separated list, or all (see `mlgen targets`).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("deploy"), show_default=True,
              help="Output folder: OUT/<target>/ for one spec, OUT/<name>/<target>/ for several.")
@click.option("--force", is_flag=True, help="Overwrite or remove files edited since the last render.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if anything would change.")
@click.option("--dry-run", is_flag=True, help="Write nothing; list what would be created, updated and removed.")
@click.option("--templates", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of template overrides, searched before the built-in ones (DIR/<target>/...).")
@FORMAT
def render(specs, selection, out, force, check, dry_run, templates, fmt) -> None:
    """Render SPEC(s) into deployment bundles."""
    from generator import output, targets
    from generator.plan import parse_back, plan_target
    from generator.render import Renderer
    from generator.spec import load_spec

    if check and dry_run:
        raise click.UsageError("--check and --dry-run cannot be combined")
    names = targets.resolve(selection)
    renderer = Renderer(templates)
    report = _Report(fmt)
    for spec in specs:
        with report.step(str(spec)):
            model = load_spec(spec)
            report.problems.extend(model.warnings)
            for name in names:
                dest = out / name if len(specs) == 1 else out / model.name / name
                plan = plan_target(model, name, renderer)
                report.problems.extend(plan.warnings)
                check_changed = lambda changes, plan=plan: parse_back(plan, only={*changes.created, *changes.updated})
                if check or dry_run:
                    changes = output.compare(plan.files, dest, model.spec_digest, want_diffs=check)
                    check_changed(changes)
                else:
                    changes = output.write(plan.files, dest, model.spec_digest, force=force, before_write=check_changed)
                report.result(str(spec), name, dest, changes, mode="check" if check else "dry-run" if dry_run else "write")
                if check and changes.any:
                    raise DriftError(Problem(f"{dest} is out of date", str(spec),
                                             hint="run the same mlgen render without --check"))
    report.finish()


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@FORMAT
def validate(specs, fmt) -> None:
    """Check SPEC(s) against the schema and the files they name."""
    from generator.spec import load_spec

    report = _Report(fmt)
    for spec in specs:
        with report.step(str(spec)):
            model = load_spec(spec)
            report.problems.extend(model.warnings)
            report.ok(str(spec), f"{spec}: valid ({model.name} {model.version})")
    report.finish()


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), help="Port (default: runtime.port from the spec).")
@click.option("--stage", type=click.Choice(["all", "preprocess", "predict", "postprocess", "gateway"]), default="all",
              show_default=True, help="Which part of the pipeline this process serves.")
def serve(spec, host, port, stage) -> None:
    """Serve SPEC locally with the same runtime and app/ folder every bundle carries."""
    from generator.serve import serve_spec
    from generator.spec import load_spec

    sys.exit(serve_spec(load_spec(spec), host=host, port=port, stage=stage))


@cli.command("targets")
@FORMAT
def list_targets(fmt) -> None:
    """List the targets (and their providers) with what each is for."""
    from generator import targets

    rows = []
    for name in targets.available():
        target = targets.get(name)
        rows.append({"target": name, "summary": target.summary, "providers": dict(target.providers)})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{click.style(row['target'], bold=True):<12} {row['summary']}")
        for provider, summary in row["providers"].items():
            click.echo(f"  {provider:<10} {summary}")


@cli.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors and CI)."""
    from generator.resources import schema_path

    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


class _Report:
    """Collects results and problems across specs: one failing spec does not stop the others."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.problems: list[Problem] = []
        self.results: list[dict] = []
        self.exit_code = 0

    def step(self, spec: str):
        report = self

        class _Step:
            def __enter__(self):
                return self

            def __exit__(self, kind, error, _tb):
                if isinstance(error, MlgenError):
                    report.problems.extend(error.problems)
                    report.exit_code = max(report.exit_code, error.exit_code)
                    report.results.append({"spec": spec, "ok": False})
                    return True
                return False

        return _Step()

    def ok(self, spec: str, line: str) -> None:
        self.results.append({"spec": spec, "ok": True})
        if self.fmt == "text":
            click.echo(line)

    def result(self, spec: str, target: str, dest: Path, changes, mode: str) -> None:
        self.results.append({"spec": spec, "target": target, "out": str(dest), "ok": True, "mode": mode, **changes.as_json()})
        if self.fmt != "text":
            return
        verb = {"write": "", "check": "would ", "dry-run": "would "}[mode]
        if not changes.any:
            click.echo(f"{dest}: up to date ({len(changes.unchanged)} files)")
            return
        counts = f"{verb}create {len(changes.created)}, {verb}update {len(changes.updated)}, {verb}remove {len(changes.removed)}"
        click.echo(f"{dest}: {counts}")
        if mode != "write":
            for sign, paths in (("+", changes.created), ("~", changes.updated), ("-", changes.removed)):
                for path in paths:
                    click.echo(f"  {sign} {path}")
        for diff in changes.diffs.values():
            click.echo(_short(diff), nl=False)

    def finish(self) -> None:
        errors = [p for p in self.problems if p.level is Level.ERROR]
        if self.fmt == "json":
            click.echo(json.dumps({"ok": not errors, "results": self.results,
                                   "problems": [p.as_json() for p in self.problems]}, indent=2, ensure_ascii=False))
        else:
            for problem in self.problems:
                colour = "red" if problem.level is Level.ERROR else "yellow"
                click.echo(click.style(problem.render(), fg=colour), err=True)
        if self.exit_code:
            sys.exit(self.exit_code)


def _short(diff: str, limit: int = 40) -> str:
    lines = diff.splitlines(True)
    if len(lines) <= limit:
        return diff
    return "".join(lines[:limit]) + f"  ... {len(lines) - limit} more diff lines\n"


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except MlgenError as exc:
        for problem in exc.problems:
            click.echo(click.style(problem.render(), fg="red"), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the one place an unexpected failure is turned into a message
        if debug:
            raise
        click.echo(f"mlgen: internal error: {type(exc).__name__}: {exc} (run again with --debug for a traceback)", err=True)
        sys.exit(1)
