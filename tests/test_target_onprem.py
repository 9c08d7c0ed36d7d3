"""The on-prem bundle as the real tools see it: systemd accepts every unit and scores its
hardening at most 2.0, shellcheck passes every script, nginx accepts the TLS site, and the spec's
mistakes are reported at their lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import EXAMPLES, require_tool
from nspawn import QUADLET_PACKAGES, QUADLET_SUITE, cached_root
from onprem_bundle import (derived_spec, directive, nginx_test, render, security_exposure, systemd_verify,
                           throwaway_certificate, unit_files)

from mlgen.errors import Level, RenderError
from mlgen.plan import plan_target
from mlgen.render import Renderer
from mlgen.spec import load_spec

MAX_EXPOSURE = 2.0
HOSPITAL = EXAMPLES / "hospital-diagnostics" / "spec.yaml"

# Each variant of the unit the target can render, from the two examples.
VARIANTS = {
    "iris": ("iris", {}),
    "hospital-instances-tls-no-network": ("hospital-diagnostics", {}),
    "gpu": ("iris", {"resources": {"gpu": 2}}),
    "secrets": ("iris", {"secrets": [{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"},
                                     {"name": "API_TOKEN", "secret": "iris-api"}]}),
    # The credentials' shell execs the admin port's shell, which execs the runtime.
    "secrets-admin-port-instances": ("iris", {"secrets": [{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"}],
                                              "scaling": {"min_replicas": 2}, "runtime": {"admin_port": 9180}}),
    "ip-allow-list": ("iris", {"targets": {"onprem": {"bind": "127.0.0.1", "ip_address_deny": ["any"],
                                                      "ip_address_allow": ["localhost", "10.20.0.0/16", "fd00::/8"]}}}),
    "hostile-prefix-and-env": ("iris", {"targets": {"onprem": {"prefix": "/srv/models.v2/a-b_c"}},
                                        "env": {"QUOTES": "a \"b\" 'c' $HOME `id` \\ %n", "NEWLINE": "x\ny"}}),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("onprem-variants")
    return {name: render(derived_spec(base / name / "spec", example, changes), base / name / "out")
            for name, (example, changes) in VARIANTS.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_systemd_verify_prints_nothing_for_the_unit(bundles, variant, tmp_path) -> None:
    (unit,) = unit_files(bundles[variant])
    result = systemd_verify(tmp_path, unit)
    assert (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr
    assert result.returncode == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_unit_is_hardened_to_an_exposure_of_at_most_2(bundles, variant, tmp_path) -> None:
    (unit,) = unit_files(bundles[variant])
    exposure, report = security_exposure(tmp_path, unit)
    assert exposure <= MAX_EXPOSURE, report


def test_the_unit_runs_the_runtime_from_its_venv_as_a_dedicated_user_with_the_spec_limits(bundles) -> None:
    unit = (bundles["iris"] / "iris.service").read_text()
    assert directive(unit, "User") == ["mlgen-iris"]
    assert directive(unit, "DynamicUser") == []
    assert directive(unit, "ExecStart") == ['"/opt/mlgen/iris/venv/bin/python" -m mlgen_runtime serve '
                                            '--config "/opt/mlgen/iris/app/serving.json" --host "0.0.0.0" --port 8080']
    assert directive(unit, "MemoryMax") == ["512M"] and directive(unit, "CPUQuota") == ["100%"]
    assert directive(unit, "Restart") == ["on-failure"]
    assert directive(unit, "StartLimitBurst") == ["5"]
    assert directive(unit, "CapabilityBoundingSet") == [""]
    assert directive(unit, "ProtectSystem") == ["strict"]


def test_several_replicas_become_a_template_unit_on_consecutive_ports_behind_the_proxy(bundles) -> None:
    bundle = bundles["hospital-instances-tls-no-network"]
    unit = (bundle / "hospital-diagnostics@.service").read_text()
    # runtime.admin_port 9180: instance 8080 answers health on 9180, 8081 on 9181, on loopback only.
    assert directive(unit, "ExecStart")[0].startswith("""/bin/sh -c 'exec "$$@" --admin-port $$((%i + 1100))' mlgen-admin-port """)
    assert directive(unit, "ExecStart")[0].endswith('--host "127.0.0.1" --port %i --admin-host "127.0.0.1"')
    site = (bundle / "hospital-diagnostics.nginx.conf").read_text()
    assert "server 127.0.0.1:8080 " in site and "server 127.0.0.1:8081 " in site
    assert "client_max_body_size 1048576;" in site  # runtime.max_body_bytes
    install = (bundle / "install.sh").read_text()
    assert "readonly UNITS=(hospital-diagnostics@8080.service hospital-diagnostics@8081.service)" in install
    assert directive(unit, "IPAddressDeny") == ["any"] and directive(unit, "IPAddressAllow") == ["localhost"]


def test_a_gpu_service_may_open_only_the_nvidia_devices_it_needs(bundles) -> None:
    unit = (bundles["gpu"] / "iris.service").read_text()
    assert directive(unit, "DevicePolicy") == ["closed"]
    assert directive(unit, "DeviceAllow") == ["/dev/nvidiactl rw", "/dev/nvidia-uvm rw", "/dev/nvidia-uvm-tools rw",
                                              "/dev/nvidia0 rw", "/dev/nvidia1 rw"]
    assert directive(unit, "PrivateDevices") == ["no"]


def test_secrets_are_credentials_whose_values_are_never_rendered(bundles) -> None:
    bundle = bundles["secrets"]
    unit = (bundle / "iris.service").read_text()
    assert directive(unit, "LoadCredential") == ["DB_PASSWORD:/etc/mlgen/iris/credentials/iris-db/password",
                                                 "API_TOKEN:/etc/mlgen/iris/credentials/iris-api/api_token"]
    assert "DB_PASSWORD" not in (bundle / "iris.env").read_text()
    assert "/etc/mlgen/iris/credentials/iris-db/password" in (bundle / "INSTALL.md").read_text()


def test_the_environment_file_is_installed_root_only(bundles, tmp_path) -> None:
    install = (bundles["iris"] / "install.sh").read_text()
    assert 'install_file "$bundle/$NAME.env" "$root$ENV_FILE" 600' in install
    assert "readonly ENV_FILE=/etc/mlgen/iris/environment" in install


@pytest.mark.parametrize("variant", ["iris", "hospital-instances-tls-no-network", "secrets", "hostile-prefix-and-env"])
def test_shellcheck_passes_every_script(bundles, variant) -> None:
    shellcheck = require_tool("shellcheck")
    scripts = sorted(bundles[variant].glob("*.sh"))
    assert [s.name for s in scripts] == ["build-offline-bundle.sh", "install.sh", "uninstall.sh"]
    result = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_nginx_accepts_the_tls_site_with_a_throwaway_certificate(tmp_path) -> None:
    certificate, key = throwaway_certificate(tmp_path)
    spec = derived_spec(tmp_path / "spec", "hospital-diagnostics",
                        {"targets": {"onprem": {"tls": {"certificate": str(certificate), "key": str(key),
                                                        "server_names": ["diagnostics.hospital.internal"]}}}})
    result = nginx_test(render(spec, tmp_path / "out") / "hospital-diagnostics.nginx.conf", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_quadlet_container_unit_runs_the_image_read_only_without_capabilities(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "iris", {"targets": {"onprem": {"mode": "container",
                                                                           "image": "registry.example.com/ml/iris:1.0.0"}}})
    bundle = render(spec, tmp_path / "out")
    assert not unit_files(bundle) and not (bundle / "app").exists()
    container = (bundle / "iris.container").read_text()
    assert directive(container, "Image") == ["registry.example.com/ml/iris:1.0.0"]
    assert directive(container, "PublishPort") == ["0.0.0.0:8080:8080"]
    assert directive(container, "ReadOnly") == ["true"] and directive(container, "DropCapability") == ["all"]
    assert directive(container, "EnvironmentFile") == ["/etc/mlgen/iris/environment"]
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, *map(str, sorted(bundle.glob("*.sh")))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_podmans_quadlet_turns_the_container_unit_into_the_expected_service(tmp_path) -> None:
    """Podman 5's own Quadlet generator (Debian 13; Debian 12's podman 4.3 predates Quadlet), run
    over the rendered .container in /etc/containers/systemd/ as at boot, writes a service that
    runs the image read-only, without capabilities, on the spec's port, with the env file and the
    secret install.sh makes."""
    root = cached_root(QUADLET_PACKAGES, suite=QUADLET_SUITE)
    spec = derived_spec(tmp_path / "spec", "iris", {
        "targets": {"onprem": {"mode": "container", "image": "localhost/iris:1"}},
        "secrets": [{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"}],
        "security": {"auth": "api_key", "api_keys": [{"secret": "iris-api-keys"}]}})
    bundle = render(spec, tmp_path / "out")
    units = tmp_path / "quadlet"
    units.mkdir()
    shutil.copy2(bundle / "iris.container", units)
    result = subprocess.run(["systemd-nspawn", "-q", "-D", str(root), "--read-only", "--register=no", "--keep-unit",
                             "--pipe", f"--bind-ro={units}:/etc/containers/systemd", "/usr/libexec/podman/quadlet", "-dryrun"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "---iris.service---" in result.stdout, result.stdout + result.stderr
    service = result.stdout.split("---iris.service---", 1)[1]
    (exec_start,) = directive(service, "ExecStart")
    run = exec_start.split()
    assert run[:2] == ["/usr/bin/podman", "run"] and run[-1] == "localhost/iris:1", exec_start
    for expected in ("--read-only", "--cap-drop all", "--publish 0.0.0.0:8080:8080",
                     "--env-file /etc/mlgen/iris/environment", "--secret iris-db_password,type=env,target=DB_PASSWORD",
                     # an API key is a file in the runtime's credentials folder, never a variable
                     "--secret iris-mlgen_api_key_1,type=mount,target=MLGEN_API_KEY_1",
                     "--env CREDENTIALS_DIRECTORY=/run/secrets"):
        assert expected in exec_start, exec_start
    assert "type=env,target=MLGEN_API_KEY" not in exec_start
    assert directive(service, "TimeoutStopSec") == ["35"] and directive(service, "MemoryMax") == ["512M"]
    assert directive(service, "WantedBy") == ["multi-user.target"]


def _fit(spec: Path):
    model = load_spec(spec)
    from mlgen import targets

    return model, targets.get("onprem").fit(model)


def test_a_name_too_long_for_a_system_user_asks_for_targets_onprem_user(tmp_path) -> None:
    spec = derived_spec(tmp_path, "iris", {"metadata": {"name": "a-very-long-service-name-for-users"}})
    with pytest.raises(RenderError) as failure:
        plan_target(load_spec(spec), "onprem", Renderer())
    (problem,) = failure.value.problems
    assert "longer than 32 characters" in problem.message and "targets.onprem.user" in problem.hint


def test_an_address_that_is_not_a_network_is_reported_at_its_line(tmp_path) -> None:
    spec = derived_spec(tmp_path, "iris", {"targets": {"onprem": {"ip_address_deny": ["any"],
                                                                  "ip_address_allow": ["localhost", "10.0.0.300/8"]}}})
    _model, problems = _fit(spec)
    (problem,) = [p for p in problems if p.level is Level.ERROR]
    assert "'10.0.0.300/8' is not an IP address" in problem.message
    lines = spec.read_text().splitlines()
    assert "10.0.0.300/8" in lines[problem.line - 1]


def test_tls_with_a_public_bind_warns_that_clients_could_bypass_the_proxy(tmp_path) -> None:
    spec = derived_spec(tmp_path, "iris", {"targets": {"onprem": {"bind": "0.0.0.0", "tls": {
        "certificate": "/etc/ssl/certs/iris.pem", "key": "/etc/ssl/private/iris.key"}}}})
    _model, problems = _fit(spec)
    assert [p.level for p in problems] == [Level.WARNING]
    assert "bypass the proxy" in problems[0].message


def test_render_is_deterministic(tmp_path) -> None:
    first = {f.path: f.content for f in plan_target(load_spec(HOSPITAL), "onprem", Renderer()).files}
    second = {f.path: f.content for f in plan_target(load_spec(HOSPITAL), "onprem", Renderer()).files}
    assert first == second


@pytest.mark.parametrize("value", ["a;b", "$host", "${x}", "a b", '"q"', "'q'", "{", "}", "a\nb", "#c", "", "\\"])
def test_the_nginx_filter_refuses_what_nginx_would_read_as_syntax(value: str) -> None:
    from mlgen.render.filters import UnsafeValue
    from mlgen.targets.onprem.filters import nginx_word

    with pytest.raises(UnsafeValue):
        nginx_word(value)


@pytest.mark.parametrize("value", ["/etc/ssl/certs/a.pem", "*.hospital.internal", "127.0.0.1", "[::1]", "name_service"])
def test_the_nginx_filter_keeps_paths_names_and_addresses(value: str) -> None:
    from mlgen.targets.onprem.filters import nginx_word

    assert nginx_word(value) == value
