"""security in the rendered bundles: API keys travel as secret references to the place each target
keeps secrets and the runtime reads them there, a spec without credentials warns who can call it,
and a target refuses runtime.admin_port while its probes would still ask the public port."""

from __future__ import annotations

import json
import shlex

import pytest

from onprem_bundle import derived_spec, directive, render, systemd_verify

from mlgen.errors import Level, RenderError
from mlgen.plan import plan_target
from mlgen.render import Renderer
from mlgen.spec import load_spec

API_KEYS = {"auth": "api_key", "api_keys": [{"secret": "iris-api-keys", "key": "current"},
                                            {"secret": "iris-api-keys", "key": "next"}]}


def test_onprem_api_keys_are_systemd_credentials_the_runtime_reads_and_no_environment_ever_holds(tmp_path) -> None:
    spec = derived_spec(tmp_path / "spec", "iris", {"security": API_KEYS,
                                                   "secrets": [{"name": "DB_PASSWORD", "secret": "iris-db", "key": "password"}]})
    bundle = render(spec, tmp_path / "out")
    unit_path = bundle / "iris.service"
    unit = unit_path.read_text()
    assert directive(unit, "LoadCredential") == [
        "DB_PASSWORD:/etc/mlgen/iris/credentials/iris-db/password",
        "MLGEN_API_KEY_1:/etc/mlgen/iris/credentials/iris-api-keys/current",
        "MLGEN_API_KEY_2:/etc/mlgen/iris/credentials/iris-api-keys/next"]
    exported = shlex.split(directive(unit, "ExecStart")[0])[2]  # the shell loop exporting the user's secrets
    assert "DB_PASSWORD" in exported and "MLGEN_API_KEY" not in exported
    assert systemd_verify(tmp_path, unit_path).stdout == ""

    security = json.loads((bundle / "app" / "serving.json").read_text())["security"]
    assert security == {"auth": "api_key", "header": "authorization", "api_keys": ["MLGEN_API_KEY_1", "MLGEN_API_KEY_2"],
                        "jwt": None, "stage_token": None}
    assert "/etc/mlgen/iris/credentials/iris-api-keys/current" in (bundle / "INSTALL.md").read_text()


def test_a_jwt_bundle_installs_pyjwt_and_carries_the_issuer_but_no_key(tmp_path) -> None:
    jwt = {"issuer": "https://login.example.com/realms/ml", "audience": "iris-api", "required_scopes": ["predict"]}
    bundle = render(derived_spec(tmp_path / "spec", "iris", {"security": {"auth": "jwt", "jwt": jwt}}), tmp_path / "out")
    security = json.loads((bundle / "app" / "serving.json").read_text())["security"]
    assert security["jwt"] == {"issuer": jwt["issuer"], "audience": "iris-api", "jwks_url": None, "algorithms": [],
                               "leeway_s": 30, "required_scopes": ["predict"], "required_claims": {}}
    assert "PyJWT[crypto]>=2.10" in (bundle / "app" / "requirements.txt").read_text().splitlines()
    assert (bundle / "app" / "mlgen_runtime" / "oidc.py").exists()


def _plan(spec, target: str):
    return plan_target(load_spec(spec), target, Renderer())


@pytest.mark.parametrize("target, who", [("onprem", "anyone who reaches this host on port 8080"),
                                         ("cloud", "anyone in 203.0.113.0/24")])
def test_a_spec_without_credentials_warns_who_can_call_the_model(tmp_path, target, who) -> None:
    spec = derived_spec(tmp_path, "iris", {"security": {"auth": "none"}})
    warnings = [p.message for p in _plan(spec, target).warnings]
    assert f"security.auth is none: {who} can call the model ({target})" in warnings


def test_a_private_function_without_runtime_credentials_does_not_warn(tmp_path) -> None:
    spec = derived_spec(tmp_path, "iris", {"security": {"auth": "none"}, "targets": {"serverless": {"public": False}}})
    assert not [p for p in _plan(spec, "serverless").warnings if "security" in p.message]


def test_a_target_whose_probes_ignore_the_admin_port_refuses_it_at_its_line(tmp_path) -> None:
    from mlgen import targets

    spec = derived_spec(tmp_path, "iris", {"runtime": {"admin_port": 9090}})
    unable = next((name for name in targets.BUILTIN if not targets.get(name).admin_port), None)
    assert unable, "every target routes runtime.admin_port now: this test has nothing left to refuse"
    with pytest.raises(RenderError) as refused:
        _plan(spec, unable)
    problem = next(p for p in refused.value.problems if p.field == "runtime.admin_port")
    assert problem.level is Level.ERROR
    assert "does not route its probes and health checks to runtime.admin_port" in problem.message
    assert "targets that do: onprem, cloud, kubernetes" in problem.render()
