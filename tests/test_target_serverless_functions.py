"""A user's story for each provider's function: the rendered handler, imported as the platform
imports it, answers real requests through the same runtime as the HTTP server.

- AWS: handler.handler called with API Gateway events exactly as `sam local generate-event`
  writes them (tests/fixtures/serverless/), HTTP API v2 and REST v1, plus direct invocations.
- GCP: main.py served by functions-framework on 127.0.0.1 and called over HTTP.
- Azure: function_app.py's registered function found through app.get_functions(), as the host
  finds it, and invoked with azure.functions.HttpRequest.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, ROOT, free_port, render_spec, require_tool

FIXTURES = ROOT / "tests" / "fixtures" / "serverless"
EXAMPLE = EXAMPLES / "image-classifier-serverless"
INFER = "/v2/models/digits/infer"
# Two of scikit-learn's bundled digits (labels 0 and 1) as the pixel arrays the example accepts.
DIGIT_0 = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
           0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
DIGIT_1 = [0, 0, 0, 12, 13, 5, 0, 0, 0, 0, 0, 11, 16, 9, 0, 0, 0, 0, 3, 15, 16, 6, 0, 0, 0, 7, 15, 16, 16, 2, 0, 0,
           0, 0, 1, 16, 16, 3, 0, 0, 0, 0, 1, 16, 16, 6, 0, 0, 0, 0, 1, 16, 16, 6, 0, 0, 0, 0, 0, 11, 16, 10, 0, 0]


def infer_body(*images) -> bytes:
    data = [json.dumps(image) if isinstance(image, list) else image for image in images]
    return json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(data)], "data": data}]}).encode()


def png_base64() -> str:
    """DIGIT_1 drawn as a 32x32 PNG: dark ink on white, as a user's upload would be."""
    from PIL import Image

    pixels = bytes(255 - value * 255 // 16 for value in DIGIT_1)
    image = Image.frombytes("L", (8, 8), pixels).resize((32, 32))
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def render_for(provider: str, out: Path) -> Path:
    """The example rendered for `provider` (a copy of the spec with only the provider changed)."""
    source = out / "example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((source / "spec.yaml").read_text())
    spec["targets"]["serverless"]["provider"] = provider
    if provider == "azure":
        spec.pop("rollout", None)  # the example's canary is for Lambda: Azure swaps all traffic at once
    (source / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return render_spec(source / "spec.yaml", "serverless", out / provider)  # out/<provider>/serverless


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs(body) -> dict:
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    return {item["name"]: item["data"] for item in body["outputs"]}


# --- AWS Lambda ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lambda_handler(tmp_path_factory):
    bundle = render_for("aws", tmp_path_factory.mktemp("aws"))
    return import_file(bundle / "handler.py", "mlgen_test_lambda_handler").handler


def http_api_event(method: str, path: str, body: bytes | None, base64_body: bool = True) -> dict:
    event = copy.deepcopy(json.loads((FIXTURES / "http-api-v2.json").read_text()))
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"]["content-type"] = "application/json"
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    elif base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = body.decode(), False
    return event


def rest_api_event(method: str, path: str, body: bytes | None) -> dict:
    event = copy.deepcopy(json.loads((FIXTURES / "rest-api-v1.json").read_text()))
    event.update(httpMethod=method, path=path, isBase64Encoded=False, body=body.decode() if body else None)
    event["headers"]["Content-Type"] = "application/json"
    return event


def test_http_api_v2_event_with_a_base64_body_is_answered(lambda_handler):
    response = lambda_handler(http_api_event("POST", INFER, infer_body(DIGIT_0, DIGIT_1)), None)
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    assert outputs(response["body"])["label"] == [0, 1]


def test_http_api_v2_event_with_a_png_upload(lambda_handler):
    response = lambda_handler(http_api_event("POST", INFER, infer_body(png_base64()), base64_body=False), None)
    assert response["statusCode"] == 200, response
    assert outputs(response["body"])["label"] == [1]


def test_rest_api_v1_event_is_answered(lambda_handler):
    response = lambda_handler(rest_api_event("POST", INFER, infer_body(DIGIT_1)), None)
    assert response["statusCode"] == 200, response
    assert outputs(response["body"])["label"] == [1]
    ready = lambda_handler(rest_api_event("GET", "/v2/health/ready", None), None)
    assert (ready["statusCode"], json.loads(ready["body"])) == (200, {"ready": True})


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"{not json", 400, ""),
    (infer_body("not base64 and not a pixel array!"), 400, "neither a JSON pixel array nor base64"),
    (infer_body(base64.b64encode(b"GIF89a....").decode()), 400, "not a PNG"),
    (infer_body([99] * 64), 400, "0 (background) to 16 (ink)"),
], ids=["broken-json", "garbage-image", "not-png", "pixels-out-of-range"])
def test_bad_bodies_get_json_errors_with_4xx(lambda_handler, body, status, says):
    response = lambda_handler(http_api_event("POST", INFER, body), None)
    assert response["statusCode"] == status, response
    assert says in json.loads(response["body"])["error"]


def test_invalid_base64_event_body_is_a_400(lambda_handler):
    event = http_api_event("POST", INFER, b"{}")
    event["body"] = "%%% not base64 %%%"
    response = lambda_handler(event, None)
    assert response["statusCode"] == 400
    assert "base64" in json.loads(response["body"])["error"]


def test_body_over_the_limit_is_a_413(lambda_handler):
    too_big = b"x" * (1048576 + 1)  # the example's runtime.max_body_bytes
    response = lambda_handler(http_api_event("POST", INFER, too_big), None)
    assert response["statusCode"] == 413
    assert "max_body_bytes" in json.loads(response["body"])["error"]


def test_unknown_route_and_wrong_method(lambda_handler):
    assert lambda_handler(http_api_event("GET", "/nope", None), None)["statusCode"] == 404
    assert lambda_handler(http_api_event("GET", INFER, None), None)["statusCode"] == 405


def test_direct_invocation(lambda_handler):
    response = lambda_handler(json.loads(infer_body(DIGIT_0)), None)
    assert response["statusCode"] == 200
    assert outputs(response["body"])["label"] == [0]
    refused = lambda_handler({"hello": "world"}, None)
    assert refused["statusCode"] == 400 and "inputs" in refused["body"]["error"]


def test_the_sample_event_reaches_the_model(lambda_handler, tmp_path):
    """events/infer.json is a valid HTTP API event; its placeholder image is refused by the
    example's preprocess step with a 400, not a crash."""
    bundle = render_for("aws", tmp_path)
    event = json.loads((bundle / "events" / "infer.json").read_text())
    response = lambda_handler(event, None)
    assert response["statusCode"] == 400
    assert "image[0]" in json.loads(response["body"])["error"]


# --- Google Cloud Functions ---------------------------------------------------------------------

def test_gcp_function_served_by_functions_framework(tmp_path):
    framework = require_tool("functions-framework")
    bundle = render_for("gcp", tmp_path)
    port = free_port()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    log = open(tmp_path / "functions-framework.log", "wb")
    process = subprocess.Popen([framework, "--source", "main.py", "--target", "serve", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=bundle, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as ready:
                    assert ready.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("functions-framework did not become ready:\n" + (tmp_path / "functions-framework.log").read_text()[-3000:])
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}{INFER}", data=infer_body(DIGIT_0, png_base64()),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            assert outputs(answer.read())["label"] == [0, 1]
        bad = urllib.request.Request(f"{base}{INFER}", data=b"[]", headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 400 and "error" in json.loads(refused.value.read())
        big = urllib.request.Request(f"{base}{INFER}", data=b"x" * (1048576 + 1), method="POST")
        with pytest.raises(urllib.error.HTTPError) as too_big:
            urllib.request.urlopen(big, timeout=10)
        assert too_big.value.code == 413
    finally:
        os.killpg(process.pid, signal.SIGINT)  # our own group; gunicorn stops at once on SIGINT
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # its gunicorn worker does not always exit on a signal
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


# --- Azure Functions ----------------------------------------------------------------------------

def test_azure_function_found_and_invoked_as_the_host_does(tmp_path):
    func = pytest.importorskip("azure.functions") if os.environ.get("MLGEN_REQUIRE_TOOLS") != "1" else __import__("azure.functions").functions
    bundle = render_for("azure", tmp_path)
    module = import_file(bundle / "function_app.py", "mlgen_test_function_app")
    functions = module.app.get_functions()
    assert [f.get_function_name() for f in functions] == ["serve"]
    serve = functions[0].get_user_function()

    def call(method, path, body=b""):
        return serve(func.HttpRequest(method, f"https://digits.azurewebsites.net{path}",
                                      headers={"Content-Type": "application/json"}, params={},
                                      route_params={"path": path.lstrip("/")}, body=body))

    answer = call("POST", INFER, infer_body(DIGIT_1, DIGIT_0))
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert outputs(answer.get_body())["label"] == [1, 0]
    refused = call("POST", INFER, b"{broken")
    assert refused.status_code == 400 and "error" in json.loads(refused.get_body())
    assert call("GET", "/v2/health/ready").status_code == 200
    assert call("POST", INFER, b"x" * (1048576 + 1)).status_code == 413
