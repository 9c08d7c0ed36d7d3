"""The stage token, for split pipelines where no network policy keeps callers away from the stage
services (compose): MLGEN_STAGE_TOKEN_CREDENTIAL names a credential the gateway and its stages
share; a stage refuses every request without it (401, JSON, WWW-Authenticate, counted, logged
without the token), compared in constant time as the API keys are; the gateway sends it on every
stage call; health and metrics stay open."""

from __future__ import annotations

import json

import pytest

from helpers import free_port

from . import apps

requests = pytest.importorskip("requests")

TOKEN = "st-" + "0123456789abcdef" * 4
CREDENTIAL = "mlgen-stage-token"
PUBLIC_BODY = {"inputs": [{"name": "sepal", "datatype": "FP64", "shape": [1, 2], "data": [6.7, 3.0]},
                          {"name": "petal", "datatype": "FP64", "shape": [1, 2], "data": [5.2, 2.3]}]}
WAIT_S = 30


@pytest.fixture
def split(tmp_path, iris, start_server):
    """A gateway and its three stages as processes, every one given the token as a credential file."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / CREDENTIAL).write_text(TOKEN + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "MLGEN_STAGE_TOKEN_CREDENTIAL": CREDENTIAL}
    ports = {stage: free_port() for stage in ("preprocess", "predict", "postprocess")}
    config = apps.pipeline_app(tmp_path / "app", iris[0], {stage: f"http://127.0.0.1:{port}" for stage, port in ports.items()})
    stages = {stage: start_server(config, stage, env=env, port=port) for stage, port in ports.items()}
    gateway = start_server(config, "gateway", env=env)
    for server in (*stages.values(), gateway):
        server.wait()
    return gateway, stages


def test_the_gateway_shows_its_stages_the_token_and_a_caller_without_it_is_refused(split):
    gateway, stages = split
    answer = requests.post(f"{gateway.url}/v2/models/iris/infer", json=PUBLIC_BODY, timeout=WAIT_S)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == ["virginica"]

    direct = f"{stages['preprocess'].url}/v2/models/iris/infer"
    for headers, reason in (({}, "missing"), ({"x-mlgen-stage-token": TOKEN[:-1] + "x"}, "invalid"),
                            ({"authorization": f"Bearer {TOKEN}"}, "missing")):
        refused = requests.post(direct, json=PUBLIC_BODY, headers=headers, timeout=WAIT_S)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"].startswith("application/json") and "error" in refused.json()
        assert refused.headers["www-authenticate"] == 'ApiKey realm="iris", header="x-mlgen-stage-token"'
    right = requests.post(direct, json=PUBLIC_BODY, headers={"x-mlgen-stage-token": TOKEN}, timeout=WAIT_S)
    assert right.status_code == 200, right.text

    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):  # probes and scrapers carry no token
        assert requests.get(stages["preprocess"].url + path, timeout=WAIT_S).status_code == 200, path
    metrics = requests.get(f"{stages['preprocess'].url}/metrics", timeout=WAIT_S).text
    assert 'mlgen_auth_failures_total{stage="preprocess",reason="missing"} 2' in metrics
    assert 'mlgen_auth_failures_total{stage="preprocess",reason="invalid"} 1' in metrics
    for server in (gateway, *stages.values()):
        assert TOKEN not in server.log_text() and TOKEN[:-1] not in server.log_text()


def test_without_the_environment_a_stage_asks_for_nothing_as_on_kubernetes(tmp_path, iris):
    """serving.json keeps stage_token null (the NetworkPolicy admits only the gateway there)."""
    from mlgen_runtime import load_service

    config = apps.pipeline_app(tmp_path, iris[0], {"preprocess": "http://127.0.0.1:9", "predict": "http://127.0.0.1:9",
                                                   "postprocess": "http://127.0.0.1:9"})
    assert json.loads(config.read_text())["security"]["stage_token"] is None
    service = load_service(config, "preprocess")
    assert service.handle("POST", "/v2/models/iris/infer", {}, json.dumps(PUBLIC_BODY).encode()).status == 200


def test_a_stage_or_gateway_whose_token_was_not_delivered_does_not_start(tmp_path, iris, monkeypatch):
    from mlgen_runtime import load_service
    from mlgen_runtime.config import ConfigError

    monkeypatch.setenv("MLGEN_STAGE_TOKEN_CREDENTIAL", CREDENTIAL)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    config = apps.pipeline_app(tmp_path, iris[0], {"preprocess": "http://127.0.0.1:9", "predict": "http://127.0.0.1:9",
                                                   "postprocess": "http://127.0.0.1:9"})
    for stage in ("preprocess", "gateway"):
        with pytest.raises(ConfigError, match=f"the credential {CREDENTIAL} was not delivered"):
            load_service(config, stage)
