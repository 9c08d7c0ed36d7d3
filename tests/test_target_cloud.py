"""The cloud target's bundle: user data that Debian's cloud-init accepts and that carries exactly
the on-prem host files, scripts shellcheck passes, the provider's user-data limit enforced with a
way out, and every gcloud and az command of the GCP and Azure scripts checked (gcloud parses each
one for real; az against a table of its commands' flags)."""

from __future__ import annotations

import base64
import io
import os
import shlex
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import render_spec, require_tool, run_mlgen
from onprem_bundle import derived_spec

EXAMPLE = "ecommerce-recommendations"
INLINE = {"artifact_url": None, "artifact_upload": None}
PROVIDER_SETTINGS = {
    "aws": {"provider": "aws", "region": "eu-central-1"},
    "gcp": {"provider": "gcp", "region": "europe-west1", "project": "shop-ml-prod",
            "artifact_upload": "gs://shop-ml-bundles/shop-recs.tar.gz"},
    "azure": {"provider": "azure", "region": "westeurope",
              "artifact_upload": "https://shopml.blob.core.windows.net/bundles/shop-recs.tar.gz"},
}


def render(tmp_path, cloud: dict, **changes):
    spec = derived_spec(tmp_path / "spec", EXAMPLE, {"targets": {"cloud": cloud}, **changes})
    return render_spec(spec, "cloud", tmp_path / "out")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The example rendered for each provider (GCP's default image is Ubuntu 24.04: Python 3.12)."""
    out = {}
    for provider, settings in PROVIDER_SETTINGS.items():
        changes = {"runtime": {"python": "3.12"}} if provider == "gcp" else {}
        out[provider] = render(tmp_path_factory.mktemp(provider), settings, **changes)
    return out


def test_cloud_init_schema_accepts_the_user_data_inline_and_fetched(bundles, tmp_path) -> None:
    cloud_init = require_tool("cloud-init")
    inline = render(tmp_path, {"provider": "azure", "region": "westeurope", **INLINE})
    for bundle in [*bundles.values(), inline]:
        result = subprocess.run([cloud_init, "schema", "--config-file", str(bundle / "cloud-init.yaml")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "Valid schema" in result.stdout + result.stderr or \
            "Valid cloud-config" in result.stdout, result.stdout + result.stderr


def test_shellcheck_passes_every_script(bundles) -> None:
    shellcheck = require_tool("shellcheck")
    scripts = [str(path) for bundle in bundles.values() for path in sorted(bundle.glob("*.sh"))]
    assert len(scripts) == 6
    result = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    bootstrap = yaml.safe_load((bundles["aws"] / "cloud-init.yaml").read_text())["write_files"][0]["content"]
    result = subprocess.run([shellcheck, "--severity=style", "-"], input=bootstrap, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_vm_gets_exactly_the_on_prem_host_files(tmp_path) -> None:
    """Inline: the archive in the user data holds the on-prem target's unit, env file, installer
    and app/ (rendered for one instance on 0.0.0.0 behind the load balancer), nothing copied."""
    from generator.render import Renderer
    from generator.spec import load_spec
    from generator.targets.cloud.userdata import HOST_ONLY, vm_host
    from generator.targets.onprem import host_files

    bundle = render(tmp_path, {"provider": "azure", "region": "westeurope", **INLINE})
    entries = yaml.safe_load((bundle / "cloud-init.yaml").read_text())["write_files"]
    archive = base64.b64decode(entries[1]["content"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        shipped = {member.name: tar.extractfile(member).read() for member in tar.getmembers()}
    model = load_spec(tmp_path / "spec" / "spec.yaml")
    expected = {f.path: f.content for f in host_files(model, Renderer(), vm_host(model)) if f.path not in HOST_ONLY}
    assert shipped == expected
    unit = shipped["shop-recs.service"].decode()
    assert '--host "0.0.0.0" --port 8080' in unit and "ProtectSystem=strict" in unit


def test_over_the_aws_limit_mlgen_stops_naming_the_limit_and_the_way_out(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", EXAMPLE, {"targets": {"cloud": {"provider": "aws", **INLINE}}})
    result = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "16 KB of raw user data" in result.stderr and "targets.cloud.artifact_url" in result.stderr, result.stderr
    assert "spec.yaml:" in result.stderr  # located at the spec's line


def test_user_data_sizes_fit_each_provider(bundles, tmp_path) -> None:
    from generator.targets.cloud.userdata import LIMITS

    for provider, bundle in bundles.items():
        data = (bundle / "cloud-init.yaml").read_bytes()
        assert LIMITS[provider].measure(data) <= LIMITS[provider].limit
    inline = render(tmp_path, {"provider": "azure", "region": "westeurope", **INLINE})
    assert LIMITS["azure"].measure((inline / "cloud-init.yaml").read_bytes()) <= LIMITS["azure"].limit


def test_rendering_is_deterministic_down_to_the_archive(bundles, tmp_path) -> None:
    again = render(tmp_path, PROVIDER_SETTINGS["aws"])
    for name in ("bundle.tar.gz", "cloud-init.yaml", "deploy.sh", "teardown.sh"):
        assert (again / name).read_bytes() == (bundles["aws"] / name).read_bytes(), name


def test_fitness_problems_are_located_and_explained(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", EXAMPLE, {
        "metadata": {"name": "a-very-long-shop-recommender-name"},
        "targets": {"cloud": {"provider": "gcp", "artifact_url": None, "artifact_upload": "s3://wrong/scheme.tar.gz"}}})
    result = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "no default gcp image with cloud-init has Python 3.11" in result.stderr, result.stderr
    assert "uploads to gs://" in result.stderr and "artifact_upload needs artifact_url" in result.stderr


def dry_run_commands(script, cli: str) -> list[list[str]]:
    result = subprocess.run([str(script), "--dry-run"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(script.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands and all(command[0] == cli for command in commands), result.stdout
    return commands


def test_gcloud_parses_every_command_of_the_gcp_scripts(bundles, tmp_path) -> None:
    """gcloud rejects an unknown or malformed flag (exit 2) before it asks for credentials, so
    each printed command, run with a throwaway configuration and no account, must fail only on
    the missing login."""
    gcloud = require_tool("gcloud")
    commands = dry_run_commands(bundles["gcp"] / "deploy.sh", "gcloud") + dry_run_commands(bundles["gcp"] / "teardown.sh", "gcloud")
    assert {" ".join(c[3:6]) for c in commands} >= {"compute firewall-rules create", "compute instance-templates create",
                                                     "compute health-checks create", "compute instance-groups managed",
                                                     "compute backend-services create", "compute forwarding-rules create"}
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    user_data = bundles["gcp"] / "cloud-init.yaml"

    def run(command):
        return command, subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env,
                                       cwd=user_data.parent)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for command, result in pool.map(run, commands):
            assert result.returncode != 2, f"{shlex.join(command)}\n{result.stderr}"
            assert "active account" in result.stderr or "credentials" in result.stderr, f"{shlex.join(command)}\n{result.stderr}"


# The az commands the Azure scripts may run and each one's flags (from the Azure CLI reference,
# learn.microsoft.com/cli/azure), with the allowed values of the enumerated ones. az is not on
# this machine, so this table is the check: a misspelt flag or value fails here.
AZ_COMMON = {"--output", "--query", "--subscription", "--only-show-errors"}
RG = {"--resource-group", "--name"}
AZ_COMMANDS = {
    "group create": {"--name", "--location", "--tags", "--managed-by"},
    "group exists": {"--name"},
    "group show": {"--name"},
    "group delete": {"--name", "--yes", "--no-wait", "--force-deletion-types"},
    "network nsg create": RG | {"--location", "--tags"},
    "network nsg list": {"--resource-group"},
    "network nsg delete": RG,
    "network nsg rule create": RG | {"--nsg-name", "--priority", "--direction", "--access", "--protocol",
                                     "--source-address-prefixes", "--source-port-ranges",
                                     "--destination-address-prefixes", "--destination-port-ranges", "--description"},
    "vmss create": RG | {"--location", "--image", "--vm-sku", "--instance-count", "--custom-data", "--admin-username",
                         "--generate-ssh-keys", "--authentication-type", "--upgrade-policy-mode", "--vnet-name", "--subnet",
                         "--nsg", "--lb-sku", "--load-balancer", "--backend-pool-name", "--public-ip-address", "--tags"},
    "vmss list": {"--resource-group"},
    "vmss show": RG,
    "vmss update": RG | {"--set", "--add", "--remove"},
    "vmss list-instances": RG,
    "vmss reimage": RG | {"--instance-ids", "--no-wait"},
    "vmss delete": RG | {"--no-wait", "--force-deletion"},
    "network lb list": {"--resource-group"},
    "network lb delete": RG,
    "network lb probe create": RG | {"--lb-name", "--protocol", "--port", "--path", "--interval", "--probe-threshold"},
    "network lb probe list": {"--resource-group", "--lb-name"},
    "network lb probe delete": RG | {"--lb-name"},
    "network lb rule create": RG | {"--lb-name", "--protocol", "--frontend-port", "--backend-port", "--frontend-ip-name",
                                    "--backend-pool-name", "--probe-name", "--idle-timeout", "--disable-outbound-snat"},
    "network lb rule list": {"--resource-group", "--lb-name"},
    "network lb rule delete": RG | {"--lb-name"},
    "network public-ip show": RG,
    "network public-ip list": {"--resource-group"},
    "network public-ip delete": RG,
    "network vnet list": {"--resource-group"},
    "network vnet delete": RG,
    "monitor autoscale create": RG | {"--resource", "--resource-type", "--min-count", "--max-count", "--count", "--tags"},
    "monitor autoscale update": RG | {"--min-count", "--max-count", "--count"},
    "monitor autoscale list": {"--resource-group"},
    "monitor autoscale delete": RG,
    "monitor autoscale rule create": {"--resource-group", "--autoscale-name", "--condition", "--scale", "--cooldown"},
    "storage blob upload": {"--blob-url", "--file", "--overwrite", "--auth-mode"},
    "storage blob exists": {"--blob-url", "--auth-mode"},
    "storage blob delete": {"--blob-url", "--auth-mode", "--delete-snapshots"},
}
AZ_VALUES = {
    "--upgrade-policy-mode": {"Automatic", "Manual", "Rolling"}, "--lb-sku": {"Basic", "Standard", "Gateway"},
    "--authentication-type": {"all", "password", "ssh"}, "--direction": {"Inbound", "Outbound"},
    "--access": {"Allow", "Deny"}, "--auth-mode": {"key", "login"}, "--output": {"json", "jsonc", "none", "table", "tsv", "yaml", "yamlc"},
}
AZ_PROTOCOLS = {"network lb probe create": {"Http", "Https", "Tcp"}, "network lb rule create": {"All", "Tcp", "Udp"},
                "network nsg rule create": {"*", "Ah", "Esp", "Icmp", "Tcp", "Udp"}}


def test_every_az_command_of_the_azure_scripts_uses_known_flags_and_values(bundles) -> None:
    commands = dry_run_commands(bundles["azure"] / "deploy.sh", "az") + dry_run_commands(bundles["azure"] / "teardown.sh", "az")
    seen = set()
    for command in commands:
        words = command[1:]
        name = next((n for n in sorted(AZ_COMMANDS, key=len, reverse=True) if words[:len(n.split())] == n.split()), None)
        assert name, f"unknown az command: {shlex.join(command)}"
        seen.add(name)
        flags = [w for w in words if w.startswith("--")]
        unknown = set(flags) - AZ_COMMANDS[name] - AZ_COMMON
        assert not unknown, f"{name}: unknown flags {unknown}"
        for flag, allowed in {**AZ_VALUES, **({"--protocol": AZ_PROTOCOLS[name]} if name in AZ_PROTOCOLS else {})}.items():
            if flag in words:
                assert words[words.index(flag) + 1] in allowed, f"{name}: {flag} {words[words.index(flag) + 1]}"
    assert {"group create", "vmss create", "network lb probe create", "network lb rule create",
            "monitor autoscale create", "monitor autoscale rule create", "vmss delete", "group delete"} <= seen


@pytest.fixture(scope="module")
def bin_without_clis(tmp_path_factory):
    """A PATH with bash and the core utilities the scripts use, and none of aws, gcloud, az."""
    folder = tmp_path_factory.mktemp("bin")
    for tool in ("bash", "env", "dirname", "sha256sum", "cut", "cat", "mktemp", "rm", "base64", "sed", "printf"):
        (folder / tool).symlink_to(shutil.which(tool))
    return folder


@pytest.mark.parametrize("provider", sorted(PROVIDER_SETTINGS))
def test_preflight_names_the_missing_cli(bundles, provider, bin_without_clis) -> None:
    cli = {"aws": "aws", "gcp": "gcloud", "azure": "az"}[provider]
    for script in ("deploy.sh", "teardown.sh"):
        result = subprocess.run([str(bundles[provider] / script)], capture_output=True, text=True, timeout=60,
                                env={"PATH": str(bin_without_clis), "HOME": "/nonexistent"})
        assert result.returncode == 1, result.stderr
        assert f"the {cli} command is not installed" in result.stderr, result.stderr


def test_no_region_is_a_preflight_error(tmp_path) -> None:
    bundle = render(tmp_path, {"provider": "azure", "region": None, **INLINE})
    result = subprocess.run([str(bundle / "deploy.sh"), "--dry-run"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "no location" in result.stderr, result.stderr
    result = subprocess.run([str(bundle / "deploy.sh"), "--dry-run", "--region", "northeurope"], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and "--location northeurope" in result.stdout, result.stderr
