#!/usr/bin/env python3
"""How fast mlgen renders, against the floor any CLI on its libraries pays.

Measured side by side in one run (whole processes, median of N):
  floor        python -c "import yaml, jinja2, click"
  validate     mlgen validate SPEC, for every example (with the checks of the model file and handlers)
  cold one     mlgen render examples/iris/spec.yaml --target onprem (into an empty folder)
  cold render  mlgen render examples/iris/spec.yaml --target all   (into an empty folder)
  warm render  the same, output already up to date
  batch        one process re-rendering 1000 generated specs (--target onprem) whose output is
               up to date, and the same with --jobs 2
Goals: validate and a cold render of one target within 1.5x the floor (issue 17); the 1000-spec
batch under 2 s (issue 2). Run it on a quiet machine; repeat it to see the spread.

Usage: python bench/render_speed.py [--runs 7] [--specs 1000]   (--specs 0 leaves the batch out)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"


def timed(command: list[str], runs: int, before=None) -> float:
    samples = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_specs(folder: Path, count: int) -> list[Path]:
    shutil.copytree(IRIS / "model", folder / "model")
    text = (IRIS / "spec.yaml").read_text()
    specs = []
    for index in range(count):
        spec = folder / f"svc{index:04d}.yaml"
        spec.write_text(text.replace("name: iris", f"name: svc{index:04d}").replace("port: 8080", f"port: {9000 + index}"))
        specs.append(spec)
    return specs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--specs", type=int, default=1000)
    args = parser.parse_args()
    mlgen = [sys.executable, "-m", "mlgen"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "out"
        render = mlgen + ["render", str(IRIS / "spec.yaml"), "--target", "all", "-o", str(out)]
        # As installed from a wheel: pip compiles .py to bytecode at install (this checkout may run
        # with PYTHONDONTWRITEBYTECODE, which would make every run recompile mlgen's own modules).
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "generator")], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(render, check=True, stdout=subprocess.DEVNULL)  # warm the template bytecode cache
        floor = timed([sys.executable, "-c", "import yaml, jinja2, click"], args.runs)
        validate = {spec.parent.name: timed(mlgen + ["validate", str(spec)], args.runs)
                    for spec in sorted((ROOT / "examples").glob("*/spec.yaml"))}
        one = [*render[:6], "onprem", *render[7:]]
        cold_one = timed(one, args.runs, before=lambda: shutil.rmtree(out, ignore_errors=True))
        cold = timed(render, args.runs, before=lambda: shutil.rmtree(out, ignore_errors=True))
        warm = timed(render, args.runs)
        batch_time = batch_jobs = float("nan")  # --specs 0: no batch
        if args.specs:
            specs = make_specs(tmp / "specs", args.specs)
            batch = mlgen + ["render", *map(str, specs), "--target", "onprem", "-o", str(tmp / "batch")]
            subprocess.run(batch, check=True, stdout=subprocess.DEVNULL)
            batch_time = timed(batch, max(1, args.runs // 3))
            batch_jobs = timed(batch + ["--jobs", "2"], max(1, args.runs // 3))
    print(f"{'measure':<44}{'seconds':>9}{'x floor':>9}")
    rows = [("floor: import yaml, jinja2, click", floor)]
    rows += [(f"validate {name}", value) for name, value in validate.items()]
    rows += [("cold render iris --target onprem", cold_one)]
    for label, value in [*rows, ("cold render iris --target all", cold),
                         ("warm render (up to date)", warm),
                         (f"batch: {args.specs} specs up to date, one process", batch_time),
                         (f"batch: {args.specs} specs up to date, --jobs 2", batch_jobs)]:
        print(f"{label:<44}{value:>9.3f}{value / floor:>9.2f}")
    print(f"goal: validate <= 1.5x floor: {'met' if max(validate.values()) <= 1.5 * floor else 'NOT met'}; "
          f"one target <= 1.5x floor: {'met' if cold_one <= 1.5 * floor else 'NOT met'}; "
          f"all targets <= 1.5x floor: {'met' if cold <= 1.5 * floor else 'NOT met'}; "
          f"batch < 2 s: {'met' if batch_time < 2 else 'NOT met'} (one process), "
          f"{'met' if batch_jobs < 2 else 'NOT met'} (--jobs 2)")


if __name__ == "__main__":
    main()
