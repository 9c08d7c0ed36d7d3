"""The command line: parse arguments, call the library, print. Nothing else lives here.

Exit codes: 0 ok; 1 invalid spec, failed check, conflict or drift; 2 usage error. Results go to
stdout, problems to stderr; `--format json` prints one JSON document on stdout for machines.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import click

from mlgen import __version__
from mlgen.errors import Level, MlgenError

# A click.Path looks its name up in the message catalogues when it is made (gettext: a few stats
# each); the commands share one of each kind rather than making one per option.
PATH = click.Path(path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      help="text for people, json for machines.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mlgen")
@click.option("--debug", is_flag=True, help="Show a traceback for unexpected failures.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Render one model-serving spec into on-prem, cloud VM, Kubernetes and serverless deployments."""
    ctx.obj = {"debug": debug}


class Quantity(click.ParamType):
    """A size as the spec writes one: bytes, or with a unit (500Mi, 2Gi, 1.5G)."""

    name = "QUANTITY"

    def convert(self, value, param, ctx) -> int:
        import re

        from mlgen.spec.model import quantity_bytes

        if isinstance(value, int):
            return value
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?(K|M|G|T|Ki|Mi|Gi|Ti)?", value):
            self.fail(f"{value!r} is not a size (bytes, or with a unit: 500Mi, 2Gi)", param, ctx)
        return quantity_bytes(value)


def spec_inputs(command):
    """--overlay, --set and --model-size, shared by every command that reads specs; the command
    gets them as one `inputs` (jobs.SpecInputs)."""
    import functools

    @functools.wraps(command)
    def with_inputs(*args, overlays, sets, model_size, **kwargs):
        from mlgen.spec.build import SpecInputs

        return command(*args, inputs=SpecInputs(tuple(overlays), tuple(sets), model_size), **kwargs)

    with_inputs = click.option("--model-size", type=Quantity(),
                               help="Size of a model.uri artifact (mlgen never downloads it to find out): "
                                    "the limits are checked against it instead of model.max_size.")(with_inputs)
    with_inputs = click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
                               help="Set one field (value typed as YAML), after overlays; repeatable.")(with_inputs)
    return click.option("--overlay", "overlays", multiple=True, type=EXISTING_FILE,
                        help="YAML file deep-merged onto the spec (lists replace); repeatable, applied in order.")(with_inputs)


JOBS = click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
                    help="Processes to use for many specs.")


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=PATH)
@click.option("--target", "-t", "selection", default="all", show_default=True,
              help="Target name, a comma-separated list (see `mlgen targets`), or all: the targets the spec "
                   "configures under `targets:` (every target when it names none).")
@click.option("--out", "-o", type=PATH, default=Path("deploy"), show_default=True,
              help="Output folder: OUT/<target>/ for one spec, OUT/<name>/<target>/ for several.")
@click.option("--force", is_flag=True, help="Overwrite or remove files edited since the last render.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if anything would change.")
@click.option("--dry-run", is_flag=True, help="Write nothing; list what would be created, updated and removed.")
@click.option("--templates", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of template overrides, searched before the built-in ones (DIR/<target>/...).")
@spec_inputs
@JOBS
@FORMAT
def render(specs, selection, out, force, check, dry_run, templates, inputs, jobs, fmt) -> None:
    """Render SPEC(s) (files, folders or globs) into deployment bundles."""
    from functools import partial

    from mlgen import jobs as batch

    if check and dry_run:
        raise click.UsageError("--check and --dry-run cannot be combined")
    files = batch.expand(specs)
    options = batch.RenderOptions(
        targets=_chosen_targets(selection), out=out, nested=len(files) > 1,
        mode="check" if check else "dry-run" if dry_run else "write", force=force, templates=templates, inputs=inputs)
    _Report(fmt).run(files, partial(batch.render_one, options=options), jobs)


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=PATH)
@spec_inputs
@JOBS
@FORMAT
def validate(specs, inputs, jobs, fmt) -> None:
    """Check SPEC(s) against the schema and the files they name."""
    from functools import partial

    from mlgen import jobs as batch

    _Report(fmt).run(batch.expand(specs), partial(batch.validate_one, inputs=inputs), jobs)


@cli.command("plan")
@click.argument("specs", nargs=-1, required=True, type=PATH)
@click.option("--no-measure", is_flag=True, help="Skip loading the model to measure its load time, memory and time per request.")
@click.option("--rps", type=click.FloatRange(min=0, min_open=True),
              help="Average requests a second: price every target for this traffic.")
@click.option("--peak-rps", type=click.FloatRange(min=0, min_open=True),
              help="Requests a second the fleet must serve at peak [default: twice --rps].")
@click.option("--hours-per-day", type=click.FloatRange(0, 24, min_open=True), default=24.0, show_default=True,
              help="Hours a day with traffic (fleets shrink to their minimum the rest).")
@click.option("--request-ms", type=click.FloatRange(min=0, min_open=True),
              help="Time of one prediction on one core, instead of the measured one.")
@click.option("--free-tier", is_flag=True, help="Subtract the providers' monthly free tiers (shared by the whole account).")
@click.option("--prices", type=EXISTING_FILE,
              help="YAML file of prices (and CPU factors) that replace or extend the built-in table.")
@click.option("--node-price", type=click.FloatRange(min=0), help="Kubernetes: USD an hour for one node.")
@click.option("--node-cpu", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="Kubernetes: vCPUs of one node.")
@click.option("--node-memory", type=click.FloatRange(min=0, min_open=True), default=16.0, show_default=True,
              help="Kubernetes: GiB of memory of one node.")
@click.option("--hardware-cost", type=click.FloatRange(min=0), help="On-prem: USD for the host(s).")
@click.option("--amortise-months", type=click.IntRange(min=1), default=36, show_default=True,
              help="On-prem: months the hardware is paid over.")
@click.option("--power-watts", type=click.FloatRange(min=0), default=0.0, help="On-prem: average draw.")
@click.option("--power-price", type=click.FloatRange(min=0), default=0.0, help="On-prem: USD per kWh.")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), hidden=True,
              help="The date the price table's age is judged against (reproducible runs).")
@spec_inputs
@FORMAT
def plan_command(specs, no_measure, rps, peak_rps, hours_per_day, request_ms, free_tier, prices, node_price, node_cpu,
                 node_memory, hardware_cost, amortise_months, power_watts, power_price, today, inputs, fmt) -> None:
    """Which target fits SPEC(s), with evidence: limits, bundle size, measured load time and memory;
    with --rps, what each target costs a month and where functions stop being cheaper."""
    from mlgen import jobs as batch
    from mlgen.advisor import assess, render_table

    cost = None
    if rps is not None:
        from mlgen.pricing import CostRequest, Host, Inputs, Node, Traffic

        if peak_rps is not None and peak_rps < rps:
            raise click.UsageError("--peak-rps is below --rps")
        costed = Inputs(node=Node(node_price, node_cpu, node_memory) if node_price is not None else None,
                        host=Host(hardware_cost, amortise_months, power_watts, power_price)
                        if hardware_cost is not None else None)
        cost = CostRequest(Traffic(rps, peak_rps or 2 * rps, hours_per_day, free_tier), prices, costed, request_ms,
                           **({"today": today.date()} if today else {}))
    failed = 0
    results = []
    for spec in batch.expand(specs):
        try:
            assessment = assess(spec, inputs, measure=not no_measure, cost=cost)
        except MlgenError as error:
            failed = max(failed, error.exit_code)
            for problem in error.problems:
                click.echo(click.style(problem.render(), fg="red"), err=True)
            continue
        results.append(assessment.as_json())
        if fmt == "text":
            click.echo(render_table(assessment))
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    sys.exit(failed)


@cli.command()
@click.argument("spec", type=PATH)
@spec_inputs
def lock(spec, inputs) -> None:
    """Resolve SPEC's requirements (and the runtime's own) for every platform it deploys to, with
    hashes, into SPEC.lock.json beside it; bundles then install from it with --require-hashes."""
    from mlgen.lock.resolve import lock_document, write_lock
    from mlgen.plan import deployed_platforms
    model = inputs.load(spec)
    platforms = deployed_platforms(model)
    if not platforms:
        raise click.UsageError(f"{spec} configures no target that installs Python packages (see `mlgen targets`)")
    document = lock_document(platforms, progress=lambda line: click.echo(line, err=True))
    path = write_lock(Path(spec), document)
    for label, entry in document["platforms"].items():
        size = sum(max((f["size"] for f in p["files"]), default=0) for p in entry["packages"]) / 1e6
        click.echo(f"{label:<16} {entry['python']:<6} {entry['tag']:<24} {len(entry['packages']):>3} packages, {size:.1f} MB of wheels")
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("spec", type=PATH)
@click.option("--target", "-t", "selection", default="all", show_default=True,
              help="Target name, a comma-separated list, or all (the targets the spec configures).")
@click.option("--model-file", type=EXISTING_FILE,
              help="A local copy of the model.uri artifact (checked against model.sha256) for the bundles' model "
                   "cache; without it each bundle fetches the model with this environment's credentials.")
@spec_inputs
@FORMAT
def verify(spec, selection, model_file, inputs, fmt) -> None:
    """Build each target's environment from the lock, start the bundle as its platform would, send
    the spec's examples and compare the answers. Exit 1 when any target fails."""
    from mlgen import targets
    from mlgen.verify import FAILED, report, verify as run

    chosen = [] if selection == "all" else targets.resolve(selection)
    results = run(spec, chosen, inputs, model_file=model_file,
                  progress=(lambda line: click.echo(line, err=True)) if fmt == "text" else (lambda line: None))
    if fmt == "json":
        click.echo(json.dumps([r.as_json() for r in results], indent=2, ensure_ascii=False))
    else:
        click.echo(report(results))
    sys.exit(1 if any(r.status == FAILED for r in results) or not results else 0)


@cli.command()
@click.argument("spec", type=PATH)
@click.argument("field")
@spec_inputs
@FORMAT
def explain(spec, field, inputs, fmt) -> None:
    """Print FIELD's final value in SPEC and where it came from (default, base, overlay, --set)."""
    from mlgen.spec.build import load_merged
    from mlgen.spec.overlay import origin, parse_path
    from mlgen.spec.validate import schema_problems, with_defaults

    from mlgen.errors import SpecError

    data, sources = load_merged(spec, inputs.overlays, inputs.sets)
    problems = schema_problems(data, sources)
    if problems:
        raise SpecError(problems)
    path = parse_path(field)
    value: object = with_defaults(data)
    for part in path:
        try:
            value = value[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            raise click.UsageError(f"{field} is not a field of this spec (see `mlgen schema`)") from None
    source = origin(sources, path, str(spec))
    if fmt == "json":
        click.echo(json.dumps({"field": field, "value": value, "from": source}, ensure_ascii=False))
    else:
        click.echo(f"{field} = {json.dumps(value, ensure_ascii=False)}")
        click.echo(f"  from {source}")


@cli.command()
@click.argument("spec", type=PATH)
@click.option("--target", "-t", "selection", required=True,
              help="Target name, a comma-separated list, or all (the targets the spec configures).")
@click.option("--out", "-o", type=PATH, default=Path("deploy"), show_default=True)
@spec_inputs
def diff(spec, selection, out, inputs) -> None:
    """Show the unified diff between OUT and what would be rendered (exit 1 when they differ)."""
    from mlgen import jobs as batch

    options = batch.RenderOptions(targets=_chosen_targets(selection), out=out, nested=False, mode="check",
                                  inputs=inputs)
    outcome = batch.render_one(spec, options)
    for record in outcome.records:
        for text in record.get("diffs", {}).values():
            click.echo(text, nl=False)
        for path in record.get("removed", []):
            click.echo(f"--- a/{path}\n+++ /dev/null (removed)")
    problems = [p for p in outcome.problems if not p.message.endswith("is out of date")]
    for problem in problems:
        click.echo(click.style(problem.render(), fg="red"), err=True)
    sys.exit(outcome.exit_code)


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--name", help="Service name (a DNS-1123 label; default: from the folder's name).")
@click.option("--format", "model_format", type=click.Choice(["sklearn", "onnx", "python"]), help="Model format [sklearn].")
@click.option("--description", help="One line on what the model does.")
@click.option("--yes", "-y", is_flag=True, help="Take the defaults without asking.")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
def init(folder, name, model_format, description, yes, force) -> None:
    """Scaffold a model-serving repository in FOLDER (spec, handlers, demo model, tests, CI)."""
    from mlgen.scaffold import plan_scaffold, service_name, write_scaffold

    ask = not yes and sys.stdin.isatty()
    name = name or (click.prompt("Service name", default=service_name(folder)) if ask else service_name(folder))
    model_format = model_format or (click.prompt("Model format", type=click.Choice(["sklearn", "onnx", "python"]),
                                                 default="sklearn") if ask else "sklearn")
    description = description or (click.prompt("Description", default=f"The {name} model service.") if ask
                                   else f"The {name} model service.")
    write_scaffold(plan_scaffold(name, model_format, description), folder, force=force)
    click.echo(f"created {folder}/: next, cd {folder} && mlgen serve spec.yaml")


@cli.command()
@click.argument("spec", type=PATH)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), help="Port (default: runtime.port from the spec).")
@click.option("--stage", type=click.Choice(["all", "preprocess", "predict", "postprocess", "gateway"]), default="all",
              show_default=True, help="Which part of the pipeline this process serves.")
def serve(spec, host, port, stage) -> None:
    """Serve SPEC locally with the same runtime and app/ folder every bundle carries."""
    from mlgen.serve import serve_spec
    from mlgen.spec import load_spec

    sys.exit(serve_spec(load_spec(spec), host=host, port=port, stage=stage))


@cli.command("targets")
@FORMAT
def list_targets(fmt) -> None:
    """List the targets (and their providers) with what each is for."""
    from mlgen import targets

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
    from mlgen.resources import schema_path

    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


class _Report:
    """Prints outcomes as they arrive, then problems and a summary; picks the exit code."""

    def __init__(self, fmt: str):
        self.fmt = fmt

    def run(self, specs: list[Path], work, jobs: int) -> None:
        from mlgen import jobs as batch

        outcomes = batch.run(specs, work, jobs)
        quiet = self.fmt == "json" or (len(specs) > 20 and sys.stderr.isatty())
        if quiet and self.fmt == "text":
            with click.progressbar(outcomes, length=len(specs), label="rendering", file=sys.stderr) as bar:
                outcomes = list(bar)
        collected = []
        for outcome in outcomes:
            collected.append(outcome)
            if not quiet:
                self._print(outcome)
        self._finish(collected, quiet)

    def _print(self, outcome) -> None:
        for record in outcome.records:
            if "target" not in record:
                if record["ok"]:
                    click.echo(f"{record['spec']}: valid ({record['name']} {record['version']})")
                continue
            if not record["ok"]:  # its problems are printed below
                continue
            verb = "" if record["mode"] == "write" else "would "
            if not (record["created"] or record["updated"] or record["removed"]):
                click.echo(f"{record['out']}: up to date ({record['unchanged']} files)")
                continue
            click.echo(f"{record['out']}: {verb}create {len(record['created'])}, {verb}update {len(record['updated'])}, "
                       f"{verb}remove {len(record['removed'])}")
            for path in record["restored"]:
                click.echo(f"  {path} was deleted since the last render: {verb}restore it", err=True)
            if record["mode"] != "write":
                for sign, key in (("+", "created"), ("~", "updated"), ("-", "removed")):
                    for path in record[key]:
                        click.echo(f"  {sign} {path}")
            for text in record["diffs"].values():
                click.echo(_short(text), nl=False)
        for problem in outcome.problems:
            colour = "red" if problem.level is Level.ERROR else "yellow"
            click.echo(click.style(problem.render(), fg=colour), err=True)

    def _finish(self, outcomes: list, quiet: bool) -> None:
        failed = [o for o in outcomes if o.exit_code]
        if self.fmt == "json":
            records = [{k: v for k, v in r.items() if k != "diffs"} for o in outcomes for r in o.records]
            problems = [p.as_json() for o in outcomes for p in o.problems]
            click.echo(json.dumps({"ok": not failed, "results": records, "problems": problems}, indent=2, ensure_ascii=False))
        elif quiet:
            for outcome in failed:
                self._print(outcome)
        if self.fmt == "text" and len(outcomes) > 1:
            click.echo(f"{len(outcomes)} specs: {len(outcomes) - len(failed)} ok, {len(failed)} failed", err=bool(failed))
        if failed:
            sys.exit(max(o.exit_code for o in failed))


def _short(diff: str, limit: int = 40) -> str:
    lines = diff.splitlines(True)
    if len(lines) <= limit:
        return diff
    return "".join(lines[:limit]) + f"  ... {len(lines) - limit} more diff lines\n"


def _chosen_targets(selection: str) -> tuple[str, ...]:
    """`all`: every target each spec configures under `targets:` (every target when it names none),
    so a spec written for one host is not rendered, and refused, for a cloud it never meant."""
    from mlgen import targets

    return () if selection == "all" else tuple(targets.resolve(selection))


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False, prog_name="mlgen")
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
    finally:
        # The process ends here. Frozen, the objects it made are not traversed again by the cycle
        # collections of interpreter exit (~10 ms after a render); their memory goes with the process.
        gc.freeze()
