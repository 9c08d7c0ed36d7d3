#!/usr/bin/env python3
"""Import and load time of the serving runtime for a `model.path` spec, this tree against a
baseline commit, side by side: what a fetched model's code (model.uri) must not add to a service
whose model travels in the bundle.

Each tree renders the spec's app/ with its own generator (a worktree of the baseline commit), then
fresh interpreters alternate between the two: `import` of the server's modules (the ASGI app and
the service) and the service's load of the model, each timed from inside the process, so
interpreter start is not counted.

Usage: python bench/runtime_import.py [--baseline 8329c8c^] [--spec examples/iris/spec.yaml] [--runs 15]
A benchmark, not a test: it prints medians and the ratio; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, sys, time
start = time.perf_counter()
import mlgen_runtime.asgi, mlgen_runtime.service
imported = time.perf_counter()
from mlgen_runtime import load_service
load_service(sys.argv[1])
loaded = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported}))
"""


def render_app(tree: Path, spec: Path, out: Path) -> Path:
    """The spec's app/ as `tree`'s generator writes it (its package imported as mlgen from a shim)."""
    shim = out / "shim"
    shim.mkdir(parents=True)
    (shim / "mlgen").symlink_to(tree / "generator")
    code = "import sys; from pathlib import Path; from mlgen.spec import load_spec; from mlgen.bundle import write_app; " \
           "print(write_app(load_spec(sys.argv[1]), Path(sys.argv[2])))"
    result = subprocess.run([sys.executable, "-c", code, str(spec), str(out / "app-parent")], env={"PYTHONPATH": str(shim)},
                            capture_output=True, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1])


def probe(app: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(app / "serving.json")], cwd=app,
                            env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="8329c8c^", help="commit before the model.uri work [8329c8c^]")
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "iris" / "spec.yaml")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlgen-bench-import-") as folder:
        work = Path(folder)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(work / "baseline"), args.baseline],
                       check=True)
        try:
            apps = {"baseline": render_app(work / "baseline", args.spec.resolve(), work / "b"),
                    "this tree": render_app(ROOT, args.spec.resolve(), work / "t")}
            runs: dict[str, list[dict]] = {name: [] for name in apps}
            for _ in range(args.runs):
                for name, app in apps.items():  # alternated, so drift in the machine's load hits both
                    runs[name].append(probe(app))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "baseline")], check=False)
    medians = {name: {key: statistics.median(r[key] for r in results) for key in ("import_s", "load_s")}
               for name, results in runs.items()}
    print(f"{args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec}, medians of {args.runs} "
          f"fresh processes (baseline {args.baseline})")
    print(f"  {'':<10}{'import ms':>10}{'load ms':>10}")
    for name, median in medians.items():
        print(f"  {name:<10}{median['import_s'] * 1e3:>10.1f}{median['load_s'] * 1e3:>10.1f}")
    base, this = medians["baseline"], medians["this tree"]
    print(f"  this tree / baseline: import {this['import_s'] / base['import_s']:.2f}×, load {this['load_s'] / base['load_s']:.2f}×")


if __name__ == "__main__":
    main()
