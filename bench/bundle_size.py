#!/usr/bin/env python3
"""What the rendered deploy/ folder weighs with the model in the bundles (model.path) and kept in
storage (model.uri), for a model of a given size: iris's classifier padded with an array to
--model-mb, rendered for every target of examples/iris (each target's own copy of app/).

Usage: python bench/bundle_size.py [--model-mb 248]
A benchmark, not a test: it prints sizes; nothing asserts one.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "iris"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def padded_model(path: Path, megabytes: int) -> str:
    import joblib
    import numpy as np

    model = joblib.load(EXAMPLE / "model" / "model.joblib")
    # Random, like trained weights: zeros would shrink to nothing in the cloud bundle's archive.
    model.padding_ = np.random.default_rng(0).random(megabytes * 2**20 // 8)
    joblib.dump(model, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


TARGETS = ("onprem", "cloud", "kubernetes", "serverless")


def render(spec: Path, out: Path) -> dict[str, int | str]:
    """Each target's folder size, or the reason it refused the spec."""
    sizes: dict[str, int | str] = {}
    for target in TARGETS:
        result = subprocess.run([sys.executable, "-m", "mlgen", "render", str(spec), "-t", target, "-o", str(out)],
                                capture_output=True, text=True)
        errors = [line for line in result.stderr.splitlines() if ": warning: " not in line]
        sizes[target] = folder_bytes(out / target) if result.returncode == 0 else "refused: " + errors[0].split(": ", 2)[-1][:70]
    return sizes


def shown(size: int | str) -> str:
    return f"{size / 1e6:.1f}" if isinstance(size, int) else "refused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-mb", type=int, default=248)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlgen-bench-size-") as folder:
        work = Path(folder)
        (work / "model").mkdir()
        sha = padded_model(work / "model" / "model.joblib", args.model_mb)
        spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
        spec["model"]["sha256"] = sha
        (work / "path.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        del spec["model"]["path"]
        spec["model"].update(uri="s3://acme-ml-models/iris/big/model.joblib", max_size=f"{args.model_mb + 16}Mi")
        (work / "uri.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        sizes = {kind: render(work / f"{kind}.yaml", work / f"out-{kind}") for kind in ("path", "uri")}
    model_mb = args.model_mb * 2**20 / 1e6
    print(f"deploy/ for examples/iris's targets with a {model_mb:.0f} MB model (MB)")
    print(f"  {'target':<12}{'model.path':>12}{'model.uri':>12}")
    for target in TARGETS:
        print(f"  {target:<12}{shown(sizes['path'][target]):>12}{shown(sizes['uri'][target]):>12}")
    total = {kind: sum(size for size in sizes[kind].values() if isinstance(size, int)) for kind in sizes}
    print(f"  {'rendered':<12}{total['path'] / 1e6:>12.1f}{total['uri'] / 1e6:>12.1f}")
    for kind in sizes:
        for target, size in sizes[kind].items():
            if not isinstance(size, int):
                print(f"  {kind} {target}: {size}")


if __name__ == "__main__":
    main()
