"""The lock: `mlgen lock` resolves every platform a spec deploys to, bundles install from it with
--require-hashes, and a lock that no longer matches the spec stops the render (so `render --check`
in CI says so)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from helpers import EXAMPLES, REQUIRE_TOOLS, require_tool, run_mlgen as run_command

IRIS = EXAMPLES / "iris"


def run_mlgen(*args):
    result = run_command(*args)
    return result.returncode, result.stdout, result.stderr


def iris_copy(tmp_path, **changes):
    """examples/iris (spec, model and its committed lock) copied, with top-level `changes`."""
    folder = tmp_path / "iris"
    shutil.copytree(IRIS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    spec.update(changes)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "spec.yaml"


def test_every_bundle_of_a_locked_spec_installs_pinned_files_with_require_hashes(tmp_path):
    spec = iris_copy(tmp_path)
    code, out, err = run_mlgen("render", spec, "--target", "all", "-o", tmp_path / "out")
    assert code == 0, err
    assert "no lock" not in err
    lock = json.loads((spec.parent / "spec.lock.json").read_text())
    for requirements in ("onprem/app/requirements.txt", "kubernetes/app/requirements.txt", "serverless/requirements.txt"):
        lines = (tmp_path / "out" / requirements).read_text().splitlines()
        pinned = [line for line in lines if "==" in line]
        assert "--require-hashes" in lines
        assert pinned and all(line.endswith("\\") for line in pinned), "every pin is followed by its hashes"
    serverless = (tmp_path / "out" / "serverless" / "requirements.txt").read_text()
    assert "uvicorn" not in serverless  # the function's own set: no HTTP server
    for package in lock["platforms"]["serverless/aws"]["packages"]:
        assert f"{package['name']}=={package['version']}" in serverless
        assert all(f"--hash=sha256:{f['sha256']}" in serverless for f in package["files"])
    assert "--require-hashes" in (tmp_path / "out" / "kubernetes" / "Dockerfile").read_text()
    assert "--require-hashes" in (tmp_path / "out" / "serverless" / "build.sh").read_text()
    assert '--quiet --require-hashes)' in (tmp_path / "out" / "onprem" / "install.sh").read_text()


def test_changed_requirements_make_render_check_fail_at_the_requirements_line(tmp_path):
    spec = iris_copy(tmp_path)
    assert run_mlgen("render", spec, "--target", "onprem", "-o", tmp_path / "out")[0] == 0
    data = yaml.safe_load(spec.read_text())
    data["runtime"]["requirements"].append("pyyaml==6.0.3")
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = run_mlgen("render", spec, "--target", "onprem", "-o", tmp_path / "out", "--check")
    assert code == 1
    line = next(line for line in err.splitlines() if "spec.lock.json no longer matches" in line)
    assert line.startswith(f"{spec}:") and "runtime.requirements" in line and "added pyyaml==6.0.3" in line
    assert "mlgen lock" in line and "Traceback" not in err


def test_a_lock_value_that_is_not_a_version_never_reaches_a_requirements_file(tmp_path):
    spec = iris_copy(tmp_path)
    lock_file = spec.parent / "spec.lock.json"
    lock = json.loads(lock_file.read_text())
    lock["platforms"]["onprem"]["packages"][0]["version"] = "1.0\n--index-url http://127.0.0.1:9/simple"
    lock_file.write_text(json.dumps(lock))
    code, out, err = run_mlgen("render", spec, "--target", "onprem", "-o", tmp_path / "out")
    assert code == 1 and not (tmp_path / "out" / "onprem").exists()
    assert "spec.lock.json" in err and "platforms.onprem.packages[0].version" in err and "is not a version" in err


def test_an_unlocked_spec_renders_with_one_warning_naming_the_command(tmp_path):
    spec = iris_copy(tmp_path)
    (spec.parent / "spec.lock.json").unlink()
    code, out, err = run_mlgen("render", spec, "--target", "all", "-o", tmp_path / "out")
    assert code == 0
    warnings = [line for line in err.splitlines() if "no lock" in line]
    assert len(warnings) == 1 and f"mlgen lock {spec}" in warnings[0]
    assert "--require-hashes" not in (tmp_path / "out" / "kubernetes" / "Dockerfile").read_text()


@pytest.mark.slow
def test_mlgen_lock_resolves_each_platform_with_uv(tmp_path):
    """A real resolution against the package index: Lambda arm64 gets aarch64 wheels for its
    glibc, the host x86_64 ones, each file with its sha256 and size."""
    require_tool("uv")
    spec = iris_copy(tmp_path, targets={"onprem": {}, "serverless": {"provider": "aws", "architecture": "arm64"}})
    (spec.parent / "spec.lock.json").unlink()
    code, out, err = run_mlgen("lock", spec)
    if code != 0 and "not installed" in err and not REQUIRE_TOOLS:
        pytest.skip(err)
    assert code == 0, err
    lock = json.loads((spec.parent / "spec.lock.json").read_text())
    assert sorted(lock["platforms"]) == ["onprem", "serverless/aws"]
    arm = lock["platforms"]["serverless/aws"]
    assert (arm["python"], arm["tag"]) == ("3.12", "aarch64-manylinux_2_34")
    numpy = next(p for p in arm["packages"] if p["name"] == "numpy")
    assert all("aarch64" in f["file"] and f["size"] > 1_000_000 and len(f["sha256"]) == 64 for f in numpy["files"])
    host = next(p for p in lock["platforms"]["onprem"]["packages"] if p["name"] == "numpy")
    assert all("x86_64" in f["file"] for f in host["files"])
    assert "serverless/aws" in out and "packages" in out
    assert run_mlgen("render", spec, "--target", "onprem,serverless", "-o", tmp_path / "out")[0] == 0


def plan_options(spec) -> dict:
    code, out, err = run_mlgen("plan", spec, "--no-measure", "--format", "json")
    return {o["provider"] and f"{o['target']}/{o['provider']}" or o["target"]: o for o in json.loads(out)[0]["options"]}


def test_plan_counts_the_locked_wheels_the_platform_installs(tmp_path):
    spec = iris_copy(tmp_path)
    lock = json.loads((spec.parent / "spec.lock.json").read_text())
    wheels_mb = sum(max(f["size"] for f in p["files"]) for p in lock["platforms"]["serverless/aws"]["packages"]) / 1e6
    options = plan_options(spec)
    assert options["serverless/aws"]["bundle_mb"] >= wheels_mb > 40  # scikit-learn, scipy, numpy
    (spec.parent / "spec.lock.json").unlink()
    unlocked = plan_options(spec)["serverless/aws"]
    assert unlocked["bundle_mb"] < 1 and any("no lock" in reason for reason in unlocked["reasons"])


def test_the_lambda_size_limit_catches_a_heavy_locked_dependency(tmp_path):
    spec = iris_copy(tmp_path)
    lock_file = spec.parent / "spec.lock.json"
    lock = json.loads(lock_file.read_text())
    heavy = next(p for p in lock["platforms"]["serverless/aws"]["packages"] if p["name"] == "cloudpickle")
    heavy["files"][0]["size"] = 300_000_000  # a dependency the size table does not know
    lock_file.write_text(json.dumps(lock))
    option = plan_options(spec)["serverless/aws"]
    assert not option["fits"]
    assert any("250" in reason and "dependencies" in reason for reason in option["reasons"]), option["reasons"]
