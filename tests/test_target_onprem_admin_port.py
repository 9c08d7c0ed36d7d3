"""runtime.admin_port on one host: each instance gets its own health and metrics port (as far from
runtime.admin_port as its port is from runtime.port, blue-green's green set 100 above), on
127.0.0.1 unless targets.onprem.admin_bind opens it; the installer, the blue-green checks, the
rendered Prometheus and the container's published ports follow; an admin port on a port the host
already uses is an error at its line. The nspawn boot of the hospital example
(test_target_onprem_systemd.py) proves the ports under the real systemd."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import yaml

from helpers import require_tool, run_mlgen
from onprem_bundle import derived_spec, directive, render

TLS = {"certificate": "/etc/ssl/certs/iris.pem", "key": "/etc/ssl/private/iris.key"}


def test_every_instance_answers_health_on_its_own_admin_port_and_prometheus_scrapes_it(tmp_path) -> None:
    bundle = render(derived_spec(tmp_path / "spec", "iris", {"runtime": {"admin_port": 9180}, "scaling": {"min_replicas": 3}}),
                    tmp_path / "out")
    install = (bundle / "install.sh").read_text()
    assert ("readonly READY_URLS=(http://127.0.0.1:9180/v2/health/ready http://127.0.0.1:9181/v2/health/ready "
            "http://127.0.0.1:9182/v2/health/ready)") in install
    assert "readonly INFER_URLS=(http://127.0.0.1:8080/v2/models/iris/infer" in install  # inference stays public
    config = yaml.safe_load((bundle / "monitoring" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "iris"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9180", "127.0.0.1:9181", "127.0.0.1:9182"]
    result = subprocess.run([require_tool("promtool"), "check", "config", "prometheus.yml"], cwd=bundle / "monitoring",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_template_units_shell_gives_each_instance_its_admin_port(tmp_path) -> None:
    """systemd substitutes %i and $$; the shell it starts adds the distance and execs the runtime."""
    bundle = render(derived_spec(tmp_path / "spec", "iris", {"runtime": {"admin_port": 9000}, "scaling": {"min_replicas": 2},
                                                             "targets": {"onprem": {"admin_bind": "0.0.0.0"}}}),
                    tmp_path / "out")
    (exec_start,) = directive((bundle / "iris@.service").read_text(), "ExecStart")
    words = shlex.split(exec_start.replace("%i", "8081").replace("$$", "$"))
    words[words.index("mlgen-admin-port") + 1] = "echo"  # print the runtime's arguments instead of starting it
    printed = subprocess.run(words, capture_output=True, text=True, check=True).stdout.split()
    assert printed[printed.index("--port") + 1] == "8081" and printed[printed.index("--admin-port") + 1] == "9001"
    assert printed[printed.index("--admin-host") + 1] == "0.0.0.0"
    assert "readonly READY_URLS=(http://127.0.0.1:9000/v2/health/ready http://127.0.0.1:9001/v2/health/ready)" in (
        bundle / "install.sh").read_text()  # an open admin address is still checked from the host itself


def test_blue_green_checks_each_colors_admin_ports_and_prometheus_follows_the_live_color(tmp_path) -> None:
    bundle = render(derived_spec(tmp_path / "spec", "iris", {"runtime": {"admin_port": 9180}, "scaling": {"min_replicas": 2},
                                                             "rollout": {"strategy": "blue_green"},
                                                             "targets": {"onprem": {"tls": TLS}}}), tmp_path / "out")
    install = (bundle / "install.sh").read_text()
    assert "readonly BLUE_HEALTH=(127.0.0.1:9180 127.0.0.1:9181)" in install
    assert "readonly GREEN_HEALTH=(127.0.0.1:9280 127.0.0.1:9281)" in install
    green = json.loads((bundle / "release" / "scrape-targets-green.json").read_text())
    assert green[0]["targets"] == ["127.0.0.1:9280", "127.0.0.1:9281"]
    assert "--admin-port $$((%i + 1100))" in (bundle / "iris-green@.service").read_text()
    result = subprocess.run([require_tool("shellcheck"), "--severity=style", str(bundle / "install.sh")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_a_container_publishes_the_admin_port_on_loopback(tmp_path) -> None:
    bundle = render(derived_spec(tmp_path / "spec", "iris", {"runtime": {"admin_port": 9180}, "targets": {"onprem": {
        "mode": "container", "image": "registry.example.com/iris:1"}}}), tmp_path / "out")
    container = (bundle / "iris.container").read_text()
    assert directive(container, "PublishPort") == ["0.0.0.0:8080:8080", "127.0.0.1:9180:9180"]
    assert "readonly READY_URLS=(http://127.0.0.1:9180/v2/health/ready)" in (bundle / "install.sh").read_text()


@pytest.mark.parametrize("changes, expected", [
    # The third instance's public port.
    ({"runtime": {"admin_port": 8082}, "scaling": {"min_replicas": 3}},
     "health and metrics need ports 8082-8084 (one per instance); 8082 is a public port of the service"),
    # Green's public port, 100 above.
    ({"runtime": {"admin_port": 8180}, "rollout": {"strategy": "blue_green"}, "targets": {"onprem": {"tls": TLS}}},
     "health and metrics need ports 8180-8280 (one per instance and color); 8180 is a public port of the service"),
    ({"runtime": {"admin_port": 8443}, "targets": {"onprem": {"tls": {**TLS, "port": 8443}}}}, "8443 is the TLS proxy's port"),
    ({"runtime": {"admin_port": 9100}}, "9100 is node_exporter's port"),
    ({"runtime": {"admin_port": 65535}, "scaling": {"min_replicas": 2}}, "ports 65535-65536 (one per instance), which pass 65535"),
])
def test_an_admin_port_on_a_port_the_host_already_uses_is_an_error_at_its_line(tmp_path, changes, expected) -> None:
    result = run_mlgen("render", derived_spec(tmp_path / "spec", "iris", changes), "-t", "onprem", "-o", tmp_path / "out")
    assert result.returncode == 1 and "runtime.admin_port" in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert "spec.yaml:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_mlgen_verify_runs_the_template_units_runtime_and_polls_its_admin_port(tmp_path) -> None:
    """The hospital example's unit runs the runtime through /bin/sh (its instances' admin ports);
    verify starts the runtime's own command and finds it ready on runtime.admin_port."""
    import sys

    from helpers import EXAMPLES

    result = subprocess.run([sys.executable, "-m", "mlgen", "verify", str(EXAMPLES / "hospital-diagnostics" / "spec.yaml"),
                             "-t", "onprem", "--format", "json"], capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = json.loads(result.stdout)
    assert report["status"] == "passed", report
