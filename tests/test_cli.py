"""The command line as a user meets it: exit codes, streams, and no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, run_mlgen
from mlgen import __version__

IRIS = EXAMPLES / "iris" / "spec.yaml"


def test_version_and_python_dash_m() -> None:
    result = run_mlgen("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mlgen, version {__version__}"


def test_targets_lists_each_target_with_what_it_is_for() -> None:
    result = run_mlgen("targets", "--format", "json")
    rows = json.loads(result.stdout)
    names = [row["target"] for row in rows]
    assert "onprem" in names
    assert all(row["summary"] for row in rows)


def test_schema_prints_the_published_schema() -> None:
    result = run_mlgen("schema")
    assert json.loads(result.stdout) == json.loads((ROOT / "specs" / "mlgen.v1.schema.json").read_text())


@pytest.mark.parametrize(
    "args",
    [("render",), ("render", IRIS, "--target", "nosuch"), ("render", IRIS, "--check", "--dry-run"), ("frobnicate",)],
)
def test_usage_errors_exit_2(args) -> None:
    result = run_mlgen(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


def test_unknown_target_names_the_choices() -> None:
    result = run_mlgen("render", IRIS, "--target", "nosuch")
    assert "unknown target 'nosuch' (choose from: onprem" in result.stderr


def test_a_missing_spec_is_a_clear_error() -> None:
    result = run_mlgen("validate", "no/such/spec.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() == "no/such/spec.yaml: no such file"


def test_an_unexpected_failure_prints_one_line_and_points_at_debug(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    result = run_mlgen("render", IRIS, "-t", "onprem", "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "--debug" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_wheel_carries_templates_and_schema_and_renders_from_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("mlgen_deploy-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=True)
    python = env_dir / "bin" / "python"
    # --no-deps: the dependencies are already on the system site-packages this venv sees.
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(env_dir / "bin" / "mlgen"), "render", str(IRIS), "-t", "onprem", "-o", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    located = subprocess.run([str(python), "-c", "import mlgen; print(mlgen.__file__)"], cwd=tmp_path,
                             capture_output=True, text=True, env=env)
    assert str(env_dir) in located.stdout  # rendered by the installed copy, not the checkout
    generic = subprocess.run([str(python), "-c", "import generator"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "No module named 'generator'" in generic.stderr  # installing mlgen claims only its own name
    contents = set(zipfile.ZipFile(wheel).namelist())
    assert {"mlgen/templates/onprem/service.j2", "mlgen/specs/mlgen.v1.schema.json", "mlgen/spec/core.schema.json",
            "mlgen/targets/kubernetes/schema.json", "mlgen/runtime/mlgen_runtime/adapters/aws_lambda.py"} <= contents
    assert (out / "onprem" / "iris.service").exists()
    assert (out / "onprem" / "app" / "mlgen_runtime" / "__init__.py").exists()


def test_the_published_schema_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    schema = json.loads((ROOT / "specs" / "mlgen.v1.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_shell_completion_scripts_are_offered() -> None:
    for shell in ("bash", "zsh", "fish"):
        result = run_mlgen(env={"_MLGEN_COMPLETE": f"{shell}_source"})
        assert result.returncode == 0
        assert "_MLGEN_COMPLETE" in result.stdout


def test_render_all_reports_every_target_that_does_not_fit_at_once(tmp_path: Path) -> None:
    """Two targets that cannot take the spec: both say so in one run, and the others still render."""
    shutil.copytree(EXAMPLES / "iris", tmp_path / "iris", ignore=shutil.ignore_patterns("spec.lock.json"))
    result = run_mlgen("render", tmp_path / "iris" / "spec.yaml", "--target", "all", "-o", tmp_path / "out",
                       "--set", "runtime.python='3.11'", "--set", "targets.cloud.provider=gcp",
                       "--set", "targets.cloud.artifact_url=https://bundles.example.com/iris.tar.gz")
    assert result.returncode == 1
    assert "no default gcp image with cloud-init has Python 3.11" in result.stderr, result.stderr  # cloud
    assert "AWS Lambda stopped creating python3.11 functions" in result.stderr, result.stderr  # serverless
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "onprem" / "app" / "serving.json").exists()
    assert (tmp_path / "out" / "kubernetes").is_dir()


def test_render_all_means_the_targets_the_spec_configures(tmp_path: Path) -> None:
    """A spec written for one host is rendered for that host: `all` (the default) does not render,
    or refuse, it for a cloud it never named. A spec that names no target gets every one."""
    hospital = run_mlgen("render", EXAMPLES / "hospital-diagnostics" / "spec.yaml", "-o", tmp_path / "hospital")
    assert hospital.returncode == 0, hospital.stderr
    assert sorted(p.name for p in (tmp_path / "hospital").iterdir() if not p.name.startswith(".")) == ["onprem"]
    explicit = run_mlgen("render", EXAMPLES / "hospital-diagnostics" / "spec.yaml", "-t", "cloud", "-o", tmp_path / "x")
    assert explicit.returncode == 1 and "targets.cloud" in explicit.stderr  # asked for by name: its own checks apply
    spec = tmp_path / "bare" / "spec.yaml"
    shutil.copytree(EXAMPLES / "iris", spec.parent, ignore=shutil.ignore_patterns("spec.lock.json"))
    text = spec.read_text()
    spec.write_text(text[:text.index("targets:")])
    bare = run_mlgen("render", spec, "-o", tmp_path / "bare-out", "-t", "all")
    # every target is tried: the cloud's public listener needs allowed_cidrs written, the others render
    assert bare.returncode == 1 and "targets.cloud: " in bare.stderr and "allowed_cidrs" in bare.stderr, bare.stderr
    assert sorted(p.name for p in (tmp_path / "bare-out").iterdir() if not p.name.startswith(".")) == \
        ["kubernetes", "onprem", "serverless"]
