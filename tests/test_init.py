"""`mlgen init` scaffolds a repository that validates, renders, serves the demo model and passes
its own tests, for every model format; it refuses a non-empty folder unless forced."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run_mlgen

API_KEY = "scaffold-test-key-0123456789abcdef"
REQUEST = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4],
                       "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}


@pytest.mark.parametrize("model_format", ["sklearn", "onnx", "python"])
def test_a_fresh_scaffold_renders_serves_and_passes_its_own_tests(tmp_path: Path, model_format: str) -> None:
    repo = tmp_path / "Fraud Model_v2"
    result = run_mlgen("init", repo, "--format", model_format, "--yes")
    assert result.returncode == 0, result.stderr
    spec = repo / "spec.yaml"
    assert yaml.safe_load(spec.read_text())["metadata"]["name"] == "fraud-model-v2"
    assert run_mlgen("validate", spec).returncode == 0
    out = repo / "deploy"
    rendered = run_mlgen("render", spec, "-t", "onprem", "-o", out)
    assert rendered.returncode == 0, rendered.stderr
    assert run_mlgen("render", spec, "-t", "onprem", "-o", out, "--check").returncode == 0  # what CI runs

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=repo,
                           capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr

    app = out / "onprem" / "app"
    answer = subprocess.run([sys.executable, "-m", "mlgen_runtime", "predict", "--config", str(app / "serving.json")],
                            input=json.dumps(REQUEST), capture_output=True, text=True, cwd=app, timeout=120,
                            env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"})  # no key: predict is local
    assert answer.returncode == 0, answer.stderr
    predictions = {o["name"]: o["data"] for o in json.loads(answer.stdout)["outputs"]}
    assert predictions["predict"] == [0, 2]  # setosa and virginica, as the iris model says


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    result = run_mlgen("init", tmp_path, "--yes")
    assert result.returncode == 1
    assert "the folder is not empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert run_mlgen("init", tmp_path, "--yes", "--force").returncode == 0
    assert (tmp_path / "notes.txt").read_text() == "mine\n" and (tmp_path / "spec.yaml").exists()


def test_the_ci_files_parse_and_run_the_drift_check(tmp_path: Path) -> None:
    assert run_mlgen("init", tmp_path / "repo", "--yes").returncode == 0
    github = yaml.safe_load((tmp_path / "repo" / ".github" / "workflows" / "mlgen.yml").read_text())
    steps = [step.get("run", "") for step in github["jobs"]["deploy-bundles"]["steps"]]
    assert "mlgen render spec.yaml --target all -o deploy --check" in steps
    gitlab = yaml.safe_load((tmp_path / "repo" / ".gitlab-ci.yml").read_text())
    assert "mlgen render spec.yaml --target all -o deploy --check" in gitlab["deploy-bundles"]["script"]
    hooks = yaml.safe_load((tmp_path / "repo" / ".pre-commit-config.yaml").read_text())
    assert hooks["repos"][0]["hooks"][0]["entry"].endswith("--check")


@pytest.mark.parametrize("model_format", ["sklearn", "onnx", "python"])
def test_the_scaffold_is_green_from_its_first_commit_for_every_target(tmp_path: Path, model_format: str) -> None:
    """What the scaffold's CI runs, for every target, with the defaults only (the cloud fleet on AWS,
    functions on Lambda, the default runtime.python)."""
    repo = tmp_path / "repo"
    assert run_mlgen("init", repo, "--format", model_format, "-y").returncode == 0
    rendered = run_mlgen("render", "spec.yaml", "--target", "all", "-o", "deploy", cwd=repo)
    assert rendered.returncode == 0, rendered.stderr
    assert {path.name for path in (repo / "deploy").iterdir() if not path.name.startswith(".")} == \
        {"onprem", "cloud", "kubernetes", "serverless"}
    check = run_mlgen("render", "spec.yaml", "--target", "all", "-o", "deploy", "--check", cwd=repo)
    assert check.returncode == 0, check.stderr
    assert not [line for line in check.stderr.splitlines() if ": warning: " not in line], check.stderr


def test_the_scaffold_ci_installs_this_mlgen_under_its_own_distribution_name(tmp_path: Path) -> None:
    import tomllib

    from mlgen import DISTRIBUTION, __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "mlgen"  # "mlgen" on PyPI is another project
    assert project["scripts"]["mlgen"] == "mlgen.cli:main"  # the command keeps its name
    assert run_mlgen("init", tmp_path / "repo", "-y").returncode == 0
    github = yaml.safe_load((tmp_path / "repo" / ".github" / "workflows" / "mlgen.yml").read_text())
    install = next(step["run"] for step in github["jobs"]["deploy-bundles"]["steps"] if "pip install" in step.get("run", ""))
    gitlab = yaml.safe_load((tmp_path / "repo" / ".gitlab-ci.yml").read_text())["deploy-bundles"]
    assert install in gitlab["script"]
    # This checkout is installed from a folder, not a repository: the release on the index.
    requirement = shlex.split(install)[4]
    assert requirement == f"{DISTRIBUTION}=={__version__}"
    python = yaml.safe_load((tmp_path / "repo" / "spec.yaml").read_text())["runtime"]["python"]
    assert github["jobs"]["deploy-bundles"]["steps"][1]["with"]["python-version"] == python
    assert gitlab["image"] == f"python:{python}-slim"


def test_a_scaffold_asks_for_an_api_key_by_default(tmp_path: Path) -> None:
    """New services are not open to whoever reaches them: the scaffold's spec asks for an API key,
    its README says how to serve locally with one, and the served model answers only with it."""
    import signal

    import requests

    from helpers import free_port, wait_until_ready

    repo = tmp_path / "fraud"
    assert run_mlgen("init", repo, "--yes").returncode == 0
    spec = yaml.safe_load((repo / "spec.yaml").read_text())
    assert spec["security"] == {"auth": "api_key", "api_keys": [{"secret": "fraud-api-keys"}]}
    assert 'export MLGEN_API_KEY_1=' in (repo / "README.md").read_text()
    rendered = run_mlgen("render", repo / "spec.yaml", "--target", "all", "-o", repo / "deploy")
    assert rendered.returncode == 0 and "security.auth is none" not in rendered.stderr, rendered.stderr

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlgen", "serve", "spec.yaml", "--port", str(port)], cwd=repo,
                              env={**os.environ, "MLGEN_API_KEY_1": API_KEY},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server)
        infer = f"{base}/v2/models/fraud/infer"
        refused = requests.post(infer, json=REQUEST, timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        answered = requests.post(infer, json=REQUEST, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"})
        assert answered.status_code == 200, answered.text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
