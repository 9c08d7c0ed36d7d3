#!/usr/bin/env python3
"""Regenerate tests/golden/ from examples/: every example × every target its spec configures ×
every variant of that target (`Target.variants`: each provider or mode).

Usage: python scripts/update_goldens.py [EXAMPLE ...] [--target NAME ...]

- tests/golden/<example>/<target>/ is the spec as written;
- tests/golden/<example>/<target>-<variant>/ is the spec with the variant's settings (each of
  which renders on its own), left out where it is the spec as written.

The runtime package (app/mlgen_runtime/) is left out: it is copied verbatim and tested on its own,
and keeping it would turn every runtime change into a diff in every golden tree. An archive
(bundle.tar.gz) is kept as a readable listing of its members with their modes and hashes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import shutil
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlgen import targets  # noqa: E402
from mlgen.plan import parse_back, plan_target  # noqa: E402
from mlgen.render import Renderer  # noqa: E402
from mlgen.spec import ServiceModel, load_spec  # noqa: E402
from mlgen.targets.base import split_variant  # noqa: E402

EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
LEFT_OUT = ("app/mlgen_runtime/",)
ARCHIVES = (".tar.gz",)


@dataclasses.dataclass(frozen=True)
class Case:
    example: str
    target: str
    variant: str  # "" for the spec as written
    sets: tuple[str, ...]  # --set arguments that select the variant

    @property
    def folder(self) -> Path:
        return GOLDEN / self.example / (f"{self.target}-{self.variant}" if self.variant else self.target)

    @property
    def id(self) -> str:
        return self.folder.relative_to(GOLDEN).as_posix().replace("/", "-")


def cases() -> list[Case]:
    found = []
    for spec in sorted(EXAMPLES.glob("*/spec.yaml")):
        raw = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        for name in (raw.get("targets") or {}):
            if name not in targets.available():
                continue
            found.append(Case(spec.parent.name, name, "", ()))
            written = load_spec(spec).target(name)
            for variant, settings in targets.get(name).all_variants().items():
                if settings.get("provider", "") == written.get("provider") and not split_variant(settings)[1]:
                    continue  # the spec as written is this provider's golden (a mode of it, such as a rollout, is not)
                sets = variant_sets(name, written, settings)
                if variant and _differs(load_spec(spec, sets=sets), load_spec(spec)):
                    found.append(Case(spec.parent.name, name, variant, sets))
    return found


def _differs(variant: ServiceModel, written: ServiceModel) -> bool:
    """The variant renders something the spec as written does not (the digest of the spec's data
    differs with any --set, the model it builds need not)."""
    return dataclasses.replace(variant, spec_digest="") != dataclasses.replace(written, spec_digest="")


def variant_sets(target: str, written, settings) -> tuple[str, ...]:
    """--set arguments for a variant: its settings over the spec's, or instead of them where it
    names another provider (the spec's provider-specific settings would not fit it), and the
    top-level fields it sets (targets.base.split_variant)."""
    settings, spec_fields = split_variant(settings)
    top = tuple(f"{key}={_flow_yaml(value)}" for key, value in spec_fields.items())
    if "provider" in settings and settings["provider"] != written.get("provider"):
        return (f"targets.{target}={_flow_yaml(settings)}", *top)
    return (*(f"targets.{target}.{key}={_flow_yaml(value)}" for key, value in settings.items()), *top)


def _flow_yaml(value: object) -> str:
    plain = dict(value) if hasattr(value, "items") else value
    return yaml.safe_dump(plain, default_flow_style=True, width=1 << 20).strip().removesuffix("\n...").strip()


def render_tree(case: Case) -> dict[str, bytes]:
    model: ServiceModel = load_spec(EXAMPLES / case.example / "spec.yaml", sets=case.sets)
    plan = plan_target(model, case.target, Renderer())
    parse_back(plan)
    tree = {}
    for rendered in plan.files:
        if rendered.path.startswith(LEFT_OUT):
            continue
        if rendered.path.endswith(ARCHIVES):
            tree[rendered.path + ".listing"] = archive_listing(rendered.content)
        else:
            tree[rendered.path] = rendered.content
    return tree


def archive_listing(content: bytes) -> bytes:
    """`mode size sha256 path` per member (the runtime's members by count only), and the archive's own
    sha256 on the first line, so a review reads what changed inside it."""
    lines = [f"# sha256 of the archive: {hashlib.sha256(content).hexdigest()}"]
    runtime = 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(content))) as archive:
        for member in archive.getmembers():
            if member.name.startswith(LEFT_OUT):
                runtime += 1
                continue
            data = archive.extractfile(member).read() if member.isfile() else b""
            lines.append(f"{member.mode:04o} {member.size:>9} {hashlib.sha256(data).hexdigest()} {member.name}")
    lines.append(f"# and {runtime} files of {LEFT_OUT[0]}")
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="*", help="examples to regenerate (default: all)")
    parser.add_argument("--target", action="append", default=[], help="only this target (repeatable)")
    options = parser.parse_args(argv)
    selected = [c for c in cases() if (not options.examples or c.example in options.examples)
                and (not options.target or c.target in options.target)]
    for example, target in {(c.example, c.target) for c in selected}:
        for stale in (GOLDEN / example).glob(f"{target}*"):
            if stale.name == target or stale.name.startswith(f"{target}-"):
                shutil.rmtree(stale)
    for case in selected:
        for path, content in render_tree(case).items():
            destination = case.folder / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
        print(f"updated {case.folder.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
