"""A Lambda canary's PreTraffic hook: before CodeDeploy shifts any of the `live` alias's traffic, the
hook invokes the new version with the spec's examples in the HTTP API's event and judges the answers
with the judge of mlgen verify, then reports to CodeDeploy. The runtime answers a failing handler
with a 5xx and no function error, which the Errors alarm never counts: the hook does. Run here
against botocore's Stubber (the real clients' request and response shapes) and against the
bundle's own handler.py, called as Lambda calls it; the template checked by cfn-lint,
`sam validate --lint` and checkov."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from helpers import EXAMPLES, render_spec
from test_target_serverless_release import SKIPS, sam_checkers_accept

from mlgen.spec import load_spec
from mlgen.targets.serverless.release import pre_traffic

IRIS = EXAMPLES / "iris" / "spec.yaml"
CANARY = ["rollout.strategy=canary", "rollout.steps=[{weight: 10, pause: 5m}, {weight: 100}]"]
API_KEY = ["security.auth=api_key", "security.api_keys=[{secret: iris-keys, key: first}]"]
VERSION = "arn:aws:lambda:eu-west-1:123456789012:function:mlgen-iris-Function:7"
KEY = "a-key-long-enough-for-the-runtime-0123456789"
EVENT = {"DeploymentId": "d-ABCDEFGHI", "LifecycleEventHookExecutionId": "hook-execution-1"}
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return render_spec(IRIS, "serverless", tmp_path_factory.mktemp("pre-traffic"), sets=CANARY + API_KEY)


def load_hook(bundle: Path):
    """release/pre_traffic.py as Lambda imports it: its folder first on the path (smoke.py beside it)."""
    folder = str(bundle / "release")
    sys.path.insert(0, folder)
    try:
        sys.modules.pop("smoke", None)
        spec = importlib.util.spec_from_file_location("pre_traffic", bundle / "release" / "pre_traffic.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert Path(module.smoke.__file__).parent == bundle / "release"  # the judge shipped beside it
        return module
    finally:
        sys.path.remove(folder)
        sys.modules.pop("smoke", None)


@pytest.fixture
def environment(monkeypatch):
    monkeypatch.setenv("NEW_VERSION", VERSION)
    monkeypatch.setenv("API_KEY_HEADER", "authorization")
    monkeypatch.setenv("API_KEY_SECRET", "iris-keys")
    monkeypatch.setenv("API_KEY_FIELD", "first")


def client(service: str):
    import boto3

    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def proxy_reply(status: int, body: dict) -> dict:
    text = json.dumps(body).encode()
    payload = json.dumps({"statusCode": status, "headers": {"content-type": "application/json"},
                          "body": text.decode(), "isBase64Encoded": False}).encode()
    return {"StatusCode": 200, "ExecutedVersion": "7", "Payload": StreamingBody(io.BytesIO(payload), len(payload))}


def right_answer(bundle: Path) -> dict:
    (example,) = json.loads((bundle / "release" / "examples.json").read_text())
    return {"model_name": "iris", "outputs": [{"name": name, "datatype": "INT64", "shape": [len(data)], "data": data}
                                              for name, data in example["expected"].items()]}


def stubbed(replies: list[dict], status: str, secret: str = json.dumps({"first": KEY})):
    """Stubbed Lambda, CodeDeploy and Secrets Manager clients expecting these invocations of the
    new version and one report with `status`."""
    lambda_client, codedeploy, secrets = client("lambda"), client("codedeploy"), client("secretsmanager")
    stubs = [Stubber(lambda_client), Stubber(codedeploy), Stubber(secrets)]
    stubs[2].add_response("get_secret_value", {"SecretString": secret}, {"SecretId": "iris-keys"})
    for reply in replies:
        stubs[0].add_response("invoke", reply, {"FunctionName": VERSION, "InvocationType": "RequestResponse",
                                                "Payload": ANY})
    stubs[1].add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "hook-execution-1"},
                          {"deploymentId": EVENT["DeploymentId"], "lifecycleEventHookExecutionId": "hook-execution-1",
                           "status": status})
    for stub in stubs:
        stub.activate()
    return (lambda_client, codedeploy, secrets), stubs


def test_a_version_that_answers_every_example_right_is_let_through(bundle, environment):
    hook = load_hook(bundle)
    clients, stubs = stubbed([proxy_reply(200, right_answer(bundle))], "Succeeded")
    assert hook.run(EVENT, *clients) == {"status": "Succeeded"}
    for stub in stubs:
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("reply, said", [
    # The runtime's own 5xx: no function error, so no Errors alarm would ever see it.
    (lambda bundle: proxy_reply(500, {"error": "the handler failed (request id r-1)"}), "HTTP 500"),
    (lambda bundle: proxy_reply(200, {**right_answer(bundle), "outputs": [{"name": "predict", "data": [2, 2]}]}),
     "output predict is [2, 2]"),
    (lambda bundle: {**proxy_reply(200, {}), "FunctionError": "Unhandled"}, "the function failed (Unhandled)"),
])
def test_a_wrong_answer_a_5xx_or_a_function_error_fails_the_deployment(bundle, environment, reply, said, capsys):
    hook = load_hook(bundle)
    clients, stubs = stubbed([reply(bundle)], "Failed")
    assert hook.run(EVENT, *clients) == {"status": "Failed"}
    assert said in capsys.readouterr().out
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_a_check_that_cannot_run_still_reports_failed(bundle, environment, capsys):
    hook = load_hook(bundle)
    (lambda_client, codedeploy, secrets), stubs = stubbed([], "Failed")
    stubs[0].add_client_error("invoke", "ResourceNotFoundException", http_status_code=404)
    assert hook.run(EVENT, lambda_client, codedeploy, secrets) == {"status": "Failed"}
    assert "ResourceNotFoundException" in capsys.readouterr().out
    stubs[1].assert_no_pending_responses()


class BundleFunction:
    """A Lambda client whose invoke runs the bundle's handler.py in this process, as Lambda runs it:
    the event as JSON in, the handler's return value as the payload out."""

    def __init__(self, bundle: Path):
        sys.path.insert(0, str(bundle))
        try:
            spec = importlib.util.spec_from_file_location("handler", bundle / "handler.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(bundle))
        self.handler, self.invoked = module.handler, []

    def invoke(self, FunctionName, InvocationType, Payload):  # noqa: N803  (boto3's parameter names)
        self.invoked.append(FunctionName)
        payload = json.dumps(self.handler(json.loads(Payload), None)).encode()
        return {"StatusCode": 200, "Payload": io.BytesIO(payload)}


@pytest.mark.parametrize("secret, status", [(json.dumps({"first": KEY}), "Succeeded"),
                                            (json.dumps({"first": "not-the-key-" + "x" * 32}), "Failed")])
def test_the_bundles_own_function_answers_the_hook(bundle, environment, monkeypatch, secret, status, capsys):
    monkeypatch.setenv("MLGEN_AWS_SECRETS", "[]")  # the function's key, delivered as its secrets would be
    monkeypatch.setenv("MLGEN_API_KEY_1", KEY)
    function = BundleFunction(bundle)
    hook = load_hook(bundle)
    (_, codedeploy, secrets), stubs = stubbed([], status, secret)
    assert hook.run(EVENT, function, codedeploy, secrets) == {"status": status}
    assert function.invoked == [VERSION]
    if status == "Failed":
        assert "HTTP 401" in capsys.readouterr().out


def test_the_hook_is_in_the_deployment_preference_with_least_privilege(bundle):
    template = yaml.safe_load((bundle / "template.yaml").read_text())
    resources = template["Resources"]
    assert resources["Function"]["Properties"]["DeploymentPreference"]["Hooks"] == {"PreTraffic": {"Ref": "PreTrafficHook"}}
    hook = resources["PreTrafficHook"]["Properties"]
    assert hook["FunctionName"] == {"Fn::Sub": "CodeDeployHook_${AWS::StackName}"}
    assert (hook["CodeUri"], hook["Handler"]) == ("release/", "pre_traffic.handler")
    assert hook["Environment"]["Variables"]["NEW_VERSION"] == {"Ref": "Function.Version"}
    (policy,) = hook["Policies"]
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    assert grants["InvokeNewVersion"] == (["lambda:InvokeFunction"], [{"Ref": "Function.Version"}])
    assert grants["ReportToCodeDeploy"][0] == ["codedeploy:PutLifecycleEventHookExecutionStatus"]
    assert grants["ReadApiKey"][1][0]["Fn::Sub"][1] == {"Name": "iris-keys"}
    assert set(grants) == {"InvokeNewVersion", "ReportToCodeDeploy", "ReadApiKey"}
    # Every invocation of every example fits in the hook's own time.
    timeout = int(hook["Environment"]["Variables"]["INVOKE_TIMEOUT_S"])
    assert timeout > resources["Function"]["Properties"]["Timeout"] and hook["Timeout"] >= timeout


def test_cfn_lint_sam_validate_and_checkov_accept_the_hook(bundle):
    report = sam_checkers_accept(bundle, 10)
    assert {c["check_id"] for c in report["results"].get("skipped_checks", [])} <= SKIPS


def test_no_hook_without_a_canary(tmp_path):
    bundle = render_spec(IRIS, "serverless", tmp_path)
    assert "PreTrafficHook" not in yaml.safe_load((bundle / "template.yaml").read_text())["Resources"]
    assert not (bundle / "release").exists()


def test_no_hook_with_jwt_which_it_cannot_sign():
    model = load_spec(IRIS)
    assert pre_traffic(model, 30) is not None
    assert pre_traffic(replace(model, security=replace(model.security, auth="jwt")), 30) is None


def test_deploy_refuses_a_stack_name_the_hooks_name_cannot_hold(bundle):
    long_name = "s" * 50
    result = subprocess.run([str(bundle / "deploy.sh"), "--dry-run", "--stack-name", long_name],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"CodeDeployHook_{long_name} could not be named" in result.stderr
    fits = subprocess.run([str(bundle / "deploy.sh"), "--dry-run", "--stack-name", "s" * 49],
                          capture_output=True, text=True, timeout=60)
    assert fits.returncode == 0, fits.stderr
