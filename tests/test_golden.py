"""Every example is also a golden test: each target it configures renders exactly the files kept
under tests/golden/<example>/<target>/. Regenerate after an intended change with
`python scripts/update_goldens.py` and review the diff like code."""

from __future__ import annotations

import difflib
import importlib.util

import pytest

from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
_spec = importlib.util.spec_from_file_location("update_goldens", ROOT / "scripts" / "update_goldens.py")
goldens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goldens)  # type: ignore[union-attr]

CASES = [(example, target) for example, targets in goldens.example_targets().items() for target in targets]


@pytest.mark.parametrize(("example", "target"), CASES, ids=[f"{e}-{t}" for e, t in CASES])
def test_example_renders_its_golden_tree(example: str, target: str) -> None:
    rendered = goldens.render_tree(example, target)
    golden_dir = GOLDEN / example / target
    assert golden_dir.is_dir(), f"no golden tree for {example}/{target}: run python scripts/update_goldens.py"
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


def test_every_example_has_goldens() -> None:
    assert CASES, "no examples found"
    for example in goldens.example_targets():
        assert (GOLDEN / example).is_dir(), f"examples/{example} has no golden tree"
