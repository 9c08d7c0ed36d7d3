"""The malformed-spec corpus (tests/malformed/): each `NN-name.yaml` is a broken spec and
`NN-name.expected` the start of the first line `mlgen render` must print for it — file, line,
column and field where the problem has them, then the message. Cases that are not file contents
(a missing file, a folder, a huge file, symlinks) are made here at test time. Every case exits 1 (a
usage error, 2, for a folder holding no spec), prints no traceback and writes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_mlgen

CORPUS = Path(__file__).parent / "malformed"
CASES = sorted(p.stem for p in CORPUS.glob("*.expected"))


def _huge(work: Path) -> None:
    (work / "spec.yaml").write_text("# padding\n" * 120_000)


def _model_link_outside(work: Path) -> None:
    (work / "model" / "link.joblib").symlink_to(work.parent / "outside.joblib")
    (work.parent / "outside.joblib").write_bytes(b"not the model")


def _outside_file(work: Path) -> None:
    (work.parent / "outside.joblib").write_bytes(b"not the model")


SETUP = {
    "56-missing-file": lambda work: None,
    "57-spec-is-a-folder": lambda work: (work / "spec.yaml").mkdir(),
    # As root nothing is unreadable by mode bits; a path through a regular file fails to open
    # for every user, which is the same OSError branch.
    "58-path-through-a-file": lambda work: (work / "not-a-folder").write_text("x"),
    "59-huge-file": _huge,
    "60-dangling-symlink": lambda work: (work / "spec.yaml").symlink_to(work / "gone.yaml"),
    "28-model-path-escapes-folder": _outside_file,
    "30-model-path-symlink-escapes": _model_link_outside,
}
SPEC_ARGUMENT = {"58-path-through-a-file": "not-a-folder/spec.yaml"}
EXIT_CODE = {"57-spec-is-a-folder": 2}  # a folder is a batch of specs: finding none is a usage error


def test_the_corpus_has_at_least_forty_cases_each_with_its_expectation():
    specs = {p.stem for p in CORPUS.glob("*.yaml")}
    assert len(CASES) >= 40
    assert specs <= set(CASES), f"cases without an .expected file: {sorted(specs - set(CASES))}"
    assert set(CASES) - specs <= set(SETUP), "an .expected file with neither a spec nor a setup"


@pytest.mark.parametrize("case", CASES)
def test_malformed_spec_is_refused_clearly_and_nothing_is_written(case, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(EXAMPLES / "iris" / "model", work / "model")
    if (CORPUS / f"{case}.yaml").exists():
        shutil.copyfile(CORPUS / f"{case}.yaml", work / "spec.yaml")
    SETUP.get(case, lambda work: None)(work)
    expected = (CORPUS / f"{case}.expected").read_text(encoding="utf-8").rstrip("\n")

    result = run_mlgen("render", SPEC_ARGUMENT.get(case, "spec.yaml"), "-t", "kubernetes", "-o", "out", cwd=work,
                       env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})

    assert result.returncode == EXIT_CODE.get(case, 1), result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0] if result.stderr else ""
    assert first.startswith(expected), first
    assert not (work / "out").exists()
    assert not [p for p in os.listdir(work) if p.startswith(".") and "mlgen" in p]
