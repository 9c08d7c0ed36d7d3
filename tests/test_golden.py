"""Every example is also a golden test: for each target its spec configures, the spec as written
and every variant of the target (each provider or mode) render exactly the files kept under
tests/golden/<example>/<target>[-<variant>]/. Regenerate after an intended change with
`python scripts/update_goldens.py` and review the diff like code."""

from __future__ import annotations

import difflib
import importlib.util
import sys

import pytest

from helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"
_spec = importlib.util.spec_from_file_location("update_goldens", ROOT / "scripts" / "update_goldens.py")
goldens = importlib.util.module_from_spec(_spec)
sys.modules["update_goldens"] = goldens  # dataclasses look their module up there
_spec.loader.exec_module(goldens)  # type: ignore[union-attr]

CASES = goldens.cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_example_renders_its_golden_tree(case) -> None:
    rendered = goldens.render_tree(case)
    golden_dir = case.folder
    assert golden_dir.is_dir(), f"no golden tree {golden_dir.relative_to(ROOT)}: run python scripts/update_goldens.py"
    expected = {p.relative_to(golden_dir).as_posix(): p.read_bytes() for p in golden_dir.rglob("*") if p.is_file()}
    assert sorted(rendered) == sorted(expected), "the set of rendered files changed"
    mismatches = []
    for path, content in sorted(rendered.items()):
        if content != expected[path]:
            diff = difflib.unified_diff(expected[path].decode("utf-8", "replace").splitlines(True),
                                        content.decode("utf-8", "replace").splitlines(True),
                                        f"golden/{path}", f"rendered/{path}")
            mismatches.append("".join(diff))
    assert not mismatches, "rendered output differs from the golden tree:\n" + "\n".join(mismatches)


def test_every_golden_tree_belongs_to_a_case() -> None:
    """A tree nobody renders any more is stale, not a test."""
    expected = {case.folder for case in CASES}
    found = {folder for example in GOLDEN.iterdir() for folder in example.iterdir() if folder.is_dir()}
    assert found == expected, f"stale: {sorted(map(str, found - expected))}; missing: {sorted(map(str, expected - found))}"


def test_every_registered_target_has_goldens() -> None:
    from mlgen import targets

    covered = {case.target for case in CASES}
    assert covered == set(targets.BUILTIN), f"targets no example configures: {set(targets.BUILTIN) - covered}"
