"""runtime.admin_port on Kubernetes: the entry stage's health and metrics move to a port of their
own, which the probes, the ServiceMonitor and the image's health check use and the Ingress never
reaches; the stages behind the entry keep theirs on their one port. Flavors whose platform probes
and routes one port per container refuse it at its line; verify starts the rendered Deployments and
finds them ready through the admin port."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from helpers import EXAMPLES, free_port, render_spec, require_tool, run_mlgen
from test_target_kubernetes import CUSTOM_KINDS, KUBERNETES_VERSIONS, docs, kustomize

RECSYS = EXAMPLES / "recsys-microservices" / "spec.yaml"
ADMIN = 9464


def rendered(tmp_path, *sets):
    import shutil

    folder = tmp_path / "spec"
    shutil.copytree(RECSYS.parent, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return render_spec(folder / "spec.yaml", "kubernetes", tmp_path / "out",
                       sets=(f"runtime.admin_port={ADMIN}", "targets.kubernetes.service_monitor=true", *sets))


def by_kind(bundle, kind):
    return {d["metadata"]["name"]: d for path in sorted((bundle / "base").glob("*.yaml")) for d in docs(path)
            if d["kind"] == kind}


def test_the_entry_stage_is_probed_and_scraped_on_its_admin_port_and_the_ingress_never_reaches_it(tmp_path):
    bundle = rendered(tmp_path, "targets.kubernetes.ingress={host: recsys.example.com}")
    deployments = by_kind(bundle, "Deployment")
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probes = {container[probe]["httpGet"]["port"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
        if name == "recsys-gateway":
            assert ports["admin"] == ADMIN and probes == {"admin"}
        else:
            assert "admin" not in ports and probes == {"http"}
    services = by_kind(bundle, "Service")
    assert {p["name"] for p in services["recsys-gateway"]["spec"]["ports"]} == {"http", "admin"}
    (ingress,) = by_kind(bundle, "Ingress").values()
    backends = [path["backend"]["service"]["port"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert backends and all(port != {"name": "admin"} and port != {"number": ADMIN} for port in backends)
    (monitor,) = by_kind(bundle, "ServiceMonitor").values()
    admin, public = monitor["spec"]["endpoints"]
    assert admin["port"] == "admin" and public["port"] == "http"
    assert {"sourceLabels": ["__meta_kubernetes_service_name"], "regex": "recsys-gateway", "action": "drop"} \
        in public["relabelings"]
    scrape = [rule for policy in by_kind(bundle, "NetworkPolicy").values() for rule in policy["spec"].get("ingress", [])
              if any(peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                     == "monitoring" for peer in rule["from"])]
    assert scrape and ADMIN in {p["port"] for rule in scrape for p in rule["ports"]}
    assert f"127.0.0.1:{ADMIN}/v2/health/live" in (bundle / "Dockerfile").read_text()
    compose = yaml.safe_load((bundle / "compose.yaml").read_text())
    assert "healthcheck" not in compose["services"]["recsys-gateway"]
    assert all("127.0.0.1:8080/" in " ".join(compose["services"][s]["healthcheck"]["test"])
               for s in compose["services"] if s.startswith("recsys-") and s not in ("recsys-gateway", "recsys-prometheus"))

    validate = require_tool("kubernetes-validate")
    standard = tmp_path / "standard.yaml"
    built = [d for layer in ("base", "overlays/dev", "overlays/prod") for d in kustomize(bundle / layer)]
    standard.write_text(yaml.safe_dump_all([d for d in built if d["kind"] not in CUSTOM_KINDS]))
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run([validate, "--strict", "--quiet", "-k", f"{version}.0", str(standard)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "WARN" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_flavor_that_probes_one_port_refuses_the_admin_port_at_its_line(tmp_path):
    result = run_mlgen("render", RECSYS, "-t", "kubernetes", "-o", tmp_path / "out", "--set", f"runtime.admin_port={ADMIN}",
                       "--set", "targets.kubernetes.flavor=knative", "--set", "targets.kubernetes.autoscaling=requests")
    assert result.returncode == 1
    assert "runtime.admin_port: flavor knative probes and routes one port per container" in result.stderr


def test_verify_finds_the_rendered_deployments_ready_through_the_admin_port():
    result = subprocess.run([sys.executable, "-m", "mlgen", "verify", str(RECSYS), "-t", "kubernetes", "--format", "json",
                             "--set", f"runtime.admin_port={free_port()}"], capture_output=True, text=True, timeout=1800)
    (outcome,) = json.loads(result.stdout)
    assert outcome["status"] == "passed", outcome["reason"]
