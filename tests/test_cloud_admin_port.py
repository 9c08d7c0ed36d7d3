"""runtime.admin_port on the cloud target: each VM answers health and /metrics on its admin port
(bound to every interface, since the balancer's health checks come from outside), the balancers'
health checks ask there, and only the health checkers may reach it: never allowed_cidrs. GCP and
Azure are read from their scripts' dry runs, parsed by the real gcloud and az; AWS runs against
moto in test_target_cloud_aws.py."""

from __future__ import annotations

import io
import shlex
import tarfile

import pytest

from azure_cli import check_script, dry_run_commands
from helpers import render_spec
from onprem_bundle import derived_spec
from test_target_cloud import gcloud_refusals

ADMIN = 9180
CLIENTS = ["198.51.100.0/24"]
CLOUDS = {
    "gcp": {"provider": "gcp", "region": "europe-west1", "project": "shop-ml-prod", "certificate": None,
            "artifact_upload": "gs://shop-ml-bundles/shop-recs.tar.gz", "allowed_cidrs": CLIENTS},
    "gcp-https": {"provider": "gcp", "region": "europe-west1", "project": "shop-ml-prod", "certificate": "recs-shop-example-com",
                  "artifact_upload": "gs://shop-ml-bundles/shop-recs.tar.gz", "allowed_cidrs": CLIENTS},
    "azure": {"provider": "azure", "region": "westeurope", "certificate": None, "allowed_cidrs": CLIENTS,
              "artifact_upload": "https://shopml.blob.core.windows.net/bundles/shop-recs.tar.gz"},
    "azure-https": {"provider": "azure", "region": "westeurope", "allowed_cidrs": CLIENTS,
                    "certificate": "https://shop-ml-certs.vault.azure.net/secrets/recs-shop-example-com",
                    "artifact_upload": "https://shopml.blob.core.windows.net/bundles/shop-recs.tar.gz"},
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = {}
    for variant, cloud in CLOUDS.items():
        tmp = tmp_path_factory.mktemp(variant)
        runtime = {"admin_port": ADMIN, **({"python": "3.12"} if variant.startswith("gcp") else {})}
        spec = derived_spec(tmp / "spec", "ecommerce-recommendations", {"runtime": runtime, "targets": {"cloud": cloud}})
        out[variant] = render_spec(spec, "cloud", tmp / "out")
    return out


def said(bundle, script: str, cli: str) -> list[str]:
    return [shlex.join(command) for command in dry_run_commands(bundle / script, cli)]


def test_the_vm_serves_health_on_the_admin_port_of_every_interface(bundles) -> None:
    with tarfile.open(fileobj=io.BytesIO((bundles["azure"] / "bundle.tar.gz").read_bytes())) as tar:
        unit = tar.extractfile("shop-recs@.service" if "shop-recs@.service" in tar.getnames() else "shop-recs.service").read().decode()
        install = tar.extractfile("install.sh").read().decode()
    assert f'--admin-host "0.0.0.0" --admin-port {ADMIN}' in unit, unit
    assert f"http://127.0.0.1:{ADMIN}/v2/health/ready" in install  # the bootstrap's readiness wait


@pytest.mark.parametrize("variant", ["gcp", "gcp-https"])
def test_gcp_health_checks_ask_the_admin_port_which_only_googles_checkers_reach(bundles, variant, tmp_path) -> None:
    bundle = bundles[variant]
    deploy, teardown = said(bundle, "deploy.sh", "gcloud"), said(bundle, "teardown.sh", "gcloud")
    (check,) = [c for c in deploy if "compute health-checks create http" in c]
    assert f"--port {ADMIN} " in check
    (health,) = [c for c in deploy if "firewall-rules create shop-recs-health" in c]
    ranges = "35.191.0.0/16,130.211.0.0/22" if variant == "gcp-https" else "35.191.0.0/16,209.85.152.0/22,209.85.204.0/22"
    assert f"--rules tcp:{ADMIN} --source-ranges {ranges} " in health and "198.51.100.0/24" not in health
    (allow,) = [c for c in deploy if "firewall-rules create shop-recs-allow" in c]
    assert str(ADMIN) not in allow  # the clients' rule opens the service port only
    assert not [c for c in deploy if "forwarding-rules create" in c and str(ADMIN) in c]
    assert [c for c in teardown if "firewall-rules delete shop-recs-health" in c]
    assert not gcloud_refusals(dry_run_commands(bundle / "deploy.sh", "gcloud") + dry_run_commands(bundle / "teardown.sh", "gcloud"),
                               tmp_path, bundle)


@pytest.mark.parametrize("variant", ["azure", "azure-https"])
def test_azure_probes_ask_the_admin_port_which_only_the_balancers_probes_reach(bundles, variant, tmp_path) -> None:
    verdicts = check_script(bundles[variant] / "deploy.sh", tmp_path)
    refused = [str(verdict) for verdict in verdicts if not verdict.accepted]
    assert not refused, "\n".join(refused)
    commands = [shlex.join(v.command) for v in verdicts]
    (probe,) = [c for c in commands if "probe create" in c]
    assert f"--port {ADMIN} " in probe
    rules = {c.split("--name ")[1].split()[0]: c for c in commands if "nsg rule create" in c and "--nsg-name shop-recs-nsg " in c}
    if variant == "azure":
        assert f"--source-address-prefixes AzureLoadBalancer --destination-port-ranges {ADMIN} " in rules["allow-health-probes"]
        assert str(ADMIN) not in rules["allow-clients"] and "198.51.100.0/24" in rules["allow-clients"]
        assert not [c for c in commands if "lb rule create" in c and str(ADMIN) in c]
    else:  # the gateway's probes come from its subnet; the clients reach the gateway's listeners only
        assert f"--source-address-prefixes 10.0.1.0/24 --destination-port-ranges 8080 {ADMIN} " in rules["allow-clients"]
        assert all("198.51.100.0/24" not in rule for rule in rules.values())
