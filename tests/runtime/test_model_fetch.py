"""A model kept in object storage (`model.uri`): the service fetches it when it starts, verifies its
sha256, caches it, and serves it; a restart finds it in the cache and asks the store for nothing.
A store that cannot give the model (no such object, access denied, the wrong bytes) leaves the
service live and not ready, saying why and naming the URI. Every store is the real server or
emulator its SDK talks to, on 127.0.0.1 (tests/runtime/stores.py)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from . import apps
from .stores import STORES

requests = pytest.importorskip("requests")


@pytest.fixture(scope="module")
def iris():
    import joblib

    estimator, features = apps.iris_estimator()
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return estimator, features, buffer.getvalue()


@pytest.fixture
def store(request, tmp_path):
    running = STORES[request.param](tmp_path)
    yield running
    running.stop()


def fetched_app(app_dir, uri: str, sha256: str):
    app_dir.mkdir(parents=True, exist_ok=True)
    model = {"format": "sklearn", "path": None, "sha256": sha256, "handler": None, "uri": uri,
             "version": "2.0.0", "inputs": apps.IRIS_INPUTS, "outputs": apps.IRIS_OUTPUTS}
    return apps.write_serving_json(app_dir, model)


def predictions(server, rows):
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": list(rows.shape), "data": rows.flatten().tolist()}]}
    answer = requests.post(f"{server.url}/v2/models/iris/versions/2.0.0/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return next(output["data"] for output in answer.json()["outputs"] if output["name"] == "predict")


def wait_not_ready(server, deadline_s: float = 60) -> dict:
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            ready = requests.get(f"{server.url}/v2/health/ready", timeout=1)
            if ready.status_code == 503 and "could not be fetched" in ready.json().get("reason", ""):
                return ready.json()
        except requests.ConnectionError:
            pass
        assert server.process.poll() is None, server.log_text()
        time.sleep(0.1)
    raise AssertionError(f"no not-ready reason within {deadline_s}s:\n{server.log_text()}")


@pytest.mark.parametrize("store", sorted(STORES), indirect=True)
def test_the_service_fetches_verifies_caches_and_serves_the_model_and_a_restart_fetches_nothing(
        store, iris, tmp_path, start_server):
    estimator, features, model_bytes = iris
    store.put("iris/2.0.0/model.joblib", model_bytes)
    config = fetched_app(tmp_path / "app", store.uri("iris/2.0.0/model.joblib"), hashlib.sha256(model_bytes).hexdigest())

    first = start_server(config, env=store.env).wait()
    rows = features[:5]
    assert predictions(first, rows) == estimator.predict(rows).tolist()
    assert 'mlgen_model_info{stage="all",version="2.0.0"} 1' in requests.get(first.url + "/metrics", timeout=5).text
    assert first.stop() in (0, -15)
    fetched_lines = [line for line in first.log_text().splitlines() if "sha256 verified" in line]
    assert len(fetched_lines) == 1 and json.loads(fetched_lines[0])["model_version"] == "2.0.0"
    cached = list((tmp_path / "model-cache").rglob("model.joblib"))
    assert [path.read_bytes() for path in cached] == [model_bytes]

    store.stop()  # the store is gone: the second start can only use the cache
    second = start_server(config, env=store.env).wait()
    assert predictions(second, rows) == estimator.predict(rows).tolist()
    assert "found in the cache" in second.log_text() and "sha256 verified" not in second.log_text()


FAILURES = [
    # (store, object the spec names, what the store holds there, what the reason says)
    ("https", "iris/missing.joblib", None, "no such object"),
    ("s3", "iris/missing.joblib", None, "no such object"),
    ("gs", "iris/missing.joblib", None, "no such object"),
    ("azure", "iris/missing.joblib", None, "no such blob"),
    ("https", "iris/tampered.joblib", b"not the model", "sha256 mismatch"),
    ("s3", "iris/tampered.joblib", b"not the model", "sha256 mismatch"),
    ("https", "denied/model.joblib", None, "access denied (HTTP 403)"),
]


@pytest.mark.parametrize("store, name, held, reason", FAILURES, indirect=["store"],
                         ids=[f"{case[0]}-{case[3].split()[0]}" for case in FAILURES])
def test_a_model_the_store_cannot_give_leaves_the_service_live_and_not_ready_with_the_reason(
        store, name, held, reason, iris, tmp_path, start_server):
    _estimator, _features, model_bytes = iris
    if held is not None:
        store.put(name, held)
    uri = store.uri(name)
    server = start_server(fetched_app(tmp_path / "app", uri, hashlib.sha256(model_bytes).hexdigest()), env=store.env)

    not_ready = wait_not_ready(server)
    assert uri in not_ready["reason"] and reason in not_ready["reason"]
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    model_ready = requests.get(f"{server.url}/v2/models/iris/ready", timeout=5)
    assert model_ready.status_code == 503 and uri in model_ready.json()["reason"]
    infer = requests.post(f"{server.url}/v2/models/iris/infer", json={"inputs": []}, timeout=5)
    assert infer.status_code == 503 and reason in infer.json()["error"]
    errors = [json.loads(line) for line in server.log_text().splitlines()
              if line.startswith("{") and json.loads(line)["level"] == "error"]
    assert len(errors) == 1 and uri in errors[0]["msg"] and reason in errors[0]["msg"]
    assert not list((tmp_path / "model-cache").rglob("*.joblib")), "nothing unverified is left in the cache"


def test_a_service_without_cloud_credentials_says_so_and_stays_live(iris, tmp_path, start_server):
    pytest.importorskip("boto3")
    _estimator, _features, model_bytes = iris
    no_identity = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": "/dev/null",
                   "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    uri = "s3://models/iris/model.joblib"
    server = start_server(fetched_app(tmp_path / "app", uri, hashlib.sha256(model_bytes).hexdigest()), env=no_identity)
    reason = wait_not_ready(server)["reason"]
    assert uri in reason and "no AWS credentials" in reason
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
