"""install.sh and uninstall.sh run for real into a staging root (`--root`): the first install
builds the service's virtual environment offline from the bundle's wheelhouse, a second one
changes nothing, the unit's own ExecStart serves V2 inference, and uninstall keeps data unless
--purge. Preflight failures are clear and change nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port
from onprem_bundle import derived_spec, exec_start_command, render, tree_state, wheelhouse_for

pytest.importorskip("numpy")
pytest.importorskip("requests")
import numpy as np  # noqa: E402
import requests  # noqa: E402

WHEEL_CACHE = Path(os.environ.get("MLGEN_WHEEL_CACHE", Path.home() / ".cache" / "mlgen-wheelhouse"))
READY_DEADLINE_S = 60
HOME = "opt/mlgen/iris"
# The bundle's Python must be one this machine has: the one running the tests.
THIS_PYTHON = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def iris_spec(folder: Path, **changes) -> Path:
    return derived_spec(folder, "iris", {"runtime": THIS_PYTHON, **changes})


def run(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("onprem-install")
    rendered = render(iris_spec(base / "spec", targets={"onprem": {"air_gapped": True}}), base / "out")
    wheelhouse_for(rendered, WHEEL_CACHE)
    return rendered


@pytest.fixture(scope="module")
def installed(bundle, tmp_path_factory):
    """The bundle installed twice into one staging root: (root, first run, second run, state after
    the first run, state after the second)."""
    root = tmp_path_factory.mktemp("staging-root")
    first = run(bundle / "install.sh", "--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = tree_state(root)
    second = run(bundle / "install.sh", "--root", str(root))
    return root, first, second, after_first, tree_state(root)


def test_install_builds_the_venv_offline_and_says_it_skips_systemctl(installed, bundle) -> None:
    root, first, _second, _before, _after = installed
    assert "build the virtual environment" in first.stdout and "wheelhouse/ (offline)" in first.stdout
    assert "skip: systemctl daemon-reload, enable and start (staging root)" in first.stdout
    assert (root / HOME / "venv/bin/python").exists()
    assert (root / "etc/systemd/system/iris.service").read_bytes() == (bundle / "iris.service").read_bytes()
    env_file = root / "etc/mlgen/iris/environment"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert oct((root / "etc/mlgen/iris").stat().st_mode & 0o777) == "0o700"


def test_a_second_install_changes_nothing(installed) -> None:
    _root, _first, second, before, after = installed
    assert second.returncode == 0, second.stderr
    assert second.stdout.rstrip().endswith("install.sh: nothing to change")
    assert "change:" not in second.stdout
    assert after == before


def test_the_units_own_exec_start_serves_v2_inference(installed, bundle) -> None:
    root = installed[0]
    port = free_port()
    argv, environment, workdir = exec_start_command((root / "etc/systemd/system/iris.service").read_text(), root, port)
    assert argv[:3] == [f"{root}/{HOME}/venv/bin/python", "-m", "mlgen_runtime"]
    log = open(root / "server.log", "wb")
    server = subprocess.Popen(argv, cwd=workdir, env={"PATH": "/usr/bin:/bin", **environment}, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            assert server.poll() is None, (root / "server.log").read_text()
            try:
                if requests.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (root / "server.log").read_text()
            time.sleep(0.1)
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": sum(rows, [])}]}
        answer = requests.post(url + "/v2/models/iris/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        import joblib

        estimator = joblib.load(bundle / "app/model/model.joblib")
        assert outputs["predict"]["data"] == estimator.predict(np.array(rows, dtype=np.float32)).tolist()
        assert outputs["predict_proba"]["shape"] == [2, 3]
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_dry_run_prints_every_action_and_changes_nothing(bundle, tmp_path) -> None:
    result = run(bundle / "install.sh", "--dry-run", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    actions = [line for line in result.stdout.splitlines() if line.startswith("would: ")]
    assert any("/etc/mlgen/iris/environment" in a for a in actions)
    assert any("build the virtual environment" in a for a in actions)
    assert any(a.endswith("/etc/systemd/system/iris.service (mode 644)") for a in actions)
    assert "dry run: nothing was changed" in result.stdout


def test_uninstall_keeps_data_and_configuration_unless_purged(installed, bundle, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed[0], root, symlinks=True)
    (root / "var/lib/mlgen/iris").mkdir(parents=True)  # what systemd's StateDirectory= makes
    removed = run(bundle / "uninstall.sh", "--root", str(root))
    assert removed.returncode == 0, removed.stderr
    assert not (root / "etc/systemd/system/iris.service").exists() and not (root / HOME).exists()
    assert (root / "etc/mlgen/iris/environment").exists() and (root / "var/lib/mlgen/iris").exists()
    again = run(bundle / "uninstall.sh", "--root", str(root))
    assert again.stdout.rstrip().endswith("uninstall.sh: nothing to change")
    purged = run(bundle / "uninstall.sh", "--root", str(root), "--purge")
    assert purged.returncode == 0
    assert not (root / "etc/mlgen/iris").exists() and not (root / "var/lib/mlgen/iris").exists()


@pytest.fixture
def world_readable_dir():
    """A folder an unprivileged user can read (pytest's own tmp_path is root-only)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mlgen-onprem-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_preflight_lists_every_problem_and_changes_nothing(bundle, world_readable_dir) -> None:
    tmp_path = world_readable_dir
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    shutil.rmtree(copy / "wheelhouse")
    (copy / "app/model/model.joblib").write_bytes(b"tampered")
    fake_python = tmp_path / "python3.9"
    fake_python.write_text("#!/bin/sh\necho 3.9\n")
    fake_python.chmod(0o755)
    # Not root, no --root: and this machine runs no systemd.
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
                             str(copy / "install.sh"), "--python", str(fake_python)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot install iris:" in result.stderr
    for expected in ("run as root", "systemd is not running", f"is Python 3.9, the service needs {THIS_PYTHON['python']}",
                     "air-gapped but the bundle has no wheelhouse/", "does not match model.sha256"):
        assert expected in result.stderr, result.stderr


def test_usage_errors_exit_2(bundle) -> None:
    result = run(bundle / "install.sh", "--bogus")
    assert result.returncode == 2 and "unknown argument: --bogus" in result.stderr
    help_text = run(bundle / "install.sh", "--help")
    assert help_text.returncode == 0 and "--dry-run" in help_text.stdout and "set -euo" not in help_text.stdout


def test_a_changed_bundle_is_synced_and_the_venv_kept(installed, bundle, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed[0], root, symlinks=True)
    app = root / HOME / "app"
    (app / "left-over.py").write_text("stale = True\n")
    (app / "serving.json").write_text("{}\n")
    result = run(bundle / "install.sh", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert f"change: remove {app}/left-over.py (no longer in the bundle)" in result.stdout
    assert f"change: install {app}/serving.json (mode 644)" in result.stdout
    assert "ok: virtual environment" in result.stdout
    assert (app / "serving.json").read_bytes() == (bundle / "app/serving.json").read_bytes()
    assert not (app / "left-over.py").exists()


def test_missing_secrets_are_named_with_the_file_to_fill(tmp_path) -> None:
    spec = iris_spec(tmp_path / "spec", secrets=[{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"}])
    bundle = render(spec, tmp_path / "out")
    (tmp_path / "root").mkdir()
    result = run(bundle / "install.sh", "--dry-run", "--root", str(tmp_path / "root"))
    assert result.returncode == 0, result.stderr
    assert "DB_PASSWORD (fill /etc/mlgen/iris/credentials/iris-db/password, mode 0600)" in result.stderr
    assert "would: create folder" in result.stdout and "/etc/mlgen/iris/credentials/iris-db (mode 700)" in result.stdout


def test_container_mode_installs_the_quadlet_unit_and_environment(tmp_path) -> None:
    spec = iris_spec(tmp_path / "spec", targets={"onprem": {"mode": "container", "image": "localhost/iris:1"}})
    bundle = render(spec, tmp_path / "out")
    root = tmp_path / "root"
    root.mkdir()
    first = run(bundle / "install.sh", "--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    assert (root / "etc/containers/systemd/iris.container").read_bytes() == (bundle / "iris.container").read_bytes()
    assert (root / "etc/mlgen/iris/environment").exists() and not (root / "opt").exists()
    second = run(bundle / "install.sh", "--root", str(root))
    assert second.stdout.rstrip().endswith("install.sh: nothing to change"), second.stdout
    removed = run(bundle / "uninstall.sh", "--root", str(root))
    assert removed.returncode == 0 and not (root / "etc/containers/systemd/iris.container").exists()


def test_a_failed_pip_install_stops_the_installer_and_leaves_no_stamped_venv(bundle, tmp_path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    (copy / "wheelhouse/SHA256SUMS").unlink()
    next((copy / "wheelhouse").glob("numpy-*.whl")).unlink()
    root = tmp_path / "root"
    root.mkdir()
    result = run(copy / "install.sh", "--root", str(root))
    assert result.returncode == 1, result.stdout
    assert "install.sh: error: could not build the virtual environment" in result.stderr
    assert not (root / HOME / "venv/.mlgen-requirements").exists()
    assert not (root / "etc/systemd/system/iris.service").exists()  # nothing after the failed step
