"""An on-prem service whose model lives in object storage (`model.uri`): the hardened unit gives the
runtime a persistent cache (CacheDirectory=, MLGEN_MODEL_CACHE) that systemd accepts without
loosening the hardening; a connected install lets the installed unit's own command fetch the model
from a real store (moto's S3 server) and a second start finds it in the cache with the store gone;
the offline bundle carries the model, fetched once by the runtime's own fetch.py when it is built,
and install.sh checks it and puts it in the service's cache, so the service never reaches the
store. The air-gapped boot of the same story is tests/test_target_onprem_model_uri_nspawn.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import EXAMPLES, free_port, render_spec, require_tool, stop_process
from nspawn import QUADLET_PACKAGES, QUADLET_SUITE, cached_root
from onprem_bundle import (derived_spec, directive, exec_start_command, render, security_exposure, systemd_verify,
                           tree_state, wheelhouse_for)
from runtime.stores import S3Store

from mlgen.errors import RenderError
from mlgen.plan import plan_target
from mlgen.render import Renderer
from mlgen.spec import load_spec

pytest.importorskip("requests")
import requests  # noqa: E402

WHEEL_CACHE = Path(os.environ.get("MLGEN_WHEEL_CACHE", Path.home() / ".cache" / "mlgen-wheelhouse"))
READY_DEADLINE_S = 60
MODEL = EXAMPLES / "iris" / "model" / "model.joblib"
SHA256 = hashlib.sha256(MODEL.read_bytes()).hexdigest()
KEY = "iris/1.0.0/model.joblib"
HOME = "opt/mlgen/iris"
CACHE = f"var/cache/mlgen/iris/{SHA256}/model.joblib"
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def uri_spec(folder: Path, uri: str = f"s3://models/{KEY}", sha256: str = SHA256, **changes) -> Path:
    return derived_spec(folder, "iris", {"model": {"path": None, "uri": uri, "sha256": sha256},
                                         "runtime": {"python": THIS_PYTHON}, **changes})


# ---- what systemd, shellcheck and Quadlet make of the rendered files ----------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("onprem-uri-render")
    return render(uri_spec(base / "spec"), base / "out")


def test_the_unit_gives_the_runtime_a_persistent_cache_and_keeps_its_hardening(rendered, tmp_path) -> None:
    unit = (rendered / "iris.service").read_text()
    assert directive(unit, "CacheDirectory") == ["mlgen/iris"] and directive(unit, "CacheDirectoryMode") == ["0750"]
    assert '"MLGEN_MODEL_CACHE=/var/cache/mlgen/iris"' in directive(unit, "Environment")
    assert directive(unit, "ProtectSystem") == ["strict"] and directive(unit, "StateDirectory") == ["mlgen/iris"]
    result = systemd_verify(tmp_path, rendered / "iris.service")
    assert (result.stdout + result.stderr).strip() == "" and result.returncode == 0, result.stdout + result.stderr
    exposure, report = security_exposure(tmp_path, rendered / "iris.service")
    assert exposure <= 2.0, report
    assert not (rendered / "model.sha256").exists() and not (rendered / "app" / "model").exists()


@pytest.mark.parametrize("uri", [f"s3://models/{KEY}", f"https://models.example.com/{KEY}"])
def test_shellcheck_passes_the_scripts_of_a_uri_spec(uri, tmp_path) -> None:
    bundle = render(uri_spec(tmp_path / "spec", uri), tmp_path / "out")
    scripts = sorted(map(str, bundle.glob("*.sh")))
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_a_new_model_version_changes_only_the_uri_and_the_sha256(tmp_path) -> None:
    """A rollback is a one-field change: nothing else in the bundle depends on the model's version."""
    first = render(uri_spec(tmp_path / "a"), tmp_path / "a-out")
    other_sha = hashlib.sha256(b"another model").hexdigest()
    second = render(uri_spec(tmp_path / "b", "s3://models/iris/1.1.0/model.joblib", other_sha),
                    tmp_path / "b-out")
    files = lambda bundle: {p.relative_to(bundle).as_posix(): p.read_text() for p in sorted(bundle.rglob("*"))
                            if p.is_file() and not p.name.startswith(".mlgen")}
    old, new = files(first), files(second)
    assert old.keys() == new.keys()
    changed = {path for path in old if old[path] != new[path]}
    assert changed == {"INSTALL.md", "app/serving.json", "install.sh"}
    for path in changed:
        assert (old[path].replace(SHA256, other_sha).replace("/1.0.0/", "/1.1.0/")) == new[path], path


def test_a_path_spec_gets_none_of_the_cache_lines(tmp_path) -> None:
    bundle = render_spec(EXAMPLES / "iris" / "spec.yaml", "onprem", tmp_path)
    assert "CacheDirectory" not in (bundle / "iris.service").read_text()
    assert "model-cache" not in (bundle / "install.sh").read_text()
    assert (bundle / "model.sha256").exists()


def test_quadlet_mounts_a_writable_model_cache_volume_for_the_container(tmp_path) -> None:
    root = cached_root(QUADLET_PACKAGES, suite=QUADLET_SUITE)
    bundle = render(uri_spec(tmp_path / "spec", targets={"onprem": {"mode": "container", "image": "localhost/iris:1"}}),
                    tmp_path / "out")
    units = tmp_path / "quadlet"
    units.mkdir()
    shutil.copy2(bundle / "iris.container", units)
    result = subprocess.run(["systemd-nspawn", "-q", "-D", str(root), "--read-only", "--register=no", "--keep-unit",
                             "--pipe", f"--bind-ro={units}:/etc/containers/systemd", "/usr/libexec/podman/quadlet", "-dryrun"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "---iris.service---" in result.stdout, result.stdout + result.stderr
    (exec_start,) = directive(result.stdout.split("---iris.service---", 1)[1], "ExecStart")
    for expected in ("--read-only", "-v iris-model-cache:/var/cache/mlgen-model:U",
                     "--env MLGEN_MODEL_CACHE=/var/cache/mlgen-model"):
        assert expected in exec_start, exec_start


def test_an_air_gapped_container_host_with_a_uri_model_is_refused_at_model_uri(tmp_path) -> None:
    spec = uri_spec(tmp_path, targets={"onprem": {"mode": "container", "image": "localhost/iris:1", "air_gapped": True}})
    with pytest.raises(RenderError) as failure:
        plan_target(load_spec(spec), "onprem", Renderer())
    (problem,) = failure.value.problems
    assert problem.field == "model.uri" and "air-gapped container host" in problem.message and "mode venv" in problem.hint


# ---- installs into a staging root, served by the unit's own command ------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    running = S3Store(tmp_path_factory.mktemp("s3-store"))
    running.put(KEY, MODEL.read_bytes())
    yield running
    running.stop()


def run(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def offline_bundle(store, tmp_path_factory) -> Path:
    """The bundle after its own build-offline-bundle.sh (no archive): wheelhouse/ and model-cache/."""
    base = tmp_path_factory.mktemp("onprem-uri-offline")
    bundle = render(uri_spec(base / "spec", targets={"onprem": {"air_gapped": True}}), base / "out")
    with pytest.MonkeyPatch.context() as patch:  # the builder reaches the store as any AWS client would
        for key, value in store.env.items():
            patch.setenv(key, value)
        wheelhouse_for(bundle, WHEEL_CACHE)  # the wheels once per session (the model is not cached there)
        built = run(bundle / "build-offline-bundle.sh", "--no-archive")
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"model-cache/: model-cache/{SHA256}/model.joblib" in built.stdout
    return bundle


class UnitCommand:
    """The installed unit's own ExecStart, run from the staging root with the unit's environment
    (MLGEN_MODEL_CACHE moved into the root too) plus `env`; stopped by its pid."""

    def __init__(self, root: Path, env: dict, log: Path) -> None:
        self.port, self.log = free_port(), log
        argv, environment, workdir = exec_start_command((root / "etc/systemd/system/iris.service").read_text(), root,
                                                        self.port)
        environment["MLGEN_MODEL_CACHE"] = str(root) + environment["MLGEN_MODEL_CACHE"]
        with log.open("ab") as output:
            self.process = subprocess.Popen(argv, cwd=workdir, env={"PATH": "/usr/bin:/bin", **environment, **env},
                                            stdout=output, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> "UnitCommand":
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def predict(self) -> list[int]:
        body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": sum(ROWS, [])}]}
        answer = requests.post(self.url + "/v2/models/iris/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        return next(o["data"] for o in answer.json()["outputs"] if o["name"] == "predict")

    def stop(self) -> None:
        stop_process(self.process)


def expected_predictions() -> list[int]:
    import joblib
    import numpy as np

    return joblib.load(MODEL).predict(np.array(ROWS, dtype=np.float32)).tolist()


def test_a_connected_install_lets_the_service_fetch_the_model_and_a_restart_fetches_nothing(
        offline_bundle, store, tmp_path) -> None:
    bundle = render(uri_spec(tmp_path / "spec"), tmp_path / "out")
    shutil.copytree(offline_bundle / "wheelhouse", bundle / "wheelhouse")  # only to spare the index; no model-cache/
    root = tmp_path / "root"
    root.mkdir()
    installed = run(bundle / "install.sh", "--root", str(root), "--timeout", "60")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "the service fetches its model from model.uri when it starts" in installed.stdout
    assert not (root / "var/cache").exists()

    first = UnitCommand(root, store.env, tmp_path / "first.log").wait_ready()
    try:
        assert first.predict() == expected_predictions()
    finally:
        first.stop()
    assert (root / CACHE).read_bytes() == MODEL.read_bytes()
    assert "sha256 verified" in first.log.read_text()

    # No store at all now (no endpoint, no credentials): the second start can only use the cache.
    second = UnitCommand(root, {}, tmp_path / "second.log").wait_ready()
    try:
        assert second.predict() == expected_predictions()
    finally:
        second.stop()
    log = second.log.read_text()
    assert "found in the cache" in log and "sha256 verified" not in log


def test_the_offline_bundle_carries_the_model_and_install_puts_it_in_the_cache(offline_bundle, tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = run(offline_bundle / "install.sh", "--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"change: install {root}/{CACHE} (mode 644)" in first.stdout
    assert (root / CACHE).read_bytes() == MODEL.read_bytes()
    before = tree_state(root)
    second = run(offline_bundle / "install.sh", "--root", str(root))
    assert second.stdout.rstrip().endswith("install.sh: nothing to change"), second.stdout
    assert tree_state(root) == before

    # The store is not reachable from here: no endpoint, no credentials; the service is ready anyway.
    server = UnitCommand(root, {"AWS_EC2_METADATA_DISABLED": "true"}, tmp_path / "server.log").wait_ready()
    try:
        assert server.predict() == expected_predictions()
    finally:
        server.stop()
    assert "found in the cache" in server.log.read_text()
    kept = run(offline_bundle / "uninstall.sh", "--root", str(root))
    assert kept.returncode == 0 and f"kept: {root}/var/cache/mlgen/iris (--purge removes it)" in kept.stdout
    purged = run(offline_bundle / "uninstall.sh", "--root", str(root), "--purge")
    assert purged.returncode == 0 and not (root / "var/cache/mlgen/iris").exists()


def test_install_refuses_a_bundled_model_that_is_not_the_specs(offline_bundle, tmp_path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(offline_bundle, copy, symlinks=True)
    (copy / "model-cache" / SHA256 / "model.joblib").write_bytes(b"tampered")
    root = tmp_path / "root"
    root.mkdir()
    result = run(copy / "install.sh", "--root", str(root))
    assert result.returncode == 1 and f"model-cache/ does not hold the model with sha256 {SHA256}" in result.stderr
    assert list(root.iterdir()) == []
    shutil.rmtree(copy / "model-cache")
    missing = run(copy / "install.sh", "--root", str(root))
    assert missing.returncode == 1 and "air-gapped but the bundle has no model-cache/" in missing.stderr


def test_the_builder_keeps_a_cached_copy_and_fails_on_the_wrong_bytes(offline_bundle, store, tmp_path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(offline_bundle, copy, symlinks=True)
    (copy / "model-cache" / ("0" * 64)).mkdir()  # an older version's folder
    env = {**store.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # the store is unreachable: the cached copy must do
    again = run(copy / "build-offline-bundle.sh", "--no-archive", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "found in the cache" in again.stderr and [p.name for p in (copy / "model-cache").iterdir()] == [SHA256]

    store.put("iris/tampered/model.joblib", b"not the model")
    bundle = render(uri_spec(tmp_path / "spec", "s3://models/iris/tampered/model.joblib"), tmp_path / "out")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in store.env.items():
            patch.setenv(key, value)
        wheelhouse_for(bundle, WHEEL_CACHE)  # the same requirements and builder: already cached
    wrong = run(bundle / "build-offline-bundle.sh", "--no-archive", env=store.env)
    assert wrong.returncode == 1 and "sha256 mismatch" in wrong.stderr, wrong.stderr
    assert "s3://models/iris/tampered/model.joblib" in wrong.stderr
    assert not list((bundle / "model-cache").rglob("*.joblib"))


def test_a_hostile_file_name_in_the_uri_reaches_the_bundle_and_the_installer_as_it_is(tmp_path) -> None:
    """Quotes, $(…), a backquote and a newline in the object's name: the name reaches no script as
    code (the scripts read it from serving.json and the folder), only the cache as a file name."""
    from urllib.parse import quote

    name = "a b'$(touch pwned)\n`touch pwned`.joblib"
    store = tmp_path / "store dir"
    store.mkdir()
    (store / name).write_bytes(MODEL.read_bytes())
    uri = "file://" + quote(f"{store}/{name}")
    bundle = render(uri_spec(tmp_path / "spec", uri, targets={"onprem": {"air_gapped": True}}), tmp_path / "out")
    assert "pwned" not in "".join(p.read_text() for p in bundle.glob("*.sh"))
    wheelhouse_for(bundle, WHEEL_CACHE)
    built = subprocess.run(["bash", str(bundle / "build-offline-bundle.sh"), "--no-archive"], capture_output=True,
                           text=True, timeout=900, cwd=tmp_path)  # where an injected `touch pwned` would write
    assert built.returncode == 0, built.stdout + built.stderr
    assert (bundle / "model-cache" / SHA256 / name).read_bytes() == MODEL.read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    planned = subprocess.run(["bash", str(bundle / "install.sh"), "--dry-run", "--root", str(root)], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"would: install {root}/var/cache/mlgen/iris/{SHA256}/a b'$(touch pwned)" in planned.stdout
    assert not list(tmp_path.rglob("pwned"))
