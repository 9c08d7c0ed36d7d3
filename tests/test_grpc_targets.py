"""A spec that serves the Open Inference Protocol over gRPC too (runtime.grpc_port), as each
target's own checkers see it: Kubernetes' entry stage publishes the port on its Service and is
ready by the gRPC health probe (kubernetes-validate --strict, KServe's CRDs, kubectl kustomize,
checkov, hadolint, the compose specification), Knative refuses it at its line; the on-prem TLS
proxy passes gRPC on (nginx -t); GCP's and Azure's balancers forward the port (every command parsed
by the real gcloud and az) and AWS refuses it at its line until its listener speaks HTTPS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from azure_cli import check_script, dry_run_commands
from helpers import render_spec, require_tool, run_mlgen
from onprem_bundle import derived_spec, nginx_test, render, throwaway_certificate
from test_target_cloud import PROVIDER_SETTINGS
from test_target_cloud import render as render_cloud
from test_target_kubernetes import KUBERNETES_VERSIONS, checkov, docs, kustomize
from test_target_kubernetes_flavors import OPERATOR_KINDS, SCHEMAS, check_custom_resource

GRPC_PORT = 9000
GRPC = {"runtime": {"grpc_port": GRPC_PORT}}
# name → (example, targets.kubernetes): the whole pipeline in one pod, and split stages behind a gateway.
KUBERNETES = {
    "iris": ("iris", {}),
    "iris-kserve": ("iris", {"flavor": "kserve"}),
    "recsys": ("recsys-microservices", {}),
    "recsys-kserve": ("recsys-microservices", {"flavor": "kserve"}),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("grpc-kubernetes")
    found = {}
    for name, (example, settings) in KUBERNETES.items():
        spec = derived_spec(tmp / name / "spec", example, {**GRPC, "targets": {"kubernetes": settings}})
        found[name] = render_spec(spec, "kubernetes", tmp / name / "out")
    return found


def base_documents(bundle: Path) -> list[dict]:
    return [doc for path in sorted((bundle / "base").glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in docs(path)]


def containers(documents: list[dict]) -> dict[str, list[dict]]:
    """Deployment / InferenceService component / ServingRuntime name → its containers."""
    found = {}
    for doc in documents:
        name = doc["metadata"]["name"]
        if doc["kind"] == "Deployment":
            found[name] = doc["spec"]["template"]["spec"]["containers"]
        elif doc["kind"] == "ServingRuntime":
            found[f"runtime:{name}"] = doc["spec"]["containers"]
        elif doc["kind"] == "InferenceService" and "transformer" in doc["spec"]:
            found["transformer"] = doc["spec"]["transformer"]["containers"]
    return found


def grpc_ports(container: dict) -> list[int]:
    return [p["containerPort"] for p in container.get("ports", ()) if p["name"] == "grpc"]


def test_the_entry_stage_publishes_grpc_and_is_ready_when_the_grpc_health_service_says_serving(bundles):
    for name in ("iris", "recsys"):
        documents = base_documents(bundles[name])
        entry = "iris" if name == "iris" else "recsys-gateway"
        for deployment, (container, *_) in containers(documents).items():
            if deployment == entry:
                assert grpc_ports(container) == [GRPC_PORT], name
                assert container["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
                assert container["startupProbe"]["grpc"] == {"port": GRPC_PORT}
                assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"  # HTTP's listener too
            else:  # the stages behind the gateway serve HTTP only
                assert not grpc_ports(container) and "httpGet" in container["readinessProbe"], deployment
        services = {d["metadata"]["name"]: d["spec"]["ports"] for d in documents if d["kind"] == "Service"}
        assert {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c"} in services[entry]
        assert all(port["name"] == "http" for stage, ports in services.items() if stage != entry for port in ports)
        (policy,) = [d for d in documents if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == entry]
        assert {"protocol": "TCP", "port": GRPC_PORT} in policy["spec"]["ingress"][0]["ports"]
        compose = yaml.safe_load((bundles[name] / "compose.yaml").read_text())
        assert f"127.0.0.1:{GRPC_PORT}:{GRPC_PORT}" in compose["services"][entry]["ports"]


def test_kserve_raw_deployment_gives_the_grpc_port_to_the_process_that_serves_it(bundles):
    # KServe's RawDeployment Service carries every port of the entry container after the first one.
    iris = base_documents(bundles["iris-kserve"])
    (runtime,) = [d for d in iris if d["kind"] == "ServingRuntime"]
    assert runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    assert grpc_ports(runtime["spec"]["containers"][0]) == [GRPC_PORT]
    assert runtime["spec"]["containers"][0]["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
    recsys = containers(base_documents(bundles["recsys-kserve"]))
    (runtime_name,) = [key for key in recsys if key.startswith("runtime:")]
    assert not grpc_ports(recsys[runtime_name][0])  # the predictor runs --stage predict: HTTP only
    gateway, *sidecars = recsys["transformer"]
    assert grpc_ports(gateway) == [GRPC_PORT] and not any(grpc_ports(c) for c in sidecars)


def test_every_grpc_bundle_passes_the_kubernetes_checkers(bundles, tmp_path):
    validate = require_tool("kubernetes-validate")
    files, custom = [], 0
    for name, bundle in bundles.items():
        for layer in ("base", "overlays/dev", "overlays/prod"):
            documents = kustomize(bundle / layer) if layer != "base" else base_documents(bundle)
            custom += sum(check_custom_resource(doc, f"{name}:{layer}") for doc in documents)
            kept = [d for d in documents if (d["apiVersion"], d["kind"]) not in SCHEMAS
                    and (d["apiVersion"].split("/")[0], d["kind"]) not in OPERATOR_KINDS]
            path = tmp_path / f"{len(files)}.yaml"
            path.write_text(yaml.safe_dump_all(kept))
            files.append(str(path))
    assert custom >= 6  # the KServe bundles' InferenceService and ServingRuntime in each layer
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", *files],
                                capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "WARN" not in output and "ERROR" not in output, f"{version}:\n{output}"
    summary = checkov([bundles[name] / "base" for name in bundles], "kubernetes", {})
    assert summary["resources"] >= 30, summary
    hadolint, check = require_tool("hadolint"), require_tool("check-jsonschema")
    for bundle in bundles.values():
        assert f"EXPOSE 8080 {GRPC_PORT}" in (bundle / "Dockerfile").read_text()
        linted = subprocess.run([hadolint, str(bundle / "Dockerfile")], capture_output=True, text=True, timeout=60)
        assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr
    composed = subprocess.run([check, "--builtin-schema", "vendor.compose-spec",
                               *(str(b / "compose.yaml") for b in bundles.values())],
                              capture_output=True, text=True, timeout=60)
    assert composed.returncode == 0, composed.stdout + composed.stderr


@pytest.mark.parametrize("settings", [{"flavor": "knative"}, {"flavor": "kserve", "autoscaling": "requests"}],
                         ids=["knative", "kserve-serverless"])
def test_knative_which_routes_one_port_per_container_refuses_grpc_port_at_its_line(settings, tmp_path):
    spec = derived_spec(tmp_path / "spec", "recsys-microservices", {**GRPC, "targets": {"kubernetes": settings}})
    result = run_mlgen("render", spec, "-t", "kubernetes", "-o", tmp_path / "out")
    line = next(line for line in result.stderr.splitlines() if "runtime.grpc_port" in line)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith(f"{spec}:") and "one port per container" in line and "flavor: deployment" in line, line


def test_the_onprem_tls_proxy_passes_grpc_to_the_runtime_and_nginx_accepts_it(tmp_path):
    certificate, key = throwaway_certificate(tmp_path)
    spec = derived_spec(tmp_path / "spec", "hospital-diagnostics",
                        {**GRPC, "targets": {"onprem": {"tls": {"certificate": str(certificate), "key": str(key)}}}})
    bundle = render(spec, tmp_path / "out")
    site = (bundle / "hospital-diagnostics.nginx.conf").read_text()
    assert f"server 127.0.0.1:{GRPC_PORT} " in site and "listen 443 ssl http2;" in site
    for service in ("inference.GRPCInferenceService", "grpc.health.v1.Health"):
        assert f"location /{service}/ {{\n        grpc_pass grpc://hospital-diagnostics_grpc;" in site
    result = nginx_test(bundle / "hospital-diagnostics.nginx.conf", tmp_path)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr
    assert f"{GRPC_PORT} on 127.0.0.1" in (bundle / "INSTALL.md").read_text()


def test_the_onprem_container_unit_publishes_the_grpc_port(tmp_path):
    spec = derived_spec(tmp_path / "spec", "iris", {**GRPC, "targets": {"onprem": {
        "mode": "container", "image": "registry.example.com/ml/iris@sha256:" + "0" * 64}}})
    unit = (render(spec, tmp_path / "out") / "iris.container").read_text()
    assert f"PublishPort=0.0.0.0:{GRPC_PORT}:{GRPC_PORT}" in unit.splitlines()


@pytest.fixture(scope="module")
def cloud_bundles(tmp_path_factory) -> dict[str, Path]:
    return {"gcp": render_cloud(tmp_path_factory.mktemp("gcp"), PROVIDER_SETTINGS["gcp"],
                                runtime={"python": "3.12", "grpc_port": GRPC_PORT}),
            "azure": render_cloud(tmp_path_factory.mktemp("azure"), PROVIDER_SETTINGS["azure"], **GRPC)}


def test_gcp_forwards_the_grpc_port_through_its_passthrough_balancer_and_gcloud_parses_it(cloud_bundles, tmp_path):
    gcloud, shellcheck = require_tool("gcloud"), require_tool("shellcheck")
    for bundle in cloud_bundles.values():
        checked = subprocess.run([shellcheck, "--severity=style", str(bundle / "deploy.sh")], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout
    commands = dry_run_commands(cloud_bundles["gcp"] / "deploy.sh", "gcloud")
    (forwarding,) = [c for c in commands if c[3:6] == ["compute", "forwarding-rules", "create"]]
    assert forwarding[forwarding.index("--ports") + 1] == f"8080,{GRPC_PORT}"
    (firewall,) = [c for c in commands if c[3:6] == ["compute", "firewall-rules", "create"]]
    assert firewall[firewall.index("--rules") + 1] == f"tcp:8080,tcp:{GRPC_PORT}"
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    for command in (forwarding, firewall):
        result = subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode != 2, result.stderr  # 2: gcloud refused a flag or a value
        assert "active account" in result.stderr or "credentials" in result.stderr, result.stderr


def test_azure_forwards_the_grpc_port_on_a_rule_of_its_own_and_az_parses_every_command(cloud_bundles, tmp_path):
    verdicts = check_script(cloud_bundles["azure"] / "deploy.sh", tmp_path)
    assert not [str(v) for v in verdicts if not v.accepted]
    commands = [list(v.command) for v in verdicts]
    (rule,) = [c for c in commands if c[1:5] == ["network", "lb", "rule", "create"] and "shop-recs-grpc" in c]
    assert rule[rule.index("--frontend-port") + 1] == rule[rule.index("--backend-port") + 1] == str(GRPC_PORT)
    (nsg,) = [c for c in commands if c[1:5] == ["network", "nsg", "rule", "create"]]
    at = nsg.index("--destination-port-ranges")
    assert nsg[at + 1:at + 3] == ["8080", str(GRPC_PORT)]


def test_aws_without_a_certificate_refuses_grpc_port_at_its_line_naming_the_https_listener_it_needs(tmp_path):
    spec = derived_spec(tmp_path / "spec", "ecommerce-recommendations",
                        {**GRPC, "targets": {"cloud": {**PROVIDER_SETTINGS["aws"], "certificate": None}}})
    result = run_mlgen("render", spec, "-t", "cloud", "-o", tmp_path / "out")
    line = next(line for line in result.stderr.splitlines() if "runtime.grpc_port" in line)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith(f"{spec}:") and "HTTPS listener" in line and "targets.cloud.certificate" in line, line
