"""security.auth: a service that asks its callers for an API key or an OIDC token refuses everyone
else on every path that serves the model, over HTTP (requests) and gRPC (tritonclient), while
health and metrics stay open (on runtime.admin_port when the spec moves them there). The issuer is
a real HTTPS server on 127.0.0.1 with a throwaway CA, trusted through SSL_CERT_FILE."""

from __future__ import annotations

import json

import pytest

from helpers import free_port

from . import apps

pytest.importorskip("requests")
pytest.importorskip("jwt")
pytest.importorskip("trustme")
pytest.importorskip("tritonclient.grpc")
import numpy as np  # noqa: E402
import requests  # noqa: E402
import tritonclient.grpc as triton  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from .issuer import AUDIENCE, Issuer, _rsa_key  # noqa: E402

ROW = [[5.1, 3.5, 1.4, 0.2]]
V2_BODY = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}
# Every route that serves the model, with what it is sent.
MODEL_ROUTES = [("POST", "/v2/models/iris/infer", V2_BODY),
                ("POST", "/v2/models/iris/versions/1.0.0/infer", V2_BODY),
                ("POST", "/v1/models/iris:predict", {"instances": ROW}),
                ("GET", "/v2/models/iris", None),
                ("GET", "/v2", None)]
OPEN_ROUTES = ["/v2/health/live", "/v2/health/ready", "/metrics"]
KEY_CURRENT, KEY_NEXT, KEY_REVOKED = "k-current-" + "a" * 24, "k-next-" + "b" * 24, "k-revoked-" + "c" * 24


@pytest.fixture
def issuer(tmp_path):
    issuer = Issuer(tmp_path)
    yield issuer
    issuer.stop()


@pytest.fixture
def jwt_service(tmp_path, iris, issuer, start_server):
    """iris asking for tokens from `issuer` with the scope `predict`, HTTP and gRPC."""
    grpc_port = free_port()
    security = {"auth": "jwt", "jwt": {"issuer": issuer.url, "audience": [AUDIENCE], "jwks_url": None,
                                       "algorithms": [], "leeway_s": 5, "required_scopes": ["predict"],
                                       "required_claims": {}}}
    config = apps.sklearn_app(tmp_path / "app", iris[0], security=security, runtime={"grpc_port": grpc_port})
    server = start_server(config, env={"SSL_CERT_FILE": str(issuer.ca_file)}).wait()
    server.grpc_port = grpc_port
    return server


def bad_tokens(issuer) -> dict[str, str]:
    return {
        "signed by a key the issuer never published": issuer.token(key=_rsa_key()),
        "expired": issuer.token(exp=1_600_000_000, iat=1_599_999_000),
        "for another audience": issuer.token(aud="billing-api"),
        "from another issuer": issuer.token(iss="https://evil.example"),
        "not valid yet": issuer.token(nbf=2_000_000_000_0),
        "without an expiry": issuer.token(exp=None),
        "alg none": issuer.unsigned_token(),
        "HS256 keyed with the public key": issuer.hmac_token_with_public_key(),
        "not a JWT": "not-a-token",
    }


def call(server, method, path, body, headers):
    return requests.request(method, server.url + path, json=body, headers=headers, timeout=30)


def test_a_jwt_service_answers_its_issuers_tokens_and_refuses_every_other_caller_on_every_model_route(jwt_service, issuer):
    good, tokens = {"authorization": f"Bearer {issuer.token()}"}, bad_tokens(issuer)
    for method, path, body in MODEL_ROUTES:
        assert call(jwt_service, method, path, body, good).status_code == 200, path

        anonymous = call(jwt_service, method, path, body, {})
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="iris"'
        assert anonymous.json() == {"error": "no credentials: send Authorization: Bearer <token>"}
        for what, token in tokens.items():
            refused = call(jwt_service, method, path, body, {"authorization": f"Bearer {token}"})
            assert refused.status_code == 401, (path, what, refused.text)
            assert refused.headers["www-authenticate"].startswith('Bearer realm="iris", error="invalid_token"'), what
            assert set(refused.json()) == {"error"}

    without_scope = call(jwt_service, "POST", "/v2/models/iris/infer", V2_BODY,
                         {"authorization": f"Bearer {issuer.token(scope='read')}"})
    assert without_scope.status_code == 403
    assert 'error="insufficient_scope"' in without_scope.headers["www-authenticate"]
    assert 'scope="predict"' in without_scope.headers["www-authenticate"]

    for path in OPEN_ROUTES:
        assert requests.get(jwt_service.url + path, timeout=30).status_code == 200, path
    metrics = requests.get(jwt_service.url + "/metrics", timeout=30).text
    assert f'mlgen_auth_failures_total{{stage="all",reason="missing"}} {len(MODEL_ROUTES)}' in metrics
    assert f'mlgen_auth_failures_total{{stage="all",reason="expired"}} {len(MODEL_ROUTES)}' in metrics
    assert 'mlgen_auth_failures_total{stage="all",reason="forbidden"} 1' in metrics
    log = jwt_service.log_text()
    assert "authentication failed" in log
    signatures = [token.rpartition(".")[2] for token in tokens.values()]
    assert not [signature for signature in signatures if signature and signature in log]


def test_a_rotated_signing_key_is_fetched_when_a_token_first_names_it(jwt_service, issuer):
    infer = lambda token: call(jwt_service, "POST", "/v2/models/iris/infer", V2_BODY,  # noqa: E731
                               {"authorization": f"Bearer {token}"})
    assert infer(issuer.token()).status_code == 200
    fetched = issuer.jwks_fetches
    assert infer(issuer.token()).status_code == 200 and issuer.jwks_fetches == fetched  # cached

    new_kid = issuer.rotate()
    assert infer(issuer.token(kid=new_kid)).status_code == 200
    assert issuer.jwks_fetches == fetched + 1
    # A key id nobody publishes does not send every caller to the issuer again.
    assert infer(issuer.token(kid="key-99", key=_rsa_key())).status_code == 401
    assert issuer.jwks_fetches == fetched + 1


def test_over_grpc_a_token_is_metadata_and_a_bad_one_is_unauthenticated(jwt_service, issuer):
    client = triton.InferenceServerClient(f"127.0.0.1:{jwt_service.grpc_port}")
    try:
        tensor = triton.InferInput("input-0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array(ROW, dtype=np.float32))
        answer = client.infer("iris", [tensor], headers={"authorization": f"Bearer {issuer.token()}"})
        assert answer.as_numpy("predict").tolist() == [0]
        assert client.is_server_live() and client.is_server_ready()  # health needs no token
        for what, headers in {"no token": {}, **{what: {"authorization": f"Bearer {token}"}
                                                  for what, token in bad_tokens(issuer).items()}}.items():
            with pytest.raises(InferenceServerException) as refused:
                client.infer("iris", [tensor], headers=headers)
            assert refused.value.status() == "StatusCode.UNAUTHENTICATED", what
            with pytest.raises(InferenceServerException):
                client.get_model_metadata("iris", headers=headers)
        with pytest.raises(InferenceServerException) as forbidden:
            client.infer("iris", [tensor], headers={"authorization": f"Bearer {issuer.token(scope='read')}"})
        assert forbidden.value.status() == "StatusCode.PERMISSION_DENIED"
    finally:
        client.close()


@pytest.fixture
def key_service(tmp_path, iris, start_server):
    """iris asking for an API key in x-api-key, its two valid keys delivered as systemd credentials
    (files in $CREDENTIALS_DIRECTORY), health and metrics on an admin port."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "MLGEN_API_KEY_1").write_text(KEY_CURRENT + "\n")
    (credentials / "MLGEN_API_KEY_2").write_text(KEY_NEXT)
    admin_port, grpc_port = free_port(), free_port()
    security = {"auth": "api_key", "header": "x-api-key", "api_keys": ["MLGEN_API_KEY_1", "MLGEN_API_KEY_2"]}
    config = apps.sklearn_app(tmp_path / "app", iris[0], security=security,
                              runtime={"admin_port": admin_port, "grpc_port": grpc_port})
    server = start_server(config, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    server.admin = f"http://127.0.0.1:{admin_port}"
    server.grpc_port = grpc_port
    server.wait = lambda: server  # readiness answers on the admin port only
    _wait_ready(server.admin)
    return server


def _wait_ready(url: str) -> None:
    import time

    for _ in range(600):
        try:
            if requests.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never became ready")


def test_every_current_api_key_is_answered_and_a_revoked_one_is_refused(key_service):
    for method, path, body in MODEL_ROUTES:
        for key in (KEY_CURRENT, KEY_NEXT):
            assert call(key_service, method, path, body, {"x-api-key": key}).status_code == 200, path
        for headers in ({}, {"x-api-key": KEY_REVOKED}, {"x-api-key": KEY_CURRENT[:-1]},
                        {"authorization": f"Bearer {KEY_CURRENT}"}):
            refused = call(key_service, method, path, body, headers)
            assert refused.status_code == 401, (path, headers)
            assert refused.headers["www-authenticate"] == 'ApiKey realm="iris", header="x-api-key"'
    assert KEY_REVOKED not in key_service.log_text() and KEY_CURRENT not in key_service.log_text()

    client = triton.InferenceServerClient(f"127.0.0.1:{key_service.grpc_port}")
    try:
        tensor = triton.InferInput("input-0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array(ROW, dtype=np.float32))
        assert client.infer("iris", [tensor], headers={"x-api-key": KEY_NEXT}).as_numpy("predict").tolist() == [0]
        with pytest.raises(InferenceServerException) as refused:
            client.infer("iris", [tensor], headers={"x-api-key": KEY_REVOKED})
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    finally:
        client.close()


def test_with_an_admin_port_the_public_port_carries_only_inference(key_service):
    for path in OPEN_ROUTES:
        assert requests.get(key_service.admin + path, timeout=30).status_code == 200, path
        assert requests.get(key_service.url + path, timeout=30).status_code == 404, path
    on_admin = requests.post(key_service.admin + "/v2/models/iris/infer", json=V2_BODY,
                             headers={"x-api-key": KEY_CURRENT}, timeout=30)
    assert on_admin.status_code == 404
    assert "mlgen_auth_failures_total" in requests.get(key_service.admin + "/metrics", timeout=30).text


def test_the_default_header_takes_a_bearer_api_key(tmp_path, iris, monkeypatch):
    from mlgen_runtime import load_service

    monkeypatch.setenv("MLGEN_API_KEY_1", KEY_CURRENT)  # as Kubernetes' secretKeyRef delivers it
    service = load_service(apps.sklearn_app(tmp_path, iris[0], security={"auth": "api_key", "api_keys": ["MLGEN_API_KEY_1"]}))
    infer = lambda headers: service.handle("POST", "/v2/models/iris/infer", headers, json.dumps(V2_BODY).encode())  # noqa: E731
    assert infer({"Authorization": f"Bearer {KEY_CURRENT}"}).status == 200
    assert infer({"Authorization": f"bearer  {KEY_CURRENT} "}).status == 200
    assert infer({"Authorization": KEY_CURRENT}).status == 401
    assert infer({"Authorization": f"Basic {KEY_CURRENT}"}).status == 401


def test_a_service_whose_key_was_not_delivered_does_not_start_and_says_which(tmp_path, iris, monkeypatch):
    from mlgen_runtime import load_service
    from mlgen_runtime.config import ConfigError

    monkeypatch.delenv("MLGEN_API_KEY_1", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = apps.sklearn_app(tmp_path, iris[0], security={"auth": "api_key", "api_keys": ["MLGEN_API_KEY_1"]})
    with pytest.raises(ConfigError, match="the credential MLGEN_API_KEY_1 was not delivered"):
        load_service(config)
    (tmp_path / "MLGEN_API_KEY_1").write_text("short")
    with pytest.raises(ConfigError, match="shorter than 16 characters") as refused:
        load_service(config)
    assert "short'" not in str(refused.value) and ": short" not in str(refused.value)
