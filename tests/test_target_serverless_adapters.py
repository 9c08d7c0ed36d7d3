"""The platform adapters (mlgen_runtime.adapters), imported directly as the rendered entry points
import them, answer each platform's own requests through the runtime, and refuse a body over
max_body_bytes with the runtime's JSON 413 before reading it whole.

- AWS Lambda: API Gateway events as `sam local generate-event` writes them (tests/fixtures/serverless/),
  HTTP API v2 and REST v1, base64 bodies, direct invocations.
- Google Cloud Functions: functions-framework's own app for the function, called through its test client.
- Azure Functions: the FunctionApp's registered function, invoked with azure.functions.HttpRequest.
"""

from __future__ import annotations

import base64
import copy
import io
import json

import pytest
from helpers import ROOT
from runtime import apps

FIXTURES = ROOT / "tests" / "fixtures" / "serverless"
INFER = "/v2/models/iris/infer"
LIMIT = 2000  # the app's max_body_bytes
DOUBLER = '''
class Model:
    def load(self, path):
        self.factor = float(open(path).read())

    def predict(self, inputs):
        return {"y": inputs["x"] * self.factor}
'''


def infer_body(*values) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": list(values)}]}).encode()


def answer(body) -> list:
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    return body["outputs"][0]["data"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """serving.json of a model that doubles x, with a small body limit."""
    return apps.python_app(tmp_path_factory.mktemp("app"), DOUBLER, runtime={"max_body_bytes": LIMIT})


# --- AWS Lambda ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def handler(config):
    from mlgen_runtime.adapters.aws_lambda import lambda_handler

    return lambda_handler(config)


def http_api_event(method: str, path: str, body: bytes | None = None, *, base64_body: bool = False) -> dict:
    event = copy.deepcopy(json.loads((FIXTURES / "http-api-v2.json").read_text()))
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"]["content-type"] = "application/json"
    event["body"] = (base64.b64encode(body).decode() if base64_body else body.decode()) if body is not None else None
    event["isBase64Encoded"] = base64_body
    return event


def rest_api_event(method: str, path: str, body: bytes | None = None) -> dict:
    event = copy.deepcopy(json.loads((FIXTURES / "rest-api-v1.json").read_text()))
    event.update(httpMethod=method, path=path, isBase64Encoded=False, body=body.decode() if body else None)
    event["headers"]["Content-Type"] = "application/json"
    return event


@pytest.mark.parametrize("base64_body", [False, True], ids=["text-body", "base64-body"])
def test_lambda_answers_an_http_api_v2_event(handler, base64_body):
    response = handler(http_api_event("POST", INFER, infer_body(1, 2), base64_body=base64_body), None)
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False, response
    assert answer(response["body"]) == [2.0, 4.0]
    assert response["headers"]["x-request-id"]


def test_lambda_answers_a_rest_api_v1_event(handler):
    response = handler(rest_api_event("POST", INFER, infer_body(3)), None)
    assert response["statusCode"] == 200 and answer(response["body"]) == [6.0]
    ready = handler(rest_api_event("GET", "/v2/health/ready"), None)
    assert (ready["statusCode"], json.loads(ready["body"])) == (200, {"ready": True})


def test_lambda_strips_a_named_stage_from_the_path(handler):
    event = http_api_event("GET", "/prod/v2/health/live")
    event["requestContext"]["stage"] = "prod"
    assert handler(event, None)["statusCode"] == 200


def test_lambda_answers_a_direct_invocation_with_the_json_itself(handler):
    response = handler(json.loads(infer_body(5)), None)
    assert response["statusCode"] == 200 and answer(response["body"]) == [10.0]
    refused = handler({"hello": "world"}, None)
    assert refused["statusCode"] == 400 and "inputs" in refused["body"]["error"]


def test_lambda_refuses_invalid_base64_with_a_json_400(handler):
    event = http_api_event("POST", INFER, b"{}", base64_body=True)
    event["body"] = "%%% not base64 %%%"
    response = handler(event, None)
    assert response["statusCode"] == 400 and "base64" in json.loads(response["body"])["error"]


@pytest.mark.parametrize("base64_body", [False, True], ids=["text-body", "base64-body"])
def test_lambda_refuses_a_body_over_the_limit_before_decoding_it(handler, base64_body):
    event = http_api_event("POST", INFER, b"x" * (LIMIT + 1), base64_body=base64_body)
    if base64_body:  # not valid base64 at all: a 413, not a 400, shows nothing was decoded
        event["body"] = "%" * len(event["body"])
    response = handler(event, None)
    assert response["statusCode"] == 413, response
    assert "max_body_bytes 2000" in json.loads(response["body"])["error"]


def test_lambda_takes_a_body_exactly_at_the_limit(handler):
    body = infer_body(1)
    body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    assert len(body) == LIMIT
    response = handler(http_api_event("POST", INFER, body, base64_body=True), None)
    assert response["statusCode"] == 200, response


def test_a_binary_answer_goes_back_base64_encoded(handler):
    metrics = handler(http_api_event("GET", "/metrics"), None)
    assert metrics["statusCode"] == 200 and metrics["isBase64Encoded"] is False  # text/plain stays text
    from mlgen_runtime.adapters import aws_lambda
    from mlgen_runtime.service import Response

    binary = aws_lambda._proxy_response(Response(200, {"content-type": "application/octet-stream"}, b"\x00\xff"))
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x00\xff"


FAILER = '''
class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative x")
        return {"y": inputs["x"]}
'''


@pytest.fixture(scope="module")
def failing_handler(tmp_path_factory):
    from mlgen_runtime.adapters.aws_lambda import lambda_handler

    app = tmp_path_factory.mktemp("failing")
    (app / "failing_model.py").write_text(FAILER)  # a module name of its own: `handler` is imported already
    return lambda_handler(apps.python_app(app, FAILER, handler="failing_model:Model"))


@pytest.mark.parametrize("event", [lambda body: http_api_event("POST", INFER, body), lambda body: json.loads(body)],
                         ids=["http-api", "direct"])
def test_lambda_counts_each_5xx_it_answers_as_an_embedded_metric_of_its_version(failing_handler, monkeypatch, capsys,
                                                                                 event):
    """A 5xx the runtime answers is no function error: Lambda's Errors metric would never see it."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mlgen-iris-Function-X1")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    capsys.readouterr()
    assert failing_handler(event(infer_body(1.0)))["statusCode"] == 200
    assert failing_handler(event(infer_body(-1.0)))["statusCode"] == 500
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 1
    (line,) = lines
    # The embedded metric format's own rules: the metric and each dimension are fields of the line.
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive == {"Namespace": "mlgen/Lambda", "Dimensions": [["FunctionName", "Version"]],
                         "Metrics": [{"Name": "ServerErrors", "Unit": "Count"}]}
    assert isinstance(line["_aws"]["Timestamp"], int)
    assert (line["FunctionName"], line["Version"], line["ServerErrors"], line["status"]) == (
        "mlgen-iris-Function-X1", "7", 1, 500)


def test_lambda_writes_no_metric_line_off_lambda(failing_handler, monkeypatch, capsys):
    """verify's driver reads the function's stdout as its own protocol: nothing extra there."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    capsys.readouterr()
    assert failing_handler(http_api_event("POST", INFER, infer_body(-1.0)))["statusCode"] == 500
    assert '"_aws"' not in capsys.readouterr().out


# --- Google Cloud Functions ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def gcf_client(config, tmp_path_factory):
    """functions-framework's Flask app for the function, built from a source file as the
    framework loads main.py."""
    functions_framework = pytest.importorskip("functions_framework")
    source = tmp_path_factory.mktemp("gcf") / "main.py"
    source.write_text("from mlgen_runtime.adapters.gcp import http_function\n\n"
                      f"predict = http_function({str(config)!r}, 'predict')\n")
    return functions_framework.create_app(target="predict", source=str(source)).test_client()


def test_gcf_function_answers_over_http(gcf_client):
    response = gcf_client.post(INFER, data=infer_body(1, 2), content_type="application/json")
    assert response.status_code == 200 and answer(response.data) == [2.0, 4.0]
    assert gcf_client.get("/v2/health/ready").status_code == 200
    assert gcf_client.get(INFER).status_code == 405


def test_gcf_function_refuses_a_declared_oversized_body_by_its_length(gcf_client):
    body = b"x" * (LIMIT * 50)
    response = gcf_client.post(INFER, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == f"body of {len(body)} bytes exceeds max_body_bytes {LIMIT}"


def test_gcf_function_stops_reading_a_chunked_body_past_the_limit(gcf_client):
    # No Content-Length: the adapter reads one byte past the limit, then refuses.
    response = gcf_client.post(INFER, input_stream=io.BytesIO(b"x" * (LIMIT * 10)),
                               environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
    assert response.status_code == 413
    assert response.get_json()["error"] == f"body exceeds max_body_bytes {LIMIT}"


# --- Azure Functions ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def azure_function(config):
    pytest.importorskip("azure.functions")
    from mlgen_runtime.adapters.azure import function_app

    (function,) = function_app(config, public=False).get_functions()
    assert function.get_function_name() == "serve"
    return function.get_user_function()


def azure_call(serve, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    import azure.functions as func

    return serve(func.HttpRequest(method, f"https://iris.azurewebsites.net{path}",
                                  headers={"Content-Type": "application/json", **(headers or {})}, params={},
                                  route_params={"path": path.lstrip("/")}, body=body))


def test_azure_function_answers_with_the_runtime_content_type(azure_function):
    response = azure_call(azure_function, "POST", INFER, infer_body(4))
    assert response.status_code == 200 and response.mimetype == "application/json" and response.charset == "utf-8"
    assert answer(response.get_body()) == [8.0]
    assert response.headers["x-request-id"]
    metrics = azure_call(azure_function, "GET", "/metrics")
    assert metrics.mimetype == "text/plain"


def test_azure_function_refuses_a_declared_oversized_body_before_reading_it(azure_function):
    response = azure_call(azure_function, "POST", INFER, infer_body(4), headers={"Content-Length": str(LIMIT + 1)})
    assert response.status_code == 413 and "max_body_bytes 2000" in json.loads(response.get_body())["error"]


def test_azure_function_refuses_an_oversized_body_without_a_length(azure_function):
    response = azure_call(azure_function, "POST", INFER, b"x" * (LIMIT + 1))
    assert response.status_code == 413 and json.loads(response.get_body())["error"].startswith("body of 2001 bytes")


def test_the_runtime_imports_without_any_platform_library():
    """Importing the adapters package pulls in no cloud library: each adapter imports its own."""
    import subprocess
    import sys

    code = ("import sys, mlgen_runtime.adapters.aws_lambda, mlgen_runtime.adapters.gcp, mlgen_runtime.adapters.azure;"
            "print(sorted(m for m in ('boto3', 'functions_framework', 'azure.functions', 'flask') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                            cwd=ROOT / "generator" / "runtime")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- a model fetched from model.uri --------------------------------------------------------------

@pytest.fixture
def fetched_config(tmp_path, monkeypatch):
    """serving.json of the doubler whose weights come from a file:// URI that does not exist yet;
    the function's temp folder is the test's. The runtime is this repository's: a bundle imported
    in this process before (test_target_serverless_functions) may have left its own copy, which
    carries no fetch.py, in sys.modules."""
    import hashlib
    import sys

    from helpers import RUNTIME_SRC

    for name in [name for name in sys.modules if name.partition(".")[0] == "mlgen_runtime"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(RUNTIME_SRC))

    config = apps.python_app(tmp_path / "app", DOUBLER)
    weights = tmp_path / "store" / "weights.txt"
    document = json.loads(config.read_text())
    document["model"].update(path=None, uri=weights.as_uri(), sha256=hashlib.sha256(b"3.0\n").hexdigest())
    config.write_text(json.dumps(document))
    monkeypatch.setenv("MLGEN_MODEL_CACHE", str(tmp_path / "function-tmp"))
    return config, weights


def test_azure_function_waits_for_the_fetch_and_retries_one_that_failed(fetched_config):
    pytest.importorskip("azure.functions")
    from mlgen_runtime.adapters.azure import function_app

    config, weights = fetched_config
    (function,) = function_app(config, public=False).get_functions()  # indexing does not wait for the fetch
    serve = function.get_user_function()
    refused = azure_call(serve, "POST", INFER, infer_body(1))
    assert refused.status_code == 503 and "no such file" in json.loads(refused.get_body())["error"]
    weights.parent.mkdir()
    weights.write_text("3.0\n")
    answered = azure_call(serve, "POST", INFER, infer_body(1))
    assert answered.status_code == 200 and answer(answered.get_body()) == [3.0]


def test_gcf_function_fetches_before_its_first_request_and_retries_one_that_failed(fetched_config):
    functions_framework = pytest.importorskip("functions_framework")
    config, weights = fetched_config
    source = config.parent.parent / "main.py"
    source.write_text("from mlgen_runtime.adapters.gcp import http_function\n\n"
                      f"predict = http_function({str(config)!r}, 'predict')\n")
    client = functions_framework.create_app(target="predict", source=str(source)).test_client()
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and weights.as_uri() in ready.get_json()["reason"]
    assert client.get("/v2/health/live").status_code == 200
    weights.parent.mkdir()
    weights.write_text("3.0\n")
    response = client.post(INFER, data=infer_body(2), content_type="application/json")
    assert response.status_code == 200 and answer(response.data) == [6.0]
