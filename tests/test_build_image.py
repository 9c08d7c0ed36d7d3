"""build-image.sh in the Kubernetes bundle: it builds with the bundle's Dockerfile, pushes, and
pins the digest the registry answered in every overlay, so `kubectl kustomize overlays/ENV` names
exactly what was pushed. docker and podman are stand-ins on PATH that record their arguments and
answer as the real ones do."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
import yaml

from helpers import EXAMPLES, render_spec, require_tool

DIGEST = "sha256:" + "ab12" * 16
STAND_IN = {
    "docker": f"""\
        #!/usr/bin/env bash
        printf '%s\\n' "docker $*" >>"$CALLS"
        if [[ $1 == image && $2 == inspect ]]; then
          printf '%s\\n' "other.example.com/x@sha256:{'0' * 64}" "${{@: -1}}"
          printf '%s\\n' "${{@: -1}}" | sed 's/:[^:/]*$//' | sed 's/$/@{DIGEST}/'
        fi
        """,
    "podman": f"""\
        #!/usr/bin/env bash
        printf '%s\\n' "podman $*" >>"$CALLS"
        if [[ $1 == push ]]; then printf '%s' '{DIGEST}' >"$3"; fi
        """,
}


@pytest.fixture
def bundle(tmp_path):
    return render_spec(EXAMPLES / "iris" / "spec.yaml", "kubernetes", tmp_path / "out")


def run_script(bundle, tmp_path, tools, *args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        (bin_dir / tool).write_text(textwrap.dedent(STAND_IN[tool]))
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls")}
    result = subprocess.run([str(bundle / "build-image.sh"), *args], capture_output=True, text=True, env=env, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, calls


def overlay_images(bundle, environment):
    return yaml.safe_load((bundle / "overlays" / environment / "kustomization.yaml").read_text())["images"]


def test_the_script_passes_shellcheck_with_nothing_excluded(bundle):
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", str(bundle / "build-image.sh")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_docker_builds_pushes_and_the_pushed_digest_lands_in_every_overlay(bundle, tmp_path):
    result, calls = run_script(bundle, tmp_path, ["docker"])
    assert result.returncode == 0, result.stderr
    image = "registry.example.com/ml/iris:1.0.0"
    assert calls[0] == f"docker build --file Dockerfile --tag {image} ."
    assert calls[1] == f"docker push {image}"
    for environment in ("dev", "prod"):
        assert overlay_images(bundle, environment) == [{"name": "registry.example.com/ml/iris", "digest": DIGEST}]
    assert f"targets.kubernetes.image: registry.example.com/ml/iris@{DIGEST}" in result.stdout
    kubectl = require_tool("kubectl")
    built = subprocess.run([kubectl, "kustomize", str(bundle / "overlays" / "prod")], capture_output=True, text=True,
                           timeout=120)
    assert built.returncode == 0, built.stderr
    images = {c["image"] for d in yaml.safe_load_all(built.stdout) if d and d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {f"registry.example.com/ml/iris@{DIGEST}"}


def test_podman_reports_the_digest_through_its_digest_file_and_image_renames(bundle, tmp_path):
    result, calls = run_script(bundle, tmp_path, ["podman"], "--image", "registry.example.com/team/iris")
    assert result.returncode == 0, result.stderr
    assert calls[0].startswith("podman build --file Dockerfile --tag registry.example.com/team/iris:1.0.0")
    assert calls[1].startswith("podman push --digestfile ")
    assert overlay_images(bundle, "dev") == [{"name": "registry.example.com/ml/iris",
                                               "newName": "registry.example.com/team/iris", "digest": DIGEST}]


def test_dry_run_and_no_push_leave_the_overlays_alone(bundle, tmp_path):
    before = (bundle / "overlays" / "prod" / "kustomization.yaml").read_text()
    result, calls = run_script(bundle, tmp_path, ["docker"], "--dry-run")
    assert result.returncode == 0 and calls == [] and "+ docker build" in result.stdout
    result, calls = run_script(bundle, tmp_path, ["docker"], "--no-push")
    assert result.returncode == 0 and [c.split()[1] for c in calls] == ["build"]
    assert (bundle / "overlays" / "prod" / "kustomization.yaml").read_text() == before


def test_no_container_tool_and_a_bad_repository_are_reported_together(bundle, tmp_path):
    result, _ = run_script(bundle, tmp_path, [], "--image", "Registry/UPPER@sha256:x")
    assert result.returncode == 1
    assert "neither docker nor podman is installed" in result.stderr and "is not a repository name" in result.stderr
