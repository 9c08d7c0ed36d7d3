"""On a real systemd, air-gapped: a Debian bookworm container booted with systemd as PID 1 under
systemd-nspawn, with no network at all (--private-network: loopback only). The offline bundle of
the hospital-diagnostics example is copied in, install.sh runs inside, systemd starts the hardened
template unit's two instances behind the nginx TLS proxy, and they answer V2 inference; the
service's real environment holds the spec's env values byte for byte and the secret from its
credential file; a second install changes nothing; uninstall leaves no unit behind.

This is what proves the hardening does not break the service: a unit can score 1.0 and still fail
to start. The Debian root (tests/nspawn.py, shared with the cloud tests) is built once with
debootstrap (about a minute here) and cached under ~/.cache/mlgen-nspawn keyed by its package list;
each run boots a reflink copy of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nspawn
import pytest

from helpers import require_tool
from onprem_bundle import derived_spec, render, wheelhouse_for

pytestmark = pytest.mark.slow

BOOKWORM_PYTHON = "3.11"  # nspawn.SUITE's python3, which the bundle's wheels must match
PACKAGES = (*nspawn.BASE_PACKAGES, "nginx")
WHEEL_CACHE = Path(os.environ.get("MLGEN_WHEEL_CACHE", Path.home() / ".cache" / "mlgen-wheelhouse"))
BOOT_DEADLINE_S = 600
NAME = "hospital-diagnostics"
# Values systemd must hand to the service exactly: quotes, $, backslashes, %, a newline, spaces.
HOSTILE_ENV = {
    "DIAGNOSTICS_SITE": "St Mary's Hospital — Oncology",
    "QUOTED": "a \"double\" and 'single' quote",
    "DOLLARS": "$HOME ${PATH} $(id) `id`",
    "BACKSLASHES": "C:\\temp\\new \\n",
    "PERCENT": "100% %n %i",
    "MULTILINE": "first line\nsecond line",
    "PADDED": "  leading and trailing  ",
}
SECRET = {"name": "REPORTS_DB_PASSWORD", "secret": "reports-db", "key": "password"}
SECRET_VALUE = "s3cret 'with' \"quotes\" $and $(more)"
CREDENTIAL = f"etc/mlgen/{NAME}/credentials/reports-db/password"
# Callers' API keys: two valid at once (a rotation), each delivered as a systemd credential.
SECURITY = {"auth": "api_key", "api_keys": [{"secret": "diagnostics-api-keys", "key": "current"},
                                            {"secret": "diagnostics-api-keys", "key": "previous"}]}
API_KEYS = {"current": "k-current-0123456789abcdefghij", "previous": "k-previous-0123456789abcdefghi"}

DRIVER = r"""#!/bin/bash
# Runs inside the container as a oneshot unit after boot; every result lands in /result.
set -u
cd /root
tar -xzf /root/offline-bundle.tar.gz
./onprem/install.sh >/result/install-1.log 2>&1; echo $? >/result/install-1.rc
/usr/bin/python3 /result/probe.py >/result/probe.json 2>/result/probe.err
journalctl -b --no-pager -u 'hospital-diagnostics@*' >/result/journal.log 2>&1
./onprem/install.sh >/result/install-2.log 2>&1; echo $? >/result/install-2.rc
./onprem/uninstall.sh >/result/uninstall.log 2>&1; echo $? >/result/uninstall.rc
ls -A /etc/systemd/system /etc/systemd/system/multi-user.target.wants >/result/units-after.txt
systemctl list-units --all --plain --no-legend 'hospital-diagnostics*' >/result/loaded-after.txt
ip -o link 2>/dev/null >/result/links.txt || cat /proc/net/dev >/result/links.txt
"""

PROBE = r"""
import http.client, json, ssl, subprocess, sys
name = "hospital-diagnostics"
units = ["hospital-diagnostics@8080.service", "hospital-diagnostics@8081.service"]
row = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589,
       153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622,
       0.6656, 0.7119, 0.2654, 0.4601, 0.1189]
body = json.dumps({"inputs": [{"name": "measurements", "datatype": "FP64", "shape": [1, 30], "data": row}]})
result = {"units": {}, "infer": {}}
for unit in units:
    show = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState", "-p", "MainPID", "-p", "User",
                           "-p", "NRestarts"], capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    environ = {}
    if props.get("MainPID", "0") != "0":
        raw = open(f"/proc/{props['MainPID']}/environ", "rb").read().split(b"\0")
        environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    props["environ"] = environ
    result["units"][unit] = props
keys = json.load(open("/result/keys.json"))
def post(connection, path, payload, key=keys["current"]):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    connection.request("POST", path, payload, headers)
    response = connection.getresponse()
    return response.status, response.read().decode("utf-8", "replace")
for port in (8080, 8081):
    result["infer"][str(port)] = post(http.client.HTTPConnection("127.0.0.1", port, timeout=10),
                                      f"/v2/models/{name}/infer", body)
context = ssl.create_default_context(cafile="/etc/ssl/certs/diagnostics.pem")
tls = lambda: http.client.HTTPSConnection("127.0.0.1", 443, timeout=10, context=context)
result["infer"]["tls"] = post(tls(), f"/v2/models/{name}/infer", body)
result["too_large"] = post(tls(), f"/v2/models/{name}/infer", "x" * (2 * 1024 * 1024))[0]
result["auth"] = {what: post(tls(), f"/v2/models/{name}/infer", body, key)[0]
                  for what, key in (("none", None), ("wrong", "k-wrong-0123456789abcdefghijkl"),
                                    ("current", keys["current"]), ("previous", keys["previous"]))}
result["auth"]["direct-none"] = post(http.client.HTTPConnection("127.0.0.1", 8080, timeout=10),
                                     f"/v2/models/{name}/infer", body, None)[0]
# runtime.admin_port 9180: health and metrics on 9180/9181 (one per instance, loopback only), never on
# the public ports or through the proxy, which carry inference only.
def get(connection, path):
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status
result["health"] = {where: {path: get(connection(), path) for path in ("/v2/health/ready", "/metrics")}
                    for where, connection in (("admin-9180", lambda: http.client.HTTPConnection("127.0.0.1", 9180, timeout=10)),
                                              ("admin-9181", lambda: http.client.HTTPConnection("127.0.0.1", 9181, timeout=10)),
                                              ("public-8080", lambda: http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)),
                                              ("public-8081", lambda: http.client.HTTPConnection("127.0.0.1", 8081, timeout=10)),
                                              ("tls", tls))}
listening = []
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            address, port = local.rsplit(":", 1)
            listening.append([address, int(port, 16)])
result["listening"] = listening
found = subprocess.run(["grep", "-rlF", "-e", keys["current"], "-e", keys["previous"], "/opt/hospital", "/var/lib/mlgen"],
                       capture_output=True, text=True).stdout.split()
result["keys_in_files"] = found
json.dump(result, sys.stdout)
"""


def _require_nspawn() -> None:
    if os.geteuid() != 0:
        pytest.skip("booting a container with systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "debootstrap", "openssl"):
        require_tool(tool)


@pytest.fixture(scope="module")
def offline_bundle(tmp_path_factory) -> Path:
    """The example's offline archive, made by its own build-offline-bundle.sh, with hostile env
    values and a secret added to the spec."""
    _require_nspawn()
    base = tmp_path_factory.mktemp("nspawn-bundle")
    spec = derived_spec(base / "spec", NAME, {"env": HOSTILE_ENV, "secrets": [SECRET], "security": SECURITY,
                                              "runtime": {"python": BOOKWORM_PYTHON}})
    bundle = render(spec, base / "out")
    wheelhouse_for(bundle, WHEEL_CACHE)
    result = subprocess.run([str(bundle / "build-offline-bundle.sh"), "--output", str(base / "offline-bundle.tar.gz")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return base / "offline-bundle.tar.gz"


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _results(results: Path) -> str:
    return "\n".join(f"--- {p.name}\n{_tail(p)}" for p in sorted(results.iterdir()) if p.suffix in (".log", ".rc", ".err"))


@pytest.fixture(scope="module")
def air_gapped_run(offline_bundle, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("nspawn-run")
    root, results = base / "root", base / "result"
    nspawn.copy_root(nspawn.cached_root(PACKAGES), root)
    results.mkdir()
    try:
        shutil.copy2(offline_bundle, root / "root/offline-bundle.tar.gz")
        _throwaway_certificate(root)
        credential = root / CREDENTIAL
        credential.parent.mkdir(parents=True, mode=0o700)
        credential.write_text(SECRET_VALUE + "\n")
        credential.chmod(0o600)
        for key, value in API_KEYS.items():
            path = root / f"etc/mlgen/{NAME}/credentials/diagnostics-api-keys/{key}"
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            path.write_text(value + "\n")
            path.chmod(0o600)
        (results / "keys.json").write_text(json.dumps(API_KEYS))
        (results / "driver.sh").write_text(DRIVER)
        (results / "probe.py").write_text(PROBE)
        nspawn.enable(root, "mlgen-test.service", nspawn.oneshot_unit("onprem", "/bin/bash /result/driver.sh"))
        console = nspawn.boot(root, binds={results: "/result"}, timeout=BOOT_DEADLINE_S, log=base / "console.log",
                              private_network=True)
        assert (results / "uninstall.rc").exists(), f"the driver did not finish:\n{console.stdout[-3000:]}\n{_results(results)}"
        yield results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _throwaway_certificate(root: Path) -> None:
    certificate, key = root / "etc/ssl/certs/diagnostics.pem", root / "etc/ssl/private/diagnostics.key"
    for folder in (certificate.parent, key.parent):
        folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=diagnostics.hospital.internal",
                    "-addext", "subjectAltName=DNS:diagnostics.hospital.internal,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(certificate)], check=True, capture_output=True)
    key.chmod(0o600)


def _read(results: Path, name: str) -> str:
    path = results / name
    assert path.exists(), f"the driver wrote no {name}:\n{_results(results)}"
    return path.read_text(errors="replace")


def test_install_on_a_booted_air_gapped_host_starts_the_hardened_units(air_gapped_run) -> None:
    install = _read(air_gapped_run, "install-1.log")
    assert _read(air_gapped_run, "install-1.rc").strip() == "0", install
    assert "wheelhouse/ (offline)" in install
    assert "ready: http://127.0.0.1:8080/v2/models/hospital-diagnostics/infer" in install
    links = _read(air_gapped_run, "links.txt")
    assert "eth" not in links and "host0" not in links, links  # loopback only: nothing could be downloaded
    probe = json.loads(_read(air_gapped_run, "probe.json"))
    for unit, props in probe["units"].items():
        assert props["ActiveState"] == "active", (unit, props)
        assert props["User"] == "mlgen-hospital-diagnostics" and props["NRestarts"] == "0"


def test_every_instance_and_the_tls_proxy_answer_v2_inference(air_gapped_run) -> None:
    probe = json.loads(_read(air_gapped_run, "probe.json"))
    for where in ("8080", "8081", "tls"):
        status, body = probe["infer"][where]
        assert status == 200, (where, body)
        outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
        assert outputs["diagnosis"]["data"] == ["malignant"]  # the first row of the data set
        assert outputs["malignant_probability"]["data"][0] > 0.5
    assert probe["too_large"] == 413  # nginx's body limit matches runtime.max_body_bytes


def test_health_and_metrics_answer_on_the_admin_ports_only_on_loopback_and_never_through_the_proxy(air_gapped_run) -> None:
    """runtime.admin_port 9180 with two instances: 8080's health is on 9180, 8081's on 9181, bound to
    127.0.0.1 (targets.onprem.admin_bind's default); the public ports and the TLS proxy, which
    carry inference (answered above), refuse both paths with 404."""
    probe = json.loads(_read(air_gapped_run, "probe.json"))
    ok, refused = {"/v2/health/ready": 200, "/metrics": 200}, {"/v2/health/ready": 404, "/metrics": 404}
    assert probe["health"] == {"admin-9180": ok, "admin-9181": ok, "public-8080": refused, "public-8081": refused,
                               "tls": refused}
    loopback = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
    admin = [address for address, port in probe["listening"] if port in (9180, 9181)]
    assert admin == [loopback, loopback], probe["listening"]


def test_env_values_and_the_secret_reach_the_service_exactly(air_gapped_run) -> None:
    probe = json.loads(_read(air_gapped_run, "probe.json"))
    for unit, props in probe["units"].items():
        environ = props["environ"]
        for key, value in HOSTILE_ENV.items():
            assert environ.get(key) == value, (unit, key, environ.get(key))
        assert environ.get("REPORTS_DB_PASSWORD") == SECRET_VALUE
        assert environ.get("PYTHONPATH") == f"/opt/hospital/{NAME}/app"


def test_a_second_install_on_the_host_changes_nothing(air_gapped_run) -> None:
    second = _read(air_gapped_run, "install-2.log")
    assert _read(air_gapped_run, "install-2.rc").strip() == "0", second
    assert "install.sh: nothing to change" in second and "change:" not in second, second


def test_uninstall_leaves_no_unit_behind(air_gapped_run) -> None:
    assert _read(air_gapped_run, "uninstall.rc").strip() == "0", _read(air_gapped_run, "uninstall.log")
    assert NAME not in _read(air_gapped_run, "units-after.txt")
    assert _read(air_gapped_run, "loaded-after.txt").strip() == ""


def test_only_callers_with_a_valid_api_key_get_an_answer_and_the_keys_stay_credentials(air_gapped_run) -> None:
    """On the real systemd: no key or a wrong one is refused (through nginx and on an instance's
    own port), both keys of a rotation answer; the keys reach the service as systemd credentials,
    never its environment nor a file under the install prefix or state folder."""
    probe = json.loads(_read(air_gapped_run, "probe.json"))
    assert probe["auth"] == {"none": 401, "wrong": 401, "current": 200, "previous": 200, "direct-none": 401}
    assert probe["keys_in_files"] == []
    for unit, props in probe["units"].items():
        environ = "\n".join(f"{k}={v}" for k, v in props["environ"].items())
        assert all(key not in environ for key in API_KEYS.values()), unit
        assert "MLGEN_API_KEY_1" not in props["environ"], unit
