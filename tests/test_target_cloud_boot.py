"""The user data boots for real: a Debian root with Debian's cloud-init, booted under
systemd-nspawn with the rendered cloud-init.yaml as its NoCloud seed, comes up the way a fresh
cloud VM does: cloud-init unpacks the bundle, the on-prem installer builds the virtual environment
from PyPI and starts the hardened unit, and the service answers a V2 inference request."""

from __future__ import annotations

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
