"""A function whose model lives in object storage (`model.uri`): the package carries no model, the
instance fetches it on its cold start into the platform's writable temp folder before it answers,
a second invocation (and a warm container's next cold start) fetches nothing, and the deployment
grants the function's own identity read access to exactly that model.

Each provider's function runs as its platform runs it, against the real local store its SDK talks
to (tests/runtime/stores.py): Lambda's handler.py in a process of its own called with API Gateway
events (moto's S3), main.py served by functions-framework (gcp-storage-emulator), function_app.py's
registered function invoked with azure.functions.HttpRequest (Azurite with a managed identity
endpoint). The rendered files pass cfn-lint, `sam validate --lint`, checkov, shellcheck, gcloud and az.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from azure_cli import check_commands
from helpers import EXAMPLES, free_port, render_spec, require_tool
from runtime.stores import STORES
from test_target_serverless_functions import DIGIT_0, DIGIT_1, http_api_event, infer_body, outputs

EXAMPLE = EXAMPLES / "image-classifier-serverless"
MODEL = EXAMPLE / "model" / "digits.onnx"
SHA256 = hashlib.sha256(MODEL.read_bytes()).hexdigest()
INFER = "/v2/models/digits/infer"
KEY = "digits/1.0.0/digits.onnx"
STORE_OF = {"aws": "s3", "gcp": "gs", "azure": "azure"}
SAMPLE_URI = {"aws": "s3://acme-models/digits/1.0.0/digits.onnx", "gcp": "gs://acme-models/digits/1.0.0/digits.onnx",
              "azure": "https://acmemodels.blob.core.windows.net/models/digits/1.0.0/digits.onnx"}


def uri_spec(tmp_path: Path, provider: str, uri: str, model: dict | None = None, **serverless) -> Path:
    """The example's spec with its model named by `uri` instead of carried (the model folder is
    removed, so nothing could pick it up from there)."""
    source = tmp_path / "example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "model"))
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    del spec["model"]["path"]
    spec["model"].update({"uri": uri, "sha256": SHA256, "max_size": "16Mi", **(model or {})})
    spec["targets"]["serverless"].update(provider=provider, **serverless)
    if provider == "azure":
        spec.pop("rollout", None)  # the example's canary is for Lambda: Azure swaps all traffic at once
    (source / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return source / "spec.yaml"


def render_uri(tmp_path: Path, provider: str, uri: str | None = None, **serverless) -> Path:
    return render_spec(uri_spec(tmp_path, provider, uri or SAMPLE_URI[provider], **serverless), "serverless", tmp_path / "out")


@pytest.fixture
def store(request, tmp_path):
    running = STORES[request.param](tmp_path)
    yield running
    running.stop()


# --- the function runs against the real store ------------------------------------------------------

# Imports the rendered entry point as the platform does and answers one JSON request a line.
_DRIVER = r"""
import importlib.util, json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
kind, entry = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("entry", entry)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
if kind == "azure":
    import azure.functions as func
    (function,) = module.app.get_functions()
    serve = function.get_user_function()
print(json.dumps({"started": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if kind == "aws":
        answer = module.handler(request, None)
        answer = {"status": answer["statusCode"], "body": answer["body"]}
    else:
        response = serve(func.HttpRequest(request["method"], "https://digits.azurewebsites.net" + request["path"],
                                          headers={"Content-Type": "application/json"}, params={},
                                          route_params={"path": request["path"].lstrip("/")},
                                          body=request["body"].encode()))
        answer = {"status": response.status_code, "body": response.get_body().decode()}
    print(json.dumps(answer), flush=True)
"""


class FunctionInstance:
    """One cold start of a Lambda or Azure function: its entry point imported in a process of its own
    (the model is fetched during the import, as on the platform), then invoked request by request."""

    def __init__(self, kind: str, entry: Path, env: dict, log: Path) -> None:
        self.log = log
        with log.open("ab") as stderr:
            self.process = subprocess.Popen([sys.executable, "-c", _DRIVER, kind, str(entry)], cwd=entry.parent,
                                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        started = self.process.stdout.readline()
        assert started, f"the entry point did not import:\n{log.read_text()}"

    def invoke(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the function died:\n{self.log.read_text()}"
        return json.loads(line)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def request_for(provider: str, method: str, path: str, body: bytes | None = None) -> dict:
    if provider == "aws":
        return http_api_event(method, path, body, base64_body=False)
    return {"method": method, "path": path, "body": (body or b"").decode()}


def function_env(store, tmp_path: Path) -> dict:
    """The platform's writable temp folder (TMPDIR: where the adapters cache a fetched model unless
    MLGEN_MODEL_CACHE says otherwise), kept between the cold starts of one test, as in a warm container."""
    (tmp_path / "platform-tmp").mkdir(exist_ok=True)
    return {**store.env, "TMPDIR": str(tmp_path / "platform-tmp")}


@pytest.mark.parametrize(("provider", "store"), [("aws", "s3"), ("azure", "azure")], indirect=["store"])
def test_a_cold_start_fetches_the_model_and_later_invocations_and_restarts_fetch_nothing(provider, store, tmp_path):
    store.put(KEY, MODEL.read_bytes())
    bundle = render_uri(tmp_path, provider, store.uri(KEY))
    assert not list(bundle.rglob("*.onnx")), "the package carries no model"
    entry = bundle / ("handler.py" if provider == "aws" else "function_app.py")
    env, log = function_env(store, tmp_path), tmp_path / "function.log"

    first = FunctionInstance(provider, entry, env, log)
    try:
        answer = first.invoke(request_for(provider, "POST", INFER, infer_body(DIGIT_0, DIGIT_1)))
        assert answer["status"] == 200 and outputs(answer["body"])["label"] == [0, 1], answer
        store.stop()  # from here on, any fetch would fail
        again = first.invoke(request_for(provider, "POST", INFER, infer_body(DIGIT_1)))
        assert again["status"] == 200 and outputs(again["body"])["label"] == [1], again
    finally:
        first.stop()
    assert log.read_text().count("sha256 verified") == 1, log.read_text()
    cached = list((tmp_path / "platform-tmp").rglob("digits.onnx"))
    assert [path.read_bytes() for path in cached] == [MODEL.read_bytes()]

    # The same container's next cold start (Lambda re-runs the init after a timeout): /tmp still holds it.
    second = FunctionInstance(provider, entry, env, log)
    try:
        answer = second.invoke(request_for(provider, "POST", INFER, infer_body(DIGIT_1, DIGIT_0)))
        assert answer["status"] == 200 and outputs(answer["body"])["label"] == [1, 0], answer
    finally:
        second.stop()
    assert "found in the cache" in log.read_text() and log.read_text().count("sha256 verified") == 1


@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_an_instance_that_could_not_fetch_says_why_and_fetches_at_its_next_invocation(store, tmp_path):
    """Not 503 forever: the model uploaded (or the grant landed) after the cold start is fetched
    by the next invocation, without a new instance."""
    bundle = render_uri(tmp_path, "aws", store.uri(KEY))
    instance = FunctionInstance("aws", bundle / "handler.py", function_env(store, tmp_path), tmp_path / "function.log")
    try:
        refused = instance.invoke(request_for("aws", "POST", INFER, infer_body(DIGIT_0)))
        assert refused["status"] == 503 and "no such object" in json.loads(refused["body"])["error"], refused
        ready = instance.invoke(request_for("aws", "GET", "/v2/health/ready"))
        assert ready["status"] == 503 and store.uri(KEY) in json.loads(ready["body"])["reason"]
        assert instance.invoke(request_for("aws", "GET", "/v2/health/live"))["status"] == 200
        store.put(KEY, MODEL.read_bytes())
        answer = instance.invoke(request_for("aws", "POST", INFER, infer_body(DIGIT_0)))
        assert answer["status"] == 200 and outputs(answer["body"])["label"] == [0], answer
    finally:
        instance.stop()


class FunctionsFramework:
    """main.py served by functions-framework on 127.0.0.1, as Cloud Functions runs it."""

    def __init__(self, bundle: Path, env: dict, log: Path) -> None:
        self.port, self.log = free_port(), log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [require_tool("functions-framework"), "--source", "main.py", "--target", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], cwd=bundle, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def infer(self, *images) -> tuple[int, dict]:
        """The first request waits for the instance: it listens only once main.py (and the fetch) is done."""
        deadline = time.monotonic() + 60
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{INFER}", data=infer_body(*images),
                                         headers={"Content-Type": "application/json"}, method="POST")
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as refused:
                return refused.code, json.loads(refused.read())
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("functions-framework did not answer:\n" + self.log.read_text()[-3000:])
                time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)  # our own process group; gunicorn stops at once on SIGINT
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # its gunicorn worker does not always exit on a signal
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.mark.parametrize("store", ["gs"], indirect=True)
def test_cloud_functions_fetches_on_the_cold_start_and_serves_later_requests_and_restarts_from_tmp(store, tmp_path):
    store.put(KEY, MODEL.read_bytes())
    bundle = render_uri(tmp_path, "gcp", store.uri(KEY))
    assert not list(bundle.rglob("*.onnx"))
    assert "google-cloud-storage" in (bundle / "requirements.txt").read_text()
    env, log = function_env(store, tmp_path), tmp_path / "functions-framework.log"
    first = FunctionsFramework(bundle, env, log)
    try:
        status, body = first.infer(DIGIT_0, DIGIT_1)
        assert status == 200 and outputs(body)["label"] == [0, 1], body
        store.stop()
        status, body = first.infer(DIGIT_0)  # no fetch: the store is gone
        assert status == 200 and outputs(body)["label"] == [0]
    finally:
        first.stop()
    second = FunctionsFramework(bundle, env, log)  # a new instance finding the same /tmp
    try:
        status, body = second.infer(DIGIT_1, DIGIT_0)
        assert status == 200 and outputs(body)["label"] == [1, 0], body
    finally:
        second.stop()
    assert [p.read_bytes() for p in (tmp_path / "platform-tmp").rglob("digits.onnx")] == [MODEL.read_bytes()]


# --- what the deployment grants, checked by the providers' own tools ---------------------------------

@pytest.fixture(scope="module")
def sam_uri_bundle(tmp_path_factory):
    # A key with characters IAM would read as a wildcard or a variable, and a shell would run: the
    # grant still names that one object, as data.
    return render_uri(tmp_path_factory.mktemp("sam-uri"), "aws", "s3://acme-models/digits/*/v$1/$(reboot);a&b/digits.onnx")


def test_the_lambda_role_may_read_that_one_object_and_tmp_holds_the_model(sam_uri_bundle):
    function = yaml.safe_load((sam_uri_bundle / "template.yaml").read_text())["Resources"]["Function"]["Properties"]
    (policy,) = function["Policies"]
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["s3:GetObject"] and statement["Effect"] == "Allow"
    (resource,) = statement["Resource"]
    assert resource == {"Fn::Sub": ["arn:${AWS::Partition}:s3:::${Object}", {"Object": "acme-models/digits/${*}/v${$}1/${$}(reboot);a&b/digits.onnx"}]}
    assert function["EphemeralStorage"] == {"Size": 512}  # twice model.max_size 16Mi, at least Lambda's 512
    assert "MLGEN_MODEL_CACHE" not in function["Environment"]["Variables"]  # the adapter's default: /tmp


def test_cfn_lint_sam_validate_and_checkov_accept_the_uri_template(sam_uri_bundle):
    lint = subprocess.run([require_tool("cfn-lint"), "template.yaml"], cwd=sam_uri_bundle, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
    sam = subprocess.run([require_tool("sam"), "validate", "--lint", "-t", "template.yaml"], cwd=sam_uri_bundle, env=env,
                         capture_output=True, text=True, timeout=300)
    assert sam.returncode == 0, sam.stdout + sam.stderr
    result = subprocess.run([require_tool("checkov"), "--skip-download", "-o", "json", "--framework", "cloudformation",
                             "-f", "template.yaml"], cwd=sam_uri_bundle, capture_output=True, text=True)
    report = json.loads(result.stdout)
    assert report["summary"]["resource_count"] >= 4, "checkov parsed no resources"
    assert report["summary"]["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:3000]


def dry_run(bundle: Path) -> list[list[str]]:
    import shlex

    result = subprocess.run(["bash", "deploy.sh", "--dry-run"], cwd=bundle, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(bundle)})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def test_gcp_deploy_grants_the_functions_service_account_object_viewer_on_the_bucket_and_gcloud_parses_it(tmp_path):
    bundle = render_uri(tmp_path, "gcp")
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", str(bundle / "deploy.sh")],
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    commands = dry_run(bundle)
    describe, grant = (next(c for c in commands if c[1:3] == words) for words in
                       (["functions", "describe"], ["storage", "buckets"]))
    assert grant == ["gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://acme-models", "--member",
                     "serviceAccount:PROJECT_NUMBER-compute@developer.gserviceaccount.com", "--role",
                     "roles/storage.objectViewer"]
    assert commands.index(grant) > next(i for i, c in enumerate(commands) if c[1:3] == ["functions", "deploy"])
    gcloud = require_tool("gcloud")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    for command in (describe, grant, next(c for c in commands if c[1:3] == ["functions", "deploy"])):
        result = subprocess.run([gcloud, *command[1:]], capture_output=True, text=True, timeout=120, env=env, cwd=bundle)
        assert result.returncode != 2, f"{command}\n{result.stderr}"
        assert "active account" in result.stderr or "credentials" in result.stderr, f"{command}\n{result.stderr}"


def test_azure_deploy_grants_the_apps_identity_blob_reader_on_the_container_and_az_parses_it(tmp_path):
    bundle = render_uri(tmp_path, "azure")
    shellcheck = subprocess.run([require_tool("shellcheck"), "--severity=style", str(bundle / "deploy.sh")],
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout
    commands = dry_run(bundle)
    grant = next(c for c in commands if c[1:4] == ["role", "assignment", "create"])
    assert grant[grant.index("--role") + 1] == "Storage Blob Data Reader"
    assert grant[grant.index("--scope") + 1] == ("/subscriptions/SUBSCRIPTION/resourceGroups/GROUP/providers/Microsoft.Storage/"
                                                 "storageAccounts/acmemodels/blobServices/default/containers/models")
    assert grant[grant.index("--assignee-object-id") + 1] == "PRINCIPAL_ID"
    publish = next(i for i, c in enumerate(commands) if c[0] == "func")
    assert commands.index(grant) < publish, "the identity may read the model before the code that fetches it runs"
    verdicts = check_commands([c for c in commands if c[0] == "az"], tmp_path, cwd=bundle)
    refused = [str(verdict) for verdict in verdicts if not verdict.accepted]
    assert not refused, "\n".join(refused)


def test_a_model_in_another_clouds_store_is_rendered_with_a_warning_and_no_grant(tmp_path):
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    model = load_spec(uri_spec(tmp_path, "gcp", SAMPLE_URI["aws"]))
    plan = plan_target(model, "serverless", Renderer())
    assert any("has no identity that reads s3 storage" in w.message for w in plan.warnings)
    deploy = next(f for f in plan.files if f.path == "deploy.sh").content.decode()
    assert "add-iam-policy-binding" not in deploy


# --- limits: where the model is cached ----------------------------------------------------------------

def fit_problems(tmp_path: Path, provider: str, model_size: int | None = None, model: dict | None = None, **serverless):
    from mlgen.spec import load_spec
    from mlgen.targets.serverless import TARGET

    spec = uri_spec(tmp_path, provider, SAMPLE_URI[provider], model, **serverless)
    return TARGET.fit(load_spec(spec, model_size=model_size))


def rendered(problems, level: str) -> str:
    return " ".join(p.render() for p in problems if p.level.value == level)


def test_lambda_tmp_is_sized_from_max_size_and_a_model_it_cannot_hold_is_refused(tmp_path):
    from mlgen.spec import load_spec
    from mlgen.targets.serverless.settings import function_settings

    settings = function_settings(load_spec(uri_spec(tmp_path / "a", "aws", SAMPLE_URI["aws"], {"max_size": "3Gi"})))
    assert settings.ephemeral_storage_mb == 6144
    too_small = fit_problems(tmp_path / "b", "aws", model_size=700 * 2**20, model={"max_size": "1Gi"}, ephemeral_storage_mb=600)
    errors = rendered(too_small, "error")
    assert "targets.serverless.ephemeral_storage_mb" in errors and "cannot hold the model (700 MB)" in errors
    assert "raise it to 1400" in errors
    tight = fit_problems(tmp_path / "c", "aws", model_size=400 * 2**20, model={"max_size": "1Gi"}, ephemeral_storage_mb=600)
    assert not rendered(tight, "error") and "partial file" in rendered(tight, "warning")
    huge = fit_problems(tmp_path / "d", "aws", model_size=11 * 2**30, model={"max_size": "12Gi"})
    assert "does not fit in Lambda's /tmp, at most 10240 MB" in rendered(huge, "error")


def test_a_model_too_big_for_the_zip_fits_once_it_is_fetched_and_plan_says_so(tmp_path):
    problems = fit_problems(tmp_path, "aws", model_size=200 * 2**20, model={"max_size": "256Mi"})
    assert not rendered(problems, "error"), rendered(problems, "error")
    assert "not in the package but fetched into /tmp on each cold start" in rendered(problems, "warning")


def test_cloud_functions_counts_tmp_against_memory(tmp_path):
    warned = fit_problems(tmp_path / "a", "gcp", model_size=600 * 2**20, model={"max_size": "1Gi"}, memory_mb=1024)
    assert "memory twice" in rendered(warned, "warning") and not rendered(warned, "error")
    refused = fit_problems(tmp_path / "b", "gcp", model_size=1500 * 2**20, model={"max_size": "2Gi"}, memory_mb=1024)
    assert "memory_mb 1024 cannot hold the model (1,500 MB) in /tmp" in rendered(refused, "error")
