"""Blue-green on one host (rollout.strategy blue_green): the bundle carries a template unit per
color, an nginx upstream per color and the spec's examples with their checker; shellcheck,
systemd-analyze and nginx accept them; what the host cannot do is refused at its line.

Under the real systemd (a Debian bookworm root booted with systemd-nspawn, no network) the
offline bundles of one iris service in four versions are installed one after the other while a
client sends requests with an API key through the TLS proxy the whole time (the installer's
release check sends the spec's examples with a key too): v1 serves; a v2 whose model fails to
load, and one that answers the spec's examples wrongly, never receive traffic and the installer
exits 1; a good v2 takes over with no failed request; `install.sh --rollback` brings v1 back, again
with no failed request. Then the same service installed all at once (v0.9.0) is migrated by the
blue-green v1 (green starts beside it) and `--rollback` returns to it, both with no failed request."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import nspawn
import pytest

from helpers import EXAMPLES, require_tool, run_mlgen
from onprem_bundle import derived_spec, nginx_test, render, systemd_verify, throwaway_certificate, wheelhouse_for
from test_target_onprem_systemd import BOOKWORM_PYTHON, WHEEL_CACHE, _require_nspawn, _results

CERTIFICATE, KEY = "/etc/ssl/certs/iris.pem", "/etc/ssl/private/iris.key"
BLUE_GREEN = {"rollout": {"strategy": "blue_green"},
              "targets": {"onprem": {"tls": {"certificate": CERTIFICATE, "key": KEY}}}}


def _spec(tmp: Path, changes: dict | None = None) -> Path:
    return derived_spec(tmp, "iris", _merged(BLUE_GREEN, changes or {}))


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("bluegreen")
    return render(_spec(base / "spec", {"scaling": {"min_replicas": 2}}), base / "out")


def test_the_bundle_has_a_unit_and_an_upstream_per_color(bundle) -> None:
    assert {p.name for p in bundle.glob("*.service")} == {"iris-blue@.service", "iris-green@.service"}
    green = (bundle / "iris-green@.service").read_text()
    assert 'ExecStart="/opt/mlgen/iris/green/venv/bin/python" -m mlgen_runtime serve --config "/opt/mlgen/iris/green/app/serving.json"' in green
    assert "server 127.0.0.1:8180 " in (bundle / "iris.upstream-green.conf").read_text()
    assert "server 127.0.0.1:8081 " in (bundle / "iris.upstream-blue.conf").read_text()
    site = (bundle / "iris.nginx.conf").read_text()
    assert "include mlgen/iris.upstream.conf;" in site and "upstream iris_service" not in site
    examples = json.loads((bundle / "release" / "examples.json").read_text())
    assert examples[0]["expected"] == {"predict": [0, 2]}


@pytest.mark.parametrize("unit", ["iris-blue@.service", "iris-green@.service"])
def test_systemd_verify_prints_nothing_for_each_color(bundle, unit, tmp_path) -> None:
    result = systemd_verify(tmp_path, bundle / unit)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_prometheus_scrapes_the_live_color_from_the_file_install_sh_switches(bundle) -> None:
    import yaml

    config = yaml.safe_load((bundle / "monitoring" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "iris"]
    assert job["file_sd_configs"] == [{"files": ["/opt/mlgen/iris/scrape-targets.json"]}] and "static_configs" not in job
    green = json.loads((bundle / "release" / "scrape-targets-green.json").read_text())
    assert green == [{"targets": ["127.0.0.1:8180", "127.0.0.1:8181"], "labels": {"service": "iris", "color": "green"}}]
    result = subprocess.run([require_tool("promtool"), "check", "config", "prometheus.yml"], cwd=bundle / "monitoring",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_every_script(bundle) -> None:
    scripts = sorted(bundle.glob("*.sh"))
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("color", ["blue", "green"])
def test_nginx_accepts_the_site_with_either_colors_upstream(bundle, color, tmp_path) -> None:
    certificate, key = throwaway_certificate(tmp_path)
    site = tmp_path / "iris.conf"
    site.write_text((bundle / "iris.nginx.conf").read_text().replace(CERTIFICATE, str(certificate)).replace(KEY, str(key)))
    (tmp_path / "mlgen").mkdir()
    shutil.copy2(bundle / f"iris.upstream-{color}.conf", tmp_path / "mlgen" / "iris.upstream.conf")
    result = nginx_test(site, tmp_path)  # the include is relative to nginx.conf's folder, as /etc/nginx on a host
    assert result.returncode == 0, result.stderr


def test_the_smoke_checker_judges_answers_as_verify_does(bundle) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("smoke", bundle / "release" / "smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    example = json.loads((bundle / "release" / "examples.json").read_text())[0]
    right = json.dumps({"outputs": [{"name": "predict", "data": [0, 2]}]}).encode()
    assert smoke.judge(example, 200, right) is None
    assert "output predict is [1, 2]" in smoke.judge(example, 200, right.replace(b"[0, 2]", b"[1, 2]"))
    assert "HTTP 503" in smoke.judge(example, 503, b'{"error": "not ready"}')


def test_a_staging_install_puts_the_first_version_in_blue_and_a_second_run_changes_nothing(tmp_path) -> None:
    import sys

    from onprem_bundle import tree_state

    this_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    staged = render(_spec(tmp_path / "spec", {"runtime": {"python": this_python}, "targets": {"onprem": {"air_gapped": True}}}),
                    tmp_path / "out")
    wheelhouse_for(staged, WHEEL_CACHE)
    root = tmp_path / "root"
    root.mkdir()
    install = lambda *args: subprocess.run(["bash", str(staged / "install.sh"), "--root", str(root), *args],
                                           capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    first = install()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "releasing version 1.0.0 to blue" in first.stdout
    for path in ("opt/mlgen/iris/blue/app/serving.json", "opt/mlgen/iris/blue/venv/bin/python",
                 "opt/mlgen/iris/blue/release/smoke.py", "etc/systemd/system/iris-blue@.service",
                 "etc/nginx/mlgen/iris.upstream.conf", "etc/nginx/conf.d/iris.conf"):
        assert (root / path).exists(), path
    assert not (root / "opt/mlgen/iris/green").exists()
    before = tree_state(root)
    second = install()
    assert second.returncode == 0 and "install.sh: nothing to change" in second.stdout, second.stdout + second.stderr
    assert tree_state(root) == before
    rollback = install("--rollback")
    assert rollback.returncode == 1 and "nothing to roll back to" in rollback.stderr, rollback.stderr


@pytest.mark.slow
def test_mlgen_verify_starts_the_first_colors_unit_and_it_answers_the_examples(tmp_path) -> None:
    import sys

    result = subprocess.run([sys.executable, "-m", "mlgen", "verify", str(_spec(tmp_path / "spec")), "-t", "onprem",
                             "--format", "json"], capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = json.loads(result.stdout)
    assert report["target"] == "onprem" and report["status"] == "passed", report


@pytest.mark.parametrize("changes, expected", [
    ({"targets": {"onprem": {"tls": None}}}, "rollout.strategy: blue_green on one host switches traffic in the nginx proxy"),
    ({"targets": {"onprem": {"mode": "container", "image": "registry.example.com/iris:1"}}}, "targets.onprem.mode: blue_green on one host"),
    ({"runtime": {"grpc_port": 9000}}, "runtime.grpc_port: blue_green on one host cannot run two versions on one gRPC port"),
    ({"runtime": {"port": 65500}}, "runtime.port: blue_green runs the new version on ports 65600-65600"),
    ({"rollout": {"strategy": "canary"}}, "onprem releases with all_at_once, blue_green"),
])
def test_what_one_host_cannot_release_is_a_located_error(tmp_path, changes, expected) -> None:
    spec = _spec(tmp_path / "spec", changes)
    result = run_mlgen("render", spec, "-t", "onprem", "-o", tmp_path / "out")
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert "spec.yaml:" in result.stderr and "Traceback" not in result.stderr


# ---- under the real systemd ------------------------------------------------------------------------
BOOT_DEADLINE_S = 1500
REQUEST = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4],
                       "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}
# Each phase's client sends requests for as long as its install runs, then this many more (and at
# most MAX_REQUESTS in all, so a hung install cannot make it loop forever).
AFTER_REQUESTS, MAX_REQUESTS = 50, 100000
# Every version asks for an API key (security.auth api_key): the client sends it, and so must the
# installer's release check, reading the root-only credential file the administrator filled.
API_KEY = {"security": {"auth": "api_key", "api_keys": [{"secret": "iris-api-keys"}]}}
API_KEY_FILE, API_KEY_VALUE = "etc/mlgen/iris/credentials/iris-api-keys/api_key", "bluegreen-test-key-1"

CLIENT = r"""
import http.client, json, os, ssl, sys, time
phase = sys.argv[1]
request = json.dumps(json.load(open("/result/request.json")))
context = ssl.create_default_context(cafile="/etc/ssl/certs/iris.pem")
stop, after, limit = f"/result/stop-{phase}", int(sys.argv[2]), int(sys.argv[3])
result = {"total": 0, "failed": 0, "errors": [], "versions": {}, "first": {}, "last": {}}
while result["total"] < limit:
    if os.path.exists(stop):
        if after == 0:
            break
        after -= 1
    result["total"] += 1
    try:  # a new connection per request, as curl would
        connection = http.client.HTTPSConnection("127.0.0.1", 443, timeout=30, context=context)
        connection.request("POST", "/v2/models/iris/infer", request,
                           {"Content-Type": "application/json", "Authorization": "Bearer API_KEY_VALUE"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        answer = json.loads(body) if response.status == 200 else {}
        predict = [o["data"] for o in answer.get("outputs", []) if o.get("name") == "predict"]
        if response.status != 200 or predict != [[0, 2]]:
            raise ValueError(f"HTTP {response.status}: {body[:200]!r}")
        version = answer.get("model_version", "?")
        now = time.time()
        result["versions"][version] = result["versions"].get(version, 0) + 1
        result["first"].setdefault(version, now)
        result["last"][version] = now
    except Exception as error:
        result["failed"] += 1
        if len(result["errors"]) < 10:
            result["errors"].append(f"{time.time():.3f} {error!r}")
    if result["total"] == 1:
        open(f"/result/started-{phase}", "w").close()
    time.sleep(0.01)  # leave the two cores to the install
json.dump(result, open(f"/result/client-{phase}.json", "w"))
""".replace("API_KEY_VALUE", API_KEY_VALUE)

DRIVER = r"""#!/bin/bash
# Runs inside the container as a oneshot unit after boot; every result lands in /result.
set -u
cd /root
for version in v1 bad wrong v2 aao; do
  mkdir "$version" && tar -xzf "/root/$version.tar.gz" -C "$version"
done
./v1/onprem/install.sh >/result/install-v1.log 2>&1; echo $? >/result/install-v1.rc

# phase NAME COMMAND...: COMMAND while the client sends requests through the proxy.
phase() {
  local name=$1 client
  shift
  python3 /result/client.py "$name" AFTER MAX &
  client=$!
  until [[ -e /result/started-$name ]] || ! kill -0 "$client" 2>/dev/null; do sleep 0.1; done
  date +%s.%N >"/result/start-$name"
  "$@" >"/result/install-$name.log" 2>&1; echo $? >"/result/install-$name.rc"
  date +%s.%N >"/result/end-$name"
  touch "/result/stop-$name"
  wait "$client"
  cat /opt/mlgen/iris/live >"/result/live-$name" 2>&1
  cat /opt/mlgen/iris/scrape-targets.json >"/result/scrape-$name.json" 2>&1
  systemctl list-units --all --plain --no-legend 'iris*' >"/result/units-$name.txt"
}
phase bad ./bad/onprem/install.sh --timeout 180
phase wrong ./wrong/onprem/install.sh
phase v2 ./v2/onprem/install.sh
phase again ./v2/onprem/install.sh
phase rollback ./v2/onprem/install.sh --rollback
journalctl -b --no-pager -o cat -u 'iris-*' >/result/journal.log 2>&1
./v2/onprem/uninstall.sh >/result/uninstall.log 2>&1; echo $? >/result/uninstall.rc
systemctl list-units --all --plain --no-legend 'iris*' >/result/loaded-after.txt
ls -A /etc/systemd/system /etc/nginx/mlgen >/result/files-after.txt 2>&1

# From an install made all at once (v0.9.0, its unit iris.service on the spec's port behind the same
# TLS site): the blue-green v1 migrates it while the client runs, and --rollback returns to it.
./aao/onprem/install.sh >/result/install-aao.log 2>&1; echo $? >/result/install-aao.rc
phase migrate ./v1/onprem/install.sh
phase unmigrate ./v1/onprem/install.sh --rollback
./v1/onprem/uninstall.sh >/result/uninstall-migrated.log 2>&1; echo $? >/result/uninstall-migrated.rc
systemctl list-units --all --plain --no-legend 'iris*' >/result/loaded-after-migrated.txt
ls -A /etc/systemd/system /etc/systemd/system/multi-user.target.wants /opt/mlgen >/result/files-after-migrated.txt 2>&1
ip -o link 2>/dev/null >/result/links.txt || cat /proc/net/dev >/result/links.txt
echo done >/result/finished
""".replace("AFTER", str(AFTER_REQUESTS)).replace("MAX", str(MAX_REQUESTS))


def _offline_bundle(base: Path, name: str, changes: dict) -> Path:
    spec = _spec(base / name / "spec", _merged({"runtime": {"python": BOOKWORM_PYTHON}, **API_KEY,
                                                "targets": {"onprem": {"air_gapped": True}}}, changes))
    if name == "bad":  # half the model file, with the spec's sha256 of that half: it ships, then fails to load
        model = spec.parent / "model" / "model.joblib"
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        text = spec.read_text()
        original = hashlib.sha256((EXAMPLES / "iris" / "model" / "model.joblib").read_bytes()).hexdigest()
        spec.write_text(text.replace(original, hashlib.sha256(model.read_bytes()).hexdigest()))
    bundle = render(spec, base / name / "out")
    wheelhouse_for(bundle, WHEEL_CACHE)
    archive = base / f"{name}.tar.gz"
    result = subprocess.run([str(bundle / "build-offline-bundle.sh"), "--output", str(archive)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return archive


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Path:
    _require_nspawn()
    base = tmp_path_factory.mktemp("bluegreen-nspawn")
    archives = {
        "v1": _offline_bundle(base, "v1", {"metadata": {"version": "1.0.0"}}),
        "bad": _offline_bundle(base, "bad", {"metadata": {"version": "2.0.0-bad"}}),
        # Loads, but its examples expect another answer than the model gives: the smoke request fails.
        "wrong": _offline_bundle(base, "wrong", {"metadata": {"version": "2.0.0-wrong"},
                                                 "examples": [{"inputs": {"input-0": [REQUEST["inputs"][0]["data"][:4]]},
                                                               "outputs": {"predict": [1]}}]}),
        "v2": _offline_bundle(base, "v2", {"metadata": {"version": "2.0.0"}}),
        # The same service installed all at once, before blue-green.
        "aao": _offline_bundle(base, "aao", {"metadata": {"version": "0.9.0"}, "rollout": {"strategy": "all_at_once"}}),
    }
    root, results = base / "root", base / "result"
    nspawn.copy_root(nspawn.cached_root((*nspawn.BASE_PACKAGES, "nginx")), root)
    results.mkdir()
    try:
        for name, archive in archives.items():
            shutil.copy2(archive, root / f"root/{name}.tar.gz")
        certificate, key = root / CERTIFICATE.lstrip("/"), root / KEY.lstrip("/")
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=iris", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(certificate)], check=True, capture_output=True)
        key.chmod(0o600)
        api_key = root / API_KEY_FILE
        api_key.parent.mkdir(parents=True)
        api_key.write_text(API_KEY_VALUE + "\n")
        api_key.chmod(0o600)
        (results / "request.json").write_text(json.dumps(REQUEST))
        (results / "client.py").write_text(CLIENT)
        (results / "driver.sh").write_text(DRIVER)
        nspawn.enable(root, "mlgen-test.service", nspawn.oneshot_unit("bluegreen", "/bin/bash /result/driver.sh"))
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


def _phase(results: Path, name: str) -> tuple[str, str, dict]:
    client = json.loads(_read(results, f"client-{name}.json"))
    assert "No such file" not in _read(results, f"install-{name}.log")  # nothing a script did not mean to say
    return _read(results, f"install-{name}.rc").strip(), _read(results, f"install-{name}.log"), client


def _running(results: Path, name: str) -> list[str]:
    """The service's units that ran when phase `name` ended."""
    return [line.split()[0] for line in _read(results, f"units-{name}.txt").splitlines() if " active running" in line]


def _figures(results: Path, name: str, client: dict) -> str:
    start, end = (float(_read(results, f"{edge}-{name}")) for edge in ("start", "end"))
    versions = sorted(client["first"], key=client["first"].get)
    switch = f", first answer of {versions[-1]} {client['first'][versions[-1]] - start:.2f} s in" if len(versions) > 1 else ""
    return f"{name}: install {end - start:.2f} s{switch}; {client['total']} requests, {client['failed']} failed, by version {client['versions']}"


@pytest.mark.slow
def test_a_version_that_fails_to_load_never_receives_traffic(releases) -> None:
    assert _read(releases, "install-v1.rc").strip() == "0", _read(releases, "install-v1.log")
    links = _read(releases, "links.txt")
    assert "eth" not in links and "host0" not in links, links  # loopback only
    rc, log, client = _phase(releases, "bad")
    print(_figures(releases, "bad", client))
    assert rc == "1", log
    assert "the new version (green) did not become ready on port 8180" in log
    assert "green never received traffic and is stopped; blue still serves every request" in log
    assert client["failed"] == 0 and set(client["versions"]) == {"1.0.0"}, client
    assert _read(releases, "live-bad").strip() == "blue"


@pytest.mark.slow
def test_a_version_that_answers_the_examples_wrongly_never_receives_traffic(releases) -> None:
    rc, log, client = _phase(releases, "wrong")
    print(_figures(releases, "wrong", client))
    assert rc == "1", log
    assert "example 1: output predict is [0], expected [1]" in log
    assert "answered the spec's examples wrongly on port 8180" in log
    assert client["failed"] == 0 and set(client["versions"]) == {"1.0.0"}, client


@pytest.mark.slow
def test_a_good_version_takes_over_with_no_failed_request_and_rollback_brings_the_old_one_back(releases) -> None:
    rc, log, client = _phase(releases, "v2")
    print(_figures(releases, "v2", client))
    assert rc == "0", log
    assert client["failed"] == 0, client
    assert client["versions"].get("2.0.0") and client["versions"].get("1.0.0"), client  # the switch happened under load
    assert _read(releases, "live-v2").strip() == "green"
    assert json.loads(_read(releases, "scrape-v2.json"))[0]["targets"] == ["127.0.0.1:8180"]  # Prometheus follows
    assert _running(releases, "v2") == ["iris-green@8180.service"]  # blue stopped after the drain

    rc, log, client = _phase(releases, "again")
    assert rc == "0" and "green runs this bundle's version 2.0.0" in log and "install.sh: nothing to change" in log, log
    assert client["failed"] == 0 and set(client["versions"]) == {"2.0.0"}, client

    rc, log, client = _phase(releases, "rollback")
    print(_figures(releases, "rollback", client))
    assert rc == "0", log
    assert "rolling back from green to blue" in log
    assert client["failed"] == 0, client
    assert _read(releases, "live-rollback").strip() == "blue"
    assert json.loads(_read(releases, "scrape-rollback.json"))[0]["targets"] == ["127.0.0.1:8080"]
    assert client["last"]["1.0.0"] > client["first"].get("2.0.0", 0), client  # v1 answers again at the end

    assert _read(releases, "uninstall.rc").strip() == "0", _read(releases, "uninstall.log")
    assert _read(releases, "loaded-after.txt").strip() == ""
    assert "iris" not in _read(releases, "files-after.txt")


@pytest.mark.slow
def test_an_all_at_once_install_is_migrated_with_no_failed_request_and_rollback_returns_to_it(releases) -> None:
    """The all-at-once v0.9.0 serves through the TLS site; the blue-green v1 starts in green beside
    it, passes its checks, nginx switches, the all-at-once unit stops (kept); --rollback starts it
    again and switches back; a client loops through TLS the whole time."""
    assert _read(releases, "install-aao.rc").strip() == "0", _read(releases, "install-aao.log")
    rc, log, client = _phase(releases, "migrate")
    print(_figures(releases, "migrate", client))
    assert rc == "0", log
    assert "the all-at-once install (iris.service) serves until then" in log
    assert client["failed"] == 0, client
    assert client["versions"].get("0.9.0") and client["versions"].get("1.0.0"), client  # switched under load
    assert client["last"]["1.0.0"] > client["last"]["0.9.0"], client
    assert _read(releases, "live-migrate").strip() == "green"
    assert _running(releases, "migrate") == ["iris-green@8180.service"]  # the all-at-once unit stopped after the drain

    rc, log, client = _phase(releases, "unmigrate")
    print(_figures(releases, "unmigrate", client))
    assert rc == "0", log
    assert "rolling back from green to all-at-once" in log
    assert client["failed"] == 0, client
    assert client["last"]["0.9.0"] > client["first"].get("1.0.0", 0), client  # v0.9.0 answers again at the end
    assert "No such file" in _read(releases, "live-unmigrate")  # no live color: installed all at once again
    assert _running(releases, "unmigrate") == ["iris.service"]

    assert _read(releases, "uninstall-migrated.rc").strip() == "0", _read(releases, "uninstall-migrated.log")
    assert _read(releases, "loaded-after-migrated.txt").strip() == ""
    assert "iris" not in _read(releases, "files-after-migrated.txt")
