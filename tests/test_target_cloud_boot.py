"""The user data boots for real: a Debian root with Debian's cloud-init, booted under
systemd-nspawn with the rendered cloud-init.yaml as its NoCloud seed, comes up the way a fresh
cloud VM does: cloud-init unpacks the bundle, the on-prem installer builds the virtual environment
from PyPI and starts the hardened unit, and the service answers a V2 inference request."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
import yaml

from helpers import free_port
from nspawn import BASE_PACKAGES, boot, cached_root, copy_root, enable, oneshot_unit
from onprem_bundle import derived_spec

# The bundle inside the user data, as a GCP VM receives it (a custom image: the root here is Debian).
INLINE_GCP = {"provider": "gcp", "region": "europe-west1", "project": "ml-serving-1",
              "image": "projects/ml-serving-1/global/images/family/mlgen-base", "artifact_url": None, "artifact_upload": None,
              "certificate": None}  # the example's certificate is an AWS one

SERVICE = "shop-recs"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def seeded_root(tmp_path, user_data: bytes):
    root = copy_root(cached_root(BASE_PACKAGES, ("cloud-init",)), tmp_path / "root")
    seed = root / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    (seed / "user-data").write_bytes(user_data)
    (seed / "meta-data").write_text("instance-id: mlgen-test-1\nlocal-hostname: shop-recs-vm\n")
    # What the test harness changes about a VM: look only at the seed, leave the network (the
    # host's, shared by the container) alone, and trust what this host trusts: its HTTPS traffic
    # to PyPI may pass a proxy whose CA only the host's bundle has (pip uses its own CAs otherwise).
    (root / "etc/cloud/cloud.cfg.d/99-mlgen-test.cfg").write_text(
        "datasource_list: [NoCloud, None]\nnetwork: {config: disabled}\n"
        # minbase has no locales: the default en_US.UTF-8 would fail cloud-init's locale module.
        "locale: C.UTF-8\n")
    shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/mlgen-test-host-ca.crt")
    (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/mlgen-test-host-ca.crt\n")
    return root


@pytest.mark.slow
def test_cloud_init_installs_the_hardened_service_and_it_answers_v2_inference(tmp_path) -> None:
    port = free_port()  # the container shares the host's network: a free port, not 8080
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {
        "runtime": {"port": port},
        # Inline: the bundle travels in the user data (GCP takes 256 KB per metadata value).
        "targets": {"cloud": INLINE_GCP},
    })
    from mlgen.targets.cloud.userdata import USER_DATA

    bundle = render_cloud(spec, tmp_path / "out")
    user_data = (bundle / USER_DATA).read_bytes()
    root = seeded_root(tmp_path, user_data)
    request = {"inputs": [{"name": "purchases", "datatype": "FP32", "shape": [2, 8],
                           "data": [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0]}]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = tmp_path / "result"
    result.mkdir()
    driver = " ; ".join([
        "cloud-init status --wait --long > /result/cloud-init-status.txt 2>&1; echo $? > /result/cloud-init-rc",
        f"systemctl show {SERVICE}.service -p ActiveState -p SubState -p User -p NoNewPrivileges -p ProtectSystem"
        f" -p PrivateDevices -p MemoryDenyWriteExecute > /result/unit.txt",
        f"curl -sS -o /result/infer.json -w '%{{http_code}}' -H 'Content-Type: application/json'"
        f" --data @/request/request.json http://127.0.0.1:{port}/v2/models/{SERVICE}/infer > /result/infer-status",
        "cp /var/log/cloud-init-output.log /result/ || true",
        f"journalctl --no-pager -u {SERVICE}.service > /result/journal.txt || true",
    ])
    enable(root, "mlgen-test-driver.service",
           oneshot_unit("cloud", driver, after="cloud-final.service", wanted_by="cloud-init.target"),
           wanted_by="cloud-init.target")
    booted = boot(root, binds={result: "/result", tmp_path: "/request"}, timeout=900)

    report = lambda: "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(result.iterdir())) \
        + f"\n--- console\n{booted.stdout[-4000:]}"
    assert (result / "cloud-init-rc").exists(), report()
    assert (result / "cloud-init-rc").read_text().strip() == "0", report()
    unit = dict(line.split("=", 1) for line in (result / "unit.txt").read_text().splitlines() if "=" in line)
    assert unit["ActiveState"] == "active" and unit["SubState"] == "running", report()
    assert unit["User"] == f"mlgen-{SERVICE}" and unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict", report()
    assert (result / "infer-status").read_text() == "200", report()
    answer = json.loads((result / "infer.json").read_text())
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert outputs["predict"]["data"] == [1, 3], answer  # phones → phone cases, coffee → mugs
    shutil.rmtree(root, ignore_errors=True)


def render_cloud(spec, out):
    from helpers import render_spec

    return render_spec(spec, "cloud", out)


def test_the_seed_is_the_rendered_user_data(tmp_path) -> None:
    """cloud-init reads the seed as the provider would deliver it: the file mlgen rendered."""
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {"targets": {"cloud": INLINE_GCP}})
    bundle = render_cloud(spec, tmp_path / "out")
    data = yaml.safe_load((bundle / "cloud-init.yaml").read_text())
    assert (bundle / "cloud-init.yaml").read_text().startswith("#cloud-config\n")
    assert [entry["path"] for entry in data["write_files"]] == [
        f"/var/lib/mlgen-cloud/{SERVICE}/bootstrap.sh", f"/var/lib/mlgen-cloud/{SERVICE}/bundle.tar.gz"]


API_KEY = "k3y-boot-5d1e0c7a9b2f4e60"
PROJECT = "ml-serving-1"


class SecretManagerStandIn:
    """Google's metadata server (plain HTTP), Secret Manager and Cloud Storage's JSON API (HTTPS,
    a throwaway CA) on free loopback ports, answering only the VM's own token; the VM's curl
    reaches them through its ~/.curlrc (connect-to), the one thing the test changes about how the
    VM resolves Google. `bundle` is served as the object at `bundle_path` of the storage API."""

    def __init__(self, folder, bundle: bytes = b"", bundle_path: str = "") -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import trustme

        ca = trustme.CA()
        self.ca_file = folder / "secrets-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("secretmanager.googleapis.com", "storage.googleapis.com").configure_cert(context)
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                requests.append(self.path)
                if self.path == "/computeMetadata/v1/project/project-id" and self.headers["Metadata-Flavor"] == "Google":
                    return self.answer(PROJECT.encode())
                if self.path == "/computeMetadata/v1/instance/service-accounts/default/token" and \
                        self.headers["Metadata-Flavor"] == "Google":
                    return self.answer(json.dumps({"access_token": "vm-token", "expires_in": 3599}).encode())
                if self.path == f"/v1/projects/{PROJECT}/secrets/shop-api-keys/versions/latest:access" and \
                        self.headers["Authorization"] == "Bearer vm-token":
                    data = base64.b64encode(json.dumps({"current": API_KEY}).encode()).decode()
                    return self.answer(json.dumps({"payload": {"data": data}}).encode())
                if bundle_path and self.path == bundle_path and self.headers["Authorization"] == "Bearer vm-token":
                    return self.answer(bundle)
                self.send_error(403)

            def answer(self, body: bytes):
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.metadata = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.store = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.store.socket = context.wrap_socket(self.store.socket, server_side=True)
        for server in (self.metadata, self.store):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def curlrc(self) -> str:
        return (f"connect-to = metadata.google.internal:80:127.0.0.1:{self.metadata.server_address[1]}\n"
                f"connect-to = secretmanager.googleapis.com:443:127.0.0.1:{self.store.server_address[1]}\n"
                f"connect-to = storage.googleapis.com:443:127.0.0.1:{self.store.server_address[1]}\n"
                "cacert = /etc/ssl/certs/mlgen-test-secrets-ca.pem\n")

    def stop(self) -> None:
        for server in (self.metadata, self.store):
            server.shutdown()
            server.server_close()


@pytest.mark.slow
def test_a_secret_read_at_boot_with_the_vms_identity_is_a_credential_only(tmp_path) -> None:
    """An API key in Secret Manager, read at boot by the VM with its metadata server's token,
    reaches the service as a systemd credential on tmpfs: the service accepts it, refuses a
    request without it, and the key is in no process environment and nowhere on disk (not under
    the install prefix, not in /etc or /var)."""
    port = free_port()
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {
        "runtime": {"port": port}, "targets": {"cloud": INLINE_GCP},
        "security": {"auth": "api_key", "api_keys": [{"secret": "shop-api-keys", "key": "current"}]}})
    bundle = render_cloud(spec, tmp_path / "out")
    stand_in = SecretManagerStandIn(tmp_path)
    try:
        root = seeded_root(tmp_path, (bundle / "cloud-init.yaml").read_bytes())
        shutil.copyfile(stand_in.ca_file, root / "etc/ssl/certs/mlgen-test-secrets-ca.pem")
        (root / "root/.curlrc").write_text(stand_in.curlrc())
        request = {"inputs": [{"name": "purchases", "datatype": "FP32", "shape": [1, 8], "data": [3, 0, 0, 0, 0, 0, 0, 0]}]}
        (tmp_path / "request.json").write_text(json.dumps(request))
        # The key reaches the driver in files outside the VM's own, so the search finds only the VM's copies.
        (tmp_path / "auth-header").write_text(f"Authorization: Bearer {API_KEY}\n")
        (tmp_path / "api-key").write_text(API_KEY + "\n")
        result = tmp_path / "result"
        result.mkdir()
        infer = f"http://127.0.0.1:{port}/v2/models/{SERVICE}/infer"
        driver = " ; ".join([
            "cloud-init status --wait --long > /result/cloud-init-status.txt 2>&1; echo $? > /result/cloud-init-rc",
            f"pid=$(systemctl show -p MainPID --value {SERVICE}.service); echo $pid > /result/pid",
            "tr '\\0' '\\n' < /proc/$pid/environ > /result/environ",
            "grep -rlF -f /request/api-key /opt /etc /var /root /tmp /home > /result/key-files 2>/dev/null; true",
            f"stat -c '%a %U' /run/credstore/{SERVICE} /run/credstore/{SERVICE}/MLGEN_API_KEY_1 > /result/modes",
            f"findmnt -n -o FSTYPE --target /run/credstore/{SERVICE} > /result/fstype",
            f"systemctl show -p ActiveState --value {SERVICE}-secrets.service > /result/secrets-unit",
            f"curl -sS -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' --data @/request/request.json {infer}"
            " > /result/without-key",
            f"curl -sS -o /result/infer.json -w '%{{http_code}}' -H 'Content-Type: application/json'"
            f" -H @/request/auth-header --data @/request/request.json {infer} > /result/with-key",
            "cp /var/log/cloud-init-output.log /result/ || true",
            f"journalctl --no-pager -u {SERVICE}.service -u {SERVICE}-secrets.service > /result/journal.txt || true",
        ])
        enable(root, "mlgen-test-driver.service",
               oneshot_unit("cloud-secrets", driver, after="cloud-final.service", wanted_by="cloud-init.target"),
               wanted_by="cloud-init.target")
        booted = boot(root, binds={result: "/result", tmp_path: "/request"}, timeout=900)
    finally:
        stand_in.stop()

    report = lambda: "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(result.iterdir())) \
        + f"\n--- console\n{booted.stdout[-4000:]}\n--- stand-in requests\n{stand_in.requests}"
    assert (result / "cloud-init-rc").read_text().strip() == "0", report()
    assert (result / "secrets-unit").read_text().strip() == "active", report()
    assert (result / "with-key").read_text() == "200" and (result / "without-key").read_text() == "401", report()
    assert (result / "modes").read_text().split("\n")[:2] == ["700 root", "600 root"], report()
    assert (result / "fstype").read_text().strip() == "tmpfs", report()
    environ = (result / "environ").read_text()
    assert "PYTHONPATH=" in environ and API_KEY not in environ, report()  # the real process, without the key
    assert (result / "key-files").read_text() == "", report()  # nowhere on disk
    assert "vm-token" not in (result / "journal.txt").read_text() + (result / "cloud-init-output.log").read_text()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_bundle_too_large_for_the_user_data_is_fetched_from_the_private_bucket_with_the_vms_token(tmp_path, monkeypatch) -> None:
    """GCP, the bundle over the user-data limit (lowered for the test: the example fits 256 KB):
    the booted VM works out the fleet's bucket from its metadata server's project, downloads the
    bundle through the storage API with its own token, checks it and installs the service, which
    answers; the same request without the token is refused."""
    import hashlib

    from mlgen.targets.cloud import userdata

    monkeypatch.setitem(userdata.LIMITS, "gcp", userdata.UserDataLimit("gcp", 16 * 1024, "a lowered limit", "the test"))
    port = free_port()
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {"runtime": {"port": port}, "targets": {"cloud": INLINE_GCP}})
    bundle = render_cloud(spec, tmp_path / "out")
    archive = (bundle / "bundle.tar.gz").read_bytes()
    bucket = "mlgen-" + hashlib.sha256(f"{PROJECT}/{SERVICE}".encode()).hexdigest()[:20]
    path = f"/storage/v1/b/{bucket}/o/{SERVICE}%2F{hashlib.sha256(archive).hexdigest()}.tar.gz?alt=media"
    stand_in = SecretManagerStandIn(tmp_path, bundle=archive, bundle_path=path)
    try:
        user_data = (bundle / "cloud-init.yaml").read_bytes()
        assert b"encoding: b64" not in user_data  # the bundle is not inside
        root = seeded_root(tmp_path, user_data)
        shutil.copyfile(stand_in.ca_file, root / "etc/ssl/certs/mlgen-test-secrets-ca.pem")
        (root / "root/.curlrc").write_text(stand_in.curlrc())
        request = {"inputs": [{"name": "purchases", "datatype": "FP32", "shape": [1, 8], "data": [3, 0, 0, 0, 0, 0, 0, 0]}]}
        (tmp_path / "request.json").write_text(json.dumps(request))
        result = tmp_path / "result"
        result.mkdir()
        driver = " ; ".join([
            "cloud-init status --wait --long > /result/cloud-init-status.txt 2>&1; echo $? > /result/cloud-init-rc",
            f"curl -sS -o /dev/null -w '%{{http_code}}' 'https://storage.googleapis.com{path}' > /result/without-token",
            f"curl -sS -o /result/infer.json -w '%{{http_code}}' -H 'Content-Type: application/json'"
            f" --data @/request/request.json http://127.0.0.1:{port}/v2/models/{SERVICE}/infer > /result/infer-status",
            "cp /var/log/cloud-init-output.log /result/ || true",
        ])
        enable(root, "mlgen-test-driver.service",
               oneshot_unit("cloud-bucket", driver, after="cloud-final.service", wanted_by="cloud-init.target"),
               wanted_by="cloud-init.target")
        booted = boot(root, binds={result: "/result", tmp_path: "/request"}, timeout=900)
    finally:
        stand_in.stop()

    report = lambda: "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(result.iterdir())) \
        + f"\n--- console\n{booted.stdout[-4000:]}\n--- stand-in requests\n{stand_in.requests}"
    assert (result / "cloud-init-rc").read_text().strip() == "0", report()
    assert path in stand_in.requests, report()  # the VM asked the storage API for the bundle
    assert (result / "without-token").read_text() == "403", report()
    assert (result / "infer-status").read_text() == "200", report()
    assert "vm-token" not in (result / "cloud-init-output.log").read_text()
    shutil.rmtree(root, ignore_errors=True)
