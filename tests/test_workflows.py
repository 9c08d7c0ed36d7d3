"""Everyday workflows: overlays per environment, --set, explain, diff, and batches for CI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_mlgen

IRIS = EXAMPLES / "iris" / "spec.yaml"


@pytest.fixture
def prod(tmp_path: Path) -> Path:
    overlay = tmp_path / "prod.yaml"
    overlay.write_text("scaling:\n  max_replicas: 12\nmetadata:\n  labels:\n    env: prod\nruntime:\n  port: 80\n")
    return overlay


def test_an_overlay_error_points_at_the_overlays_own_line(prod: Path) -> None:
    result = run_mlgen("validate", IRIS, "--overlay", prod)
    assert result.returncode == 1
    assert f"{prod}:7:9: runtime.port: 80 is less than the minimum of 1024" in result.stderr


def test_explain_says_where_each_value_came_from(prod: Path) -> None:
    prod.write_text(prod.read_text().replace("port: 80", "port: 8443"))
    assert run_mlgen("explain", IRIS, "scaling.max_replicas", "--overlay", prod).stdout.splitlines() == [
        "scaling.max_replicas = 12", f"  from overlay {prod}:2:17"]
    assert "from base spec" in run_mlgen("explain", IRIS, "scaling.min_replicas", "--overlay", prod).stdout
    assert "from default (from the schema)" in run_mlgen("explain", IRIS, "runtime.timeout_s").stdout
    result = run_mlgen("explain", IRIS, "scaling.max_replicas", "--overlay", prod, "--set", "scaling.max_replicas=20",
                       "--format", "json")
    assert json.loads(result.stdout) == {"field": "scaling.max_replicas", "value": 20,
                                         "from": "--set scaling.max_replicas=20"}


def test_set_values_are_typed_as_yaml_and_checked(tmp_path: Path) -> None:
    result = run_mlgen("validate", IRIS, "--set", "metadata.version=1.10")
    assert result.returncode == 1
    assert '--set metadata.version=1.10: metadata.version: expected a string, got a number' in result.stderr
    assert 'quote it: "1.10"' in result.stderr
    assert run_mlgen("validate", IRIS, "--set", "metadata.version='1.10'").returncode == 0
    assert run_mlgen("validate", IRIS, "--set", "nonsense").returncode == 2


def test_render_with_an_overlay_changes_the_output(tmp_path: Path, prod: Path) -> None:
    prod.write_text(prod.read_text().replace("port: 80", "port: 8443"))
    out = tmp_path / "out"
    assert run_mlgen("render", IRIS, "-t", "onprem", "-o", out, "--overlay", prod).returncode == 0
    assert "--port 8443" in (out / "onprem" / "iris.service").read_text()


def test_diff_shows_what_would_change(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_mlgen("render", IRIS, "-t", "onprem", "-o", out).returncode == 0
    assert run_mlgen("diff", IRIS, "-t", "onprem", "-o", out).returncode == 0
    result = run_mlgen("diff", IRIS, "-t", "onprem", "-o", out, "--set", "runtime.port=9000")
    assert result.returncode == 1
    assert "+ExecStart=" in result.stdout and "--port 9000" in result.stdout


def test_a_batch_renders_folders_and_globs_and_one_bad_spec_does_not_stop_the_rest(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    for name in ("alpha", "beta", "gamma"):
        shutil.copytree(EXAMPLES / "iris", specs / name)
        spec = specs / name / "spec.yaml"
        spec.write_text(spec.read_text().replace("name: iris", f"name: {name}"))
    broken = specs / "beta" / "spec.yaml"
    broken.write_text(broken.read_text().replace("format: sklearn", "format: sklern"))
    out = tmp_path / "out"
    for args in ([specs], [str(specs / "*" / "spec.yaml"), "--jobs", "2"]):
        result = run_mlgen("render", *args, "-t", "onprem", "-o", out, "--format", "json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert [r["ok"] for r in report["results"]] == [True, False, True]
        errors = [problem for problem in report["problems"] if problem["level"] == "error"]
        assert errors and {problem["file"] for problem in errors} == {str(broken)}  # warnings may name the others
        assert (out / "alpha" / "onprem" / "alpha.service").exists()
        assert (out / "gamma" / "onprem" / "gamma.service").exists()
    text = run_mlgen("validate", specs)
    assert "3 specs: 2 ok, 1 failed" in text.stderr


def test_plan_says_which_targets_fit_and_why(tmp_path: Path) -> None:
    result = run_mlgen("plan", IRIS, "--format", "json", "--set", "resources.gpu=1")
    assert result.returncode == 0, result.stderr
    (assessment,) = json.loads(result.stdout)
    options = {(o["target"], o["provider"]): o for o in assessment["options"]}
    assert options[("onprem", None)]["fits"] is True
    serverless = [o for (target, _), o in options.items() if target == "serverless"]
    assert serverless and not any(o["fits"] for o in serverless)  # no function platform offers GPUs
    assert all(o["reasons"] for o in serverless)
    assert assessment["measured"]["status"] == 200 and assessment["measured"]["load_s"] > 0
    assert any("GPU" in line for line in assessment["recommendation"])
