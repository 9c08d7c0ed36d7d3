"""Air-gapped, with the model in object storage: the offline bundle of an iris service whose spec
names its model by `model.uri` is built on this (connected) machine, which fetches the model once
from a real store (moto's S3 server) with the runtime's own fetch.py; a Debian bookworm container
booted with systemd under systemd-nspawn, with no network at all (--private-network: loopback
only), installs it: install.sh checks the model's sha256 and puts it in the unit's CacheDirectory=,
the hardened unit starts, is ready and answers V2 inference without ever reaching the store, and a
restart still finds the model in its cache. The Debian root is the one tests/nspawn.py caches."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nspawn
import pytest

from helpers import EXAMPLES
from onprem_bundle import derived_spec, render, wheelhouse_for
from runtime.stores import S3Store
from test_target_onprem_systemd import BOOKWORM_PYTHON, WHEEL_CACHE, _require_nspawn, _results

pytestmark = pytest.mark.slow

BOOT_DEADLINE_S = 600
MODEL = EXAMPLES / "iris" / "model" / "model.joblib"
URI = "s3://models/iris/2026-11-30/model.joblib"

DRIVER = r"""#!/bin/bash
# Runs inside the container as a oneshot unit after boot; every result lands in /result.
set -u
cd /root
tar -xzf /root/offline-bundle.tar.gz
./onprem/install.sh >/result/install.log 2>&1; echo $? >/result/install.rc
infer() {
  curl -sS --max-time 10 -H 'content-type: application/json' \
    -d '{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}' \
    http://127.0.0.1:8080/v2/models/iris/infer
}
infer >/result/infer-1.json 2>/result/infer-1.err
systemctl restart iris.service
for _ in $(seq 120); do
  curl -sf --max-time 2 http://127.0.0.1:8080/v2/health/ready >/dev/null && break
  sleep 0.5
done
infer >/result/infer-2.json 2>/result/infer-2.err
systemctl show iris.service -p ActiveState -p NRestarts -p User >/result/unit.txt
journalctl -b --no-pager -o cat -u iris.service >/result/journal.log 2>&1
find /var/cache/mlgen -printf '%u %m %P\n' | sort >/result/cache.txt
ip -o link 2>/dev/null >/result/links.txt || cat /proc/net/dev >/result/links.txt
echo done >/result/finished
"""


@pytest.fixture(scope="module")
def offline_bundle(tmp_path_factory) -> Path:
    """The offline archive, made by the bundle's own build-offline-bundle.sh, which fetched the model
    from the store; the store is stopped before anything boots."""
    _require_nspawn()
    base = tmp_path_factory.mktemp("nspawn-uri-bundle")
    store = S3Store(base)
    try:
        store.put("iris/2026-11-30/model.joblib", MODEL.read_bytes())
        spec = derived_spec(base / "spec", "iris", {
            "model": {"path": None, "uri": URI}, "runtime": {"python": BOOKWORM_PYTHON},
            # No network for the service either: the model must already be in its cache.
            "targets": {"onprem": {"air_gapped": True, "ip_address_deny": ["any"], "ip_address_allow": ["localhost"]}}})
        bundle = render(spec, base / "out")
        with pytest.MonkeyPatch.context() as patch:
            for key, value in store.env.items():
                patch.setenv(key, value)
            wheelhouse_for(bundle, WHEEL_CACHE)
            result = subprocess.run([str(bundle / "build-offline-bundle.sh"), "--output", str(base / "offline-bundle.tar.gz")],
                                    capture_output=True, text=True, timeout=900)
    finally:
        store.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model-cache/: model-cache/" in result.stdout
    return base / "offline-bundle.tar.gz"


@pytest.fixture(scope="module")
def air_gapped_run(offline_bundle, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("nspawn-uri-run")
    root, results = base / "root", base / "result"
    nspawn.copy_root(nspawn.cached_root(nspawn.BASE_PACKAGES), root)
    results.mkdir()
    try:
        shutil.copy2(offline_bundle, root / "root/offline-bundle.tar.gz")
        (results / "driver.sh").write_text(DRIVER)
        nspawn.enable(root, "mlgen-test.service", nspawn.oneshot_unit("onprem-uri", "/bin/bash /result/driver.sh"))
        console = nspawn.boot(root, binds={results: "/result"}, timeout=BOOT_DEADLINE_S, log=base / "console.log",
                              private_network=True)
        assert (results / "finished").exists(), f"the driver did not finish:\n{console.stdout[-3000:]}\n{_results(results)}"
        yield results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _read(results: Path, name: str) -> str:
    path = results / name
    assert path.exists(), f"the driver wrote no {name}:\n{_results(results)}"
    return path.read_text(errors="replace")


def test_the_air_gapped_install_puts_the_bundled_model_in_the_cache_and_the_service_answers(air_gapped_run) -> None:
    install = _read(air_gapped_run, "install.log")
    assert _read(air_gapped_run, "install.rc").strip() == "0", install
    assert "wheelhouse/ (offline)" in install and "ready: http://127.0.0.1:8080/v2/models/iris/infer" in install
    links = _read(air_gapped_run, "links.txt")
    assert "eth" not in links and "host0" not in links, links  # loopback only: the store was out of reach
    for name in ("infer-1.json", "infer-2.json"):  # before and after a restart
        outputs = {o["name"]: o for o in json.loads(_read(air_gapped_run, name))["outputs"]}
        assert outputs["predict"]["data"] == [0, 2]
    unit = _read(air_gapped_run, "unit.txt")
    assert "ActiveState=active" in unit and "NRestarts=0" in unit and "User=mlgen-iris" in unit


def test_the_service_never_fetched_it_found_the_model_in_its_cache_at_each_start(air_gapped_run) -> None:
    journal = _read(air_gapped_run, "journal.log")
    assert journal.count("found in the cache") == 2, journal
    assert "sha256 verified" not in journal and "could not be fetched" not in journal, journal
    cache = _read(air_gapped_run, "cache.txt").splitlines()
    (model,) = [line for line in cache if line.endswith("/model.joblib")]
    assert model.startswith("mlgen-iris 644 iris/"), cache  # the service's own, where its runtime looks
