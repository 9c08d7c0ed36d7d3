#!/usr/bin/env python3
"""Regenerate tests/golden/<example>/<target>/ from examples/<example>/spec.yaml.

Usage: python scripts/update_goldens.py [EXAMPLE ...]
An example is rendered for each target named under `targets:` in its spec. The runtime package
(app/mlgen_runtime/) is left out of the goldens: it is copied verbatim and tested on its own, and
keeping it would turn every runtime change into a diff in every golden tree.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import targets  # noqa: E402
from generator.plan import parse_back, plan_target  # noqa: E402
from generator.render import Renderer  # noqa: E402
from generator.spec import load_spec  # noqa: E402

EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
LEFT_OUT = ("app/mlgen_runtime/",)


def example_targets() -> dict[str, list[str]]:
    found = {}
    for spec in sorted(EXAMPLES.glob("*/spec.yaml")):
        raw = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        known = targets.available()
        found[spec.parent.name] = [name for name in (raw.get("targets") or {}) if name in known]
    return found


def render_tree(example: str, target: str) -> dict[str, bytes]:
    model = load_spec(EXAMPLES / example / "spec.yaml")
    plan = plan_target(model, target, Renderer())
    parse_back(plan)
    return {f.path: f.content for f in plan.files if not f.path.startswith(LEFT_OUT)}


def main(selected: list[str]) -> None:
    for example, names in example_targets().items():
        if selected and example not in selected:
            continue
        for target in names:
            shutil.rmtree(GOLDEN / example / target, ignore_errors=True)
            for path, content in render_tree(example, target).items():
                destination = GOLDEN / example / target / path
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(content)
            print(f"updated tests/golden/{example}/{target}")


if __name__ == "__main__":
    main(sys.argv[1:])
