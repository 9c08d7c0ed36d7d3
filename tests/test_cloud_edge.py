"""The edge of a cloud fleet: who may reach the load balancer is written in the spec, never assumed;
a certificate turns the listener into HTTPS with HTTP redirecting to it (AWS: an ALB listener with
a modern TLS policy, proven against moto in test_target_cloud_aws.py; GCP: a global external
Application Load Balancer with Cloud Armor, every command parsed by the real gcloud and the
redirect URL map validated by gcloud's own import schema); Azure refuses one at its line; without
one, render and plan warn that the traffic is clear text."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

from azure_cli import check_script, dry_run_commands
from helpers import render_spec, require_tool, run_mlgen
from onprem_bundle import derived_spec

GCP_CERTIFICATE = "projects/shop-ml-prod/global/sslCertificates/recs-shop-example-com"
GCP_HTTPS = {"provider": "gcp", "region": "europe-west1", "project": "shop-ml-prod", "certificate": GCP_CERTIFICATE,
             "artifact_upload": "gs://shop-ml-bundles/shop-recs.tar.gz",
             # 12 networks: more than one Cloud Armor rule holds (10 ranges each)
             "allowed_cidrs": [f"198.51.{i}.0/24" for i in range(11)] + ["2001:db8:100::/48"]}

AZURE_CERTIFICATE = "https://shop-ml-certs.vault.azure.net/secrets/recs-shop-example-com"
AZURE_HTTPS = {"provider": "azure", "region": "westeurope", "certificate": AZURE_CERTIFICATE,
               "artifact_upload": "https://shopml.blob.core.windows.net/bundles/shop-recs.tar.gz",
               "allowed_cidrs": ["198.51.100.0/24", "2001:db8:100::/48"]}


def render_cloud(tmp_path: Path, cloud: dict, **changes) -> subprocess.CompletedProcess:
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {"targets": {"cloud": cloud}, **changes})
    return run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")


def test_a_fleet_without_allowed_cidrs_is_refused_at_its_line_with_both_choices(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "iris", {"targets": {"cloud": {"allowed_cidrs": None}}})
    result = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    line = next(line for line in result.stderr.splitlines() if "allowed_cidrs is required" in line)
    cloud_line = yaml.compose(spec.read_text()).value  # where targets.cloud is in the file
    targets = next(value for key, value in cloud_line if key.value == "targets")
    cloud = next(key for key, _ in targets.value if key.value == "cloud")
    assert line.startswith(f"{spec}:{cloud.start_mark.line + 2}:") and "targets.cloud:" in line, line
    assert 'allowed_cidrs: ["10.0.0.0/8"] for a private network' in line
    assert 'allowed_cidrs: ["0.0.0.0/0"] for a deliberately public service' in line
    assert not (tmp_path / "out" / "cloud").exists()


def test_a_spec_without_targets_cloud_cannot_open_a_fleet_to_everyone_by_default(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "hospital-diagnostics", {})
    result = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    assert result.returncode == 1 and "targets.cloud: allowed_cidrs is required" in result.stderr, result.stderr
    assert run_mlgen("render", spec, "-t", "onprem", "-o", tmp_path / "out").returncode == 0  # the other targets render


def test_without_a_certificate_render_and_plan_warn_that_the_traffic_is_clear_text(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations", {"targets": {"cloud": {"certificate": None}}})
    rendered = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    planned = run_mlgen("plan", spec, "--no-measure")
    warning = ("the aws load balancer listens on plain HTTP (port 80): requests and answers, API keys and tokens "
               "included, cross the internet in clear text (set targets.cloud.certificate to the ARN of an ACM certificate")
    assert rendered.returncode == 0 and f"targets.cloud: {warning}" in rendered.stderr, rendered.stderr
    assert planned.returncode == 0, planned.stderr
    (aws,) = [line for line in planned.stdout.splitlines() if line.strip().startswith("cloud/aws ")]
    assert f"note: {warning}" in aws, planned.stdout
    with_certificate = run_mlgen("render", derived_spec(tmp_path / "tls", "ecommerce-recommendations", {}), "-t", "cloud",
                                 "-o", tmp_path / "tls-out")
    assert with_certificate.returncode == 0 and "clear text" not in with_certificate.stderr, with_certificate.stderr


@pytest.mark.parametrize("cloud, changes, field, message", [
    (AZURE_HTTPS | {"certificate": "projects/shop-ml-prod/global/sslCertificates/recs-shop-example-com"}, {},
     "targets.cloud.certificate", "is not a Key Vault secret id"),
    (AZURE_HTTPS, {"runtime": {"grpc_port": 9000}}, "runtime.grpc_port", "Azure's Application Gateway carries HTTP only"),
    ({"provider": "aws", "certificate": None}, {"runtime": {"grpc_port": 9000}},
     "runtime.grpc_port", "carries gRPC only over an HTTPS listener, and targets.cloud.certificate names none"),
    (GCP_HTTPS | {"certificate": "arn:aws:acm:eu-central-1:123456789012:certificate/0f6e2c1a"}, {"runtime": {"python": "3.12"}},
     "targets.cloud.certificate", "is not a GCP SSL certificate name"),
    ({"provider": "aws", "certificate": "recs-shop-example-com"}, {},
     "targets.cloud.certificate", "is not an ACM certificate ARN"),
    ({"provider": "aws", "region": "eu-west-1"}, {},
     "targets.cloud.certificate", "the certificate is in eu-central-1 and the fleet in eu-west-1"),
    ({"provider": "aws", "lb_port": 443}, {}, "targets.cloud.lb_port", "port 443 is the HTTPS listener's"),
    (GCP_HTTPS, {"runtime": {"python": "3.12", "grpc_port": 9000}},
     "runtime.grpc_port", "external Application Load Balancer carries HTTP only"),
])
def test_a_certificate_the_balancer_cannot_use_is_a_located_error(tmp_path, cloud, changes, field, message) -> None:
    result = render_cloud(tmp_path, cloud, **changes)
    assert result.returncode == 1, result.stderr
    assert any(f"{field}: " in line and message in line and ":" in line.split(field)[0] for line in result.stderr.splitlines()), \
        result.stderr


@pytest.mark.parametrize("value", ["arn:aws:acm:eu-central-1:123456789012:certificate/x;reboot",
                                   "arn:aws:acm:eu-central-1:123456789012:certificate/$(id)", "cert name", "Cert",
                                   "projects/p/global/sslCertificates/x`id`", "x\n--ssl-policy=none",
                                   "https://shop.vault.azure.net/secrets/x;id", "https://evil.example.com/secrets/cert",
                                   "https://shop.vault.azure.net/secrets/cert/abc", "http://shop.vault.azure.net/secrets/cert"])
def test_the_schema_refuses_a_certificate_that_could_inject(tmp_path, value) -> None:
    result = render_cloud(tmp_path, {"certificate": value})
    assert result.returncode == 1 and "targets.cloud.certificate" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def gcp_https(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("gcp-https")
    spec = derived_spec(tmp / "spec", "ecommerce-recommendations",
                        {"runtime": {"python": "3.12"}, "targets": {"cloud": GCP_HTTPS}})
    return render_spec(spec, "cloud", tmp / "out")


def readonly(script: Path, name: str) -> str:
    """The value a generated script gives `readonly NAME=…`, as bash reads it."""
    line = next(line for line in script.read_text().splitlines() if line.startswith(f"readonly {name}="))
    return shlex.split(line.split("=", 1)[1])[0]


def test_gcp_with_a_certificate_is_an_https_balancer_behind_cloud_armor(gcp_https) -> None:
    commands = [shlex.join(c) for c in dry_run_commands(gcp_https / "deploy.sh", "gcloud")]

    def one(prefix: str) -> str:
        (found,) = [c for c in commands if c.startswith("gcloud --project shop-ml-prod " + prefix)]
        return found

    assert f"--ssl-certificates {GCP_CERTIFICATE} --ssl-policy shop-recs-lb" in one("compute target-https-proxies create")
    assert "--profile MODERN --min-tls-version 1.2" in one("compute ssl-policies create")
    assert "--target-https-proxy shop-recs-lb-https --ports 443" in one("compute forwarding-rules create shop-recs-lb-https ")
    assert "--target-http-proxy shop-recs-lb-http --ports 80" in one("compute forwarding-rules create shop-recs-lb-http ")
    # Only Google's proxies reach the VMs; the spec's networks are the Cloud Armor rules, 10 a rule.
    assert "--source-ranges 35.191.0.0/16,130.211.0.0/22 " in one("compute firewall-rules create")
    allowed = [c.split("--src-ip-ranges ")[1].split()[0].split(",") for c in commands if "security-policies rules create" in c]
    assert [len(ranges) for ranges in allowed] == [10, 2] and sum(allowed, []) == GCP_HTTPS["allowed_cidrs"]
    assert "--action deny-403" in one("compute security-policies rules update 2147483647")
    assert "--security-policy shop-recs-lb" in one("compute backend-services update shop-recs-lb")
    assert not [c for c in commands if "--load-balancing-scheme EXTERNAL " in c + " "]  # no passthrough balancer


def test_gcloud_import_schema_accepts_the_redirect_url_map(gcp_https) -> None:
    """What `gcloud compute url-maps import` validates the map against before it calls the API:
    the UrlMap schema shipped with gcloud."""
    schemas = Path(os.path.realpath(require_tool("gcloud"))).parent.parent / "lib/googlecloudsdk/schemas/compute/v1"
    url_map = json.loads(readonly(gcp_https / "deploy.sh", "REDIRECT_MAP"))
    registry = Registry(retrieve=lambda uri: Resource.from_contents(
        yaml.safe_load((schemas / uri.rsplit("/", 1)[-1]).read_text()), default_specification=DRAFT6))
    validator = jsonschema.Draft6Validator({"$ref": (schemas / "UrlMap.yaml").as_uri()}, registry=registry)
    validator.validate(url_map)
    assert url_map["defaultUrlRedirect"] == {"httpsRedirect": True, "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}
    with pytest.raises(jsonschema.ValidationError):  # the check can fail: a misspelt field, a wrong code
        validator.validate({**url_map, "defaultUrlRedirects": {}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**url_map, "defaultUrlRedirect": {"httpsRedirect": True, "redirectResponseCode": "MOVED"}})


def test_gcloud_parses_every_command_of_the_https_scripts_and_shellcheck_passes(gcp_https, tmp_path) -> None:
    gcloud, shellcheck = require_tool("gcloud"), require_tool("shellcheck")
    scripts = [gcp_https / "deploy.sh", gcp_https / "teardown.sh"]
    result = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    commands = [c for script in scripts for c in dry_run_commands(script, "gcloud")]
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}

    def run(command):
        return command, subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env,
                                       stdin=subprocess.DEVNULL, cwd=gcp_https)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for command, result in pool.map(run, commands):
            assert result.returncode != 2, f"{shlex.join(command)}\n{result.stderr}"
            assert "active account" in result.stderr or "credentials" in result.stderr, f"{shlex.join(command)}\n{result.stderr}"


@pytest.fixture(scope="module")
def azure_https(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("azure-https")
    spec = derived_spec(tmp / "spec", "ecommerce-recommendations", {"targets": {"cloud": AZURE_HTTPS}})
    return render_spec(spec, "cloud", tmp / "out")


def test_azure_with_a_certificate_is_an_application_gateway_reading_it_from_key_vault(azure_https, tmp_path) -> None:
    """The real az parses every command; the flags say: Standard_v2 with the Key Vault secret id and
    its own identity, the strict TLS policy, HTTP answering a permanent redirect, a probe on the
    readiness path, the scale set in the gateway's pool, allowed_cidrs on the gateway's subnet only."""
    verdicts = check_script(azure_https / "deploy.sh", tmp_path) + check_script(azure_https / "teardown.sh", tmp_path)
    refused = [str(verdict) for verdict in verdicts if not verdict.accepted]
    assert not refused, "\n".join(refused)
    said = [shlex.join(v.command) for v in verdicts]

    def one(prefix: str) -> str:
        (found,) = [c for c in said if c.startswith("az " + prefix)]
        return found

    gateway = one("network application-gateway create")
    for flag in ("--sku Standard_v2", f"--key-vault-secret-id {AZURE_CERTIFICATE}", "--frontend-port 443",
                 "--identity /subscriptions/SUBSCRIPTION/resourceGroups/mlgen-shop-recs/providers/"
                 "Microsoft.ManagedIdentity/userAssignedIdentities/shop-recs-gateway",
                 "--subnet shop-recs-gateway-subnet", "--http-settings-port 8080"):
        assert flag in gateway, gateway
    assert "--policy-type Predefined --name AppGwSslPolicy20220101S" in one("network application-gateway ssl-policy set")
    assert "--type Permanent --target-listener appGatewayHttpListener --include-path true --include-query-string true" \
        in one("network application-gateway redirect-config create")
    assert "--port 80" in one("network application-gateway frontend-port create")
    assert "--path /v2/health/ready" in one("network application-gateway probe create")
    assert "--probe shop-recs-ready" in one("network application-gateway http-settings update")
    # The gateway's identity reads the certificate's secret only, in the certificate's vault.
    (grant,) = [c for c in said if "role assignment create" in c and "shop-ml-certs" in c]
    assert grant.endswith("/vaults/shop-ml-certs/secrets/recs-shop-example-com --output none") and "'Key Vault Secrets User'" in grant
    # Who reaches what: the clients the gateway's listeners, Azure's infrastructure what v2 needs,
    # the VMs the gateway's subnet only; no layer-4 balancer at all.
    rules = {c.split("--nsg-name ")[1].split()[0] + " " + c.split("--name ")[1].split()[0]: c
             for c in said if "nsg rule create" in c}
    assert "--source-address-prefixes 198.51.100.0/24 2001:db8:100::/48 --destination-port-ranges 80 443" \
        in rules["shop-recs-gateway-nsg allow-clients"]
    assert "--source-address-prefixes GatewayManager --destination-port-ranges 65200-65535" \
        in rules["shop-recs-gateway-nsg allow-gateway-manager"]
    assert "--source-address-prefixes AzureLoadBalancer" in rules["shop-recs-gateway-nsg allow-azure-load-balancer"]
    assert "--source-address-prefixes 10.0.1.0/24 --destination-port-ranges 8080" in rules["shop-recs-nsg allow-clients"]
    assert all("198.51.100.0/24" not in c for c in rules.values() if "--nsg-name shop-recs-nsg " in c)
    vmss = one("vmss create")
    assert "--app-gateway shop-recs-gateway --backend-pool-name appGatewayBackendPool" in vmss and "--load-balancer" not in vmss
    assert not [c for c in said if c.startswith("az network lb probe create") or c.startswith("az network lb rule create")]
    assert "--nat-gateway shop-recs-nat" in one("network vnet subnet update")  # the VMs' way out
    # Teardown removes the gateway, its identity and grant, its address, subnet (with the network) and NSG.
    for gone in ("network application-gateway delete --resource-group mlgen-shop-recs --name shop-recs-gateway",
                 "identity delete --resource-group mlgen-shop-recs --name shop-recs-gateway",
                 "network public-ip delete --resource-group mlgen-shop-recs --name shop-recs-gateway-ip",
                 "network nat gateway delete", "network vnet delete", "network nsg delete --resource-group mlgen-shop-recs --name shop-recs-gateway-nsg"):
        assert [c for c in said if c.startswith("az " + gone)], gone


def test_shellcheck_passes_the_application_gateway_scripts(azure_https) -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, "--severity=style", str(azure_https / "deploy.sh"), str(azure_https / "teardown.sh")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
