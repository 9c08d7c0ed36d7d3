"""Nothing a user has is lost: renders are atomic, edits are protected, stale files go only when
mlgen wrote them, and `--check` / `--dry-run` write nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, run_mlgen

IRIS = EXAMPLES / "iris" / "spec.yaml"


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", out)
    assert result.returncode == 0, result.stderr
    return out / "onprem"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rendering_twice_changes_nothing(rendered: Path) -> None:
    before = snapshot(rendered)
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent)
    assert result.returncode == 0
    assert "up to date" in result.stdout
    assert snapshot(rendered) == before  # same bytes and same inodes: nothing rewritten


def test_output_is_deterministic(tmp_path: Path, rendered: Path) -> None:
    again = tmp_path / "again"
    assert run_mlgen("render", IRIS, "-t", "onprem", "-o", again).returncode == 0
    first = {k: v[0] for k, v in snapshot(rendered).items()}
    second = {k: v[0] for k, v in snapshot(again / "onprem").items()}
    assert first == second


def test_an_edited_file_is_not_overwritten_without_force(rendered: Path) -> None:
    unit = rendered / "iris.service"
    unit.write_text(unit.read_text() + "# my tweak\n")
    spec_copy = _spec_copy(rendered.parent.parent, port="9090")
    result = run_mlgen("render", spec_copy, "-t", "onprem", "-o", rendered.parent)
    assert result.returncode == 1
    assert f"{unit}: was edited since mlgen wrote it; rendering would overwrite it (use --force" in result.stderr
    assert "# my tweak" in unit.read_text()
    result = run_mlgen("render", spec_copy, "-t", "onprem", "-o", rendered.parent, "--force")
    assert result.returncode == 0, result.stderr
    assert "# my tweak" not in unit.read_text() and "--port 9090" in unit.read_text()


def test_a_hand_edited_file_is_not_silently_restored(rendered: Path) -> None:
    env_file = rendered / "iris.env"
    env_file.write_text("MINE=1\n")
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent)
    assert result.returncode == 1  # the render would restore it: that is overwriting an edit too
    assert env_file.read_text() == "MINE=1\n"


def test_deleted_files_come_back_and_files_mlgen_did_not_write_stay(rendered: Path) -> None:
    (rendered / "iris.service").unlink()
    (rendered / "NOTES.md").write_text("operator notes\n")
    (rendered / "extra").mkdir()
    (rendered / "extra" / "keep.txt").write_text("keep\n")
    check = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent, "--check")
    assert check.returncode == 1
    assert "iris.service was deleted since the last render: would restore it" in check.stderr
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent)
    assert result.returncode == 0, result.stderr
    assert "iris.service was deleted since the last render: restore it" in result.stderr
    assert (rendered / "iris.service").exists()
    assert (rendered / "NOTES.md").read_text() == "operator notes\n"
    assert (rendered / "extra" / "keep.txt").read_text() == "keep\n"


def test_files_no_longer_produced_are_removed_only_if_mlgen_wrote_them(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "iris", project)
    (project / "handlers.py").write_text("def pre(inputs):\n    return inputs\n")
    spec = project / "spec.yaml"
    spec.write_text(spec.read_text().replace("runtime:\n", "pipeline:\n  preprocess: handlers:pre\nruntime:\n"))
    out = tmp_path / "out"
    assert run_mlgen("render", spec, "-t", "onprem", "-o", out).returncode == 0
    assert (out / "onprem" / "app" / "handlers.py").exists()
    spec.write_text(spec.read_text().replace("pipeline:\n  preprocess: handlers:pre\n", ""))
    result = run_mlgen("render", spec, "-t", "onprem", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "remove 1" in result.stdout
    assert not (out / "onprem" / "app" / "handlers.py").exists()


def test_check_reports_drift_with_a_diff_and_writes_nothing(rendered: Path) -> None:
    assert run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent, "--check").returncode == 0
    spec_copy = _spec_copy(rendered.parent.parent, port="9090")
    before = snapshot(rendered)
    result = run_mlgen("render", spec_copy, "-t", "onprem", "-o", rendered.parent, "--check")
    assert result.returncode == 1
    assert "-ExecStart=" in result.stdout and "--port 9090" in result.stdout
    assert "is out of date" in result.stderr
    assert snapshot(rendered) == before


def test_dry_run_lists_changes_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", out, "--dry-run")
    assert result.returncode == 0
    assert "+ iris.service" in result.stdout
    assert not out.exists() or not any(out.rglob("*.service"))


def test_a_damaged_manifest_stops_the_render(rendered: Path) -> None:
    (rendered / ".mlgen-manifest.json").write_text("{not json")
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent)
    assert result.returncode == 1
    assert "the manifest is damaged" in result.stderr


def test_symlinks_inside_the_output_are_refused(rendered: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(rendered / "app")
    (rendered / "app").symlink_to(elsewhere)
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", rendered.parent, "--force")
    assert result.returncode == 1
    assert "is a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


# What `mlgen render` does, with the writer's `staged` hook killing the process (as kill -9 would)
# after N files are staged.
KILLED_RENDER = """
import itertools, os, sys
from pathlib import Path
from mlgen import output
from mlgen.plan import parse_back, plan_target
from mlgen.render import Renderer
from mlgen.spec import load_spec

spec, dest, crash_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
model = load_spec(spec)
plan = plan_target(model, "onprem", Renderer())
parse_back(plan)
staged = itertools.count(1)
output.write(plan.files, dest, model.spec_digest,
             staged=lambda path: next(staged) >= crash_after and os.kill(os.getpid(), 9))
"""


@pytest.mark.parametrize("crash_after", [1, 5, 12])
def test_an_interrupted_render_leaves_the_old_tree_whole(rendered: Path, tmp_path: Path, crash_after: int) -> None:
    before = {k: v[0] for k, v in snapshot(rendered).items()}
    spec_copy = _spec_copy(tmp_path, port="9191")
    result = subprocess.run([sys.executable, "-c", KILLED_RENDER, str(spec_copy), str(rendered), str(crash_after)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr  # killed mid-render, as kill -9 would
    assert {k: v[0] for k, v in snapshot(rendered).items()} == before
    result = run_mlgen("render", spec_copy, "-t", "onprem", "-o", rendered.parent)  # the next render completes
    assert result.returncode == 0, result.stderr
    assert "--port 9191" in (rendered / "iris.service").read_text()
    assert not list(rendered.parent.glob(".onprem.mlgen-*"))


def test_concurrent_renders_into_one_folder_stay_consistent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mlgen", "render", str(IRIS), "-t", "onprem", "-o", str(out)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    codes = [run.wait(timeout=120) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert codes == [0, 0, 0]
    manifest = json.loads((out / "onprem" / ".mlgen-manifest.json").read_text())
    on_disk = {p.relative_to(out / "onprem").as_posix() for p in (out / "onprem").rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"]) | {".mlgen-manifest.json"}


def test_json_output_for_machines(tmp_path: Path) -> None:
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", tmp_path / "out", "--format", "json")
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["results"][0]["target"] == "onprem"
    assert "iris.service" in report["results"][0]["created"]


def _spec_copy(folder: Path, port: str) -> Path:
    project = folder / f"iris-{port}"
    if not project.exists():
        shutil.copytree(EXAMPLES / "iris", project)
        spec = project / "spec.yaml"
        spec.write_text(spec.read_text().replace("port: 8080", f"port: {port}"))
    return project / "spec.yaml"
