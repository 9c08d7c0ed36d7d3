"""A Lambda release's PreTraffic hook (SAM DeploymentPreference.Hooks.PreTraffic): before CodeDeploy
moves any of the `live` alias's traffic, it invokes the new version with the spec's examples in the
event the HTTP API sends, and judges each answer with smoke.judge, the judge of mlgen verify.

Why: the runtime answers a failing handler with an HTTP 5xx and no Lambda function error, so the
`Errors`-based release alarm never sees it. A wrong answer, a 5xx, a function error or no answer
reports `Failed`: CodeDeploy stops the deployment and the alias stays on the version it served.

Copied verbatim into the bundle as release/pre_traffic.py beside smoke.py, examples.json and
event.json (the function's own sample HTTP API event); standard library and boto3 (part of Lambda's
Python runtime) only. Its environment, from template.yaml:
  NEW_VERSION       the ARN of the version CodeDeploy is about to shift to
  INVOKE_TIMEOUT_S  how long one invocation may take (the function's timeout and a cold start)
  API_KEY_HEADER, API_KEY_SECRET, API_KEY_FIELD   security.auth api_key: the header the key goes
                    in, and the Secrets Manager secret (and JSON field) holding the function's key
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

try:
    import smoke  # beside this file in the hook's package
except ImportError:  # in mlgen's source tree
    from mlgen import smoke

HERE = Path(__file__).resolve().parent


def handler(event, context):
    import boto3  # part of the Lambda Python runtime
    from botocore.config import Config

    # One attempt, waiting as long as the function may take: a retried invocation would hide a timeout.
    patient = Config(read_timeout=int(os.environ.get("INVOKE_TIMEOUT_S", "60")), retries={"total_max_attempts": 1})
    return run(event, boto3.client("lambda", config=patient), boto3.client("codedeploy"),
               boto3.client("secretsmanager") if os.environ.get("API_KEY_SECRET") else None)


def run(event: dict, lambda_client, codedeploy, secrets=None) -> dict:
    """Check the new version and tell CodeDeploy, whatever happened: a hook that never reports
    holds the deployment for an hour."""
    status = "Failed"
    try:
        wrong = check(lambda_client, os.environ["NEW_VERSION"], credential_headers(secrets))
        if wrong:
            print(f"the new version fails the release check: {wrong}")
        else:
            status = "Succeeded"
            print("the new version answers every example as expected")
    except Exception as error:  # noqa: BLE001  (a check that cannot run is a failed check)
        print(f"the release check could not run: {error!r}")
    finally:
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"], lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status)
    return {"status": status}


def check(lambda_client, version: str, headers: dict[str, str]) -> str | None:
    """None when the version answers every example right, else what is wrong."""
    examples = json.loads((HERE / "examples.json").read_text(encoding="utf-8"))
    for example in examples:
        reply = lambda_client.invoke(FunctionName=version, InvocationType="RequestResponse",
                                     Payload=json.dumps(http_event(example["request"], headers)).encode())
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            return f"{example['label']}: the function failed ({reply['FunctionError']}): {payload[:300]!r}"
        answer = json.loads(payload)
        body = answer.get("body") or ""
        body = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
        wrong = smoke.judge(example, int(answer.get("statusCode", 0)), body)
        if wrong:
            return wrong
    return None


def http_event(request: dict, headers: dict[str, str]) -> dict:
    """The HTTP API (payload 2.0) event the API would send for this request."""
    event = json.loads((HERE / "event.json").read_text(encoding="utf-8"))
    event["headers"] = {**event["headers"], **headers}
    event["body"] = json.dumps(request)
    event["isBase64Encoded"] = False
    event["requestContext"]["http"]["userAgent"] = "mlgen-pre-traffic"
    return event


def credential_headers(secrets) -> dict[str, str]:
    """The API key's header, read as the function reads it (a secret holding a JSON object gives
    its field, any other secret its whole string); nothing without security.auth api_key."""
    name = os.environ.get("API_KEY_SECRET")
    if not name:
        return {}
    value = secrets.get_secret_value(SecretId=name)["SecretString"]
    try:
        fields = json.loads(value)
    except ValueError:
        fields = None
    field = os.environ.get("API_KEY_FIELD", "")
    key = str(fields[field]) if isinstance(fields, dict) and field in fields else value
    return smoke.credential_headers(os.environ["API_KEY_HEADER"], key)
