"""AWS Lambda: API Gateway HTTP API (payload 2.0) and REST API (1.0) proxy events, and direct
invocations (`aws lambda invoke`, Step Functions) whose event is an inference request
({"inputs": [...]}). The model loads once per container, when handler.py is imported (Lambda's
init phase; a model fetched from `model.uri` lands in /tmp, which a warm container keeps)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import time

from ..service import Response, Service
from . import FunctionInstance, refuse_oversized

_TEXT_TYPES = ("application/json", "text/")
# A 5xx the runtime answers itself is no Lambda function error, so Lambda's Errors metric never
# counts it: each one is also a CloudWatch embedded-metric-format line on stdout, which CloudWatch
# Logs turns into this metric per function and version (a release's alarm reads the new version's).
METRIC_NAMESPACE = "mlgen/Lambda"
SERVER_ERRORS = "ServerErrors"


def lambda_handler(config_path):
    """The `handler(event, context)` Lambda calls: secrets first (handlers may read them at import),
    then the model."""
    load_secrets()
    return LambdaFunction(FunctionInstance(config_path)).handle


def load_secrets() -> None:
    """Secrets Manager references (MLGEN_AWS_SECRETS, a JSON list of {name, secret, key}) become
    environment variables; the SAM template grants GetSecretValue on exactly these secrets. A
    secret holding a JSON object gives its `key` field, any other secret its whole string."""
    wanted = json.loads(os.environ.get("MLGEN_AWS_SECRETS", "[]"))
    if not wanted:
        return
    import boto3  # part of the Lambda Python runtime

    client = boto3.client("secretsmanager")
    for ref in wanted:
        value = client.get_secret_value(SecretId=ref["secret"])["SecretString"]
        try:
            fields = json.loads(value)
        except ValueError:
            fields = None
        os.environ[ref["name"]] = str(fields[ref["key"]]) if isinstance(fields, dict) and ref["key"] in fields else value


class LambdaFunction:
    def __init__(self, instance: FunctionInstance) -> None:
        self.instance = instance
        self.infer_path = f"/v2/models/{instance.service.config.name}/infer"

    def handle(self, event, context=None) -> dict:
        service = self.instance.ready_service()
        if isinstance(event, dict) and ("httpMethod" in event or "requestContext" in event):
            reply = self._http(service, event)
        else:
            reply = self._direct(service, event)
        if reply["statusCode"] >= 500:
            count_server_error(reply["statusCode"])
        return reply

    def _http(self, service: Service, event: dict) -> dict:
        method, path = _method_and_path(event)
        headers = {key: value for key, value in (event.get("headers") or {}).items() if value is not None}
        body = event.get("body") or ""
        encoded = bool(event.get("isBase64Encoded"))
        refused = refuse_oversized(service, method, path, headers, _size_before_decoding(body, encoded))
        if refused is not None:
            return _proxy_response(refused)
        if encoded:
            try:
                body = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                return _proxy_response(service.refused(method, path, headers, 400, "the request body is not valid base64"))
        elif isinstance(body, str):
            body = body.encode("utf-8")
        return _proxy_response(service.handle(method, path, headers, body))

    def _direct(self, service: Service, event) -> dict:
        """The answer is {"statusCode": ..., "body": <the JSON response>}."""
        if not isinstance(event, dict) or "inputs" not in event:
            return {"statusCode": 400, "body": {"error": "a direct invocation's event must be an inference request with \"inputs\""}}
        response = service.handle("POST", self.infer_path, {"content-type": "application/json"},
                                  json.dumps(event).encode("utf-8"))
        return {"statusCode": response.status, "body": json.loads(response.body)}


def count_server_error(status: int, environ=os.environ, out=None) -> None:
    """One embedded-metric-format line: ServerErrors 1 for this function and version. Only on
    Lambda (its variables name both); the line is written whole, so it stays one log event."""
    name, version = environ.get("AWS_LAMBDA_FUNCTION_NAME"), environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    if not name or not version:
        return
    line = {"_aws": {"Timestamp": int(time.time() * 1000),
                     "CloudWatchMetrics": [{"Namespace": METRIC_NAMESPACE, "Dimensions": [["FunctionName", "Version"]],
                                            "Metrics": [{"Name": SERVER_ERRORS, "Unit": "Count"}]}]},
            "FunctionName": name, "Version": version, SERVER_ERRORS: 1, "status": status}
    out = out or sys.stdout
    out.write(json.dumps(line) + "\n")
    out.flush()


def _method_and_path(event: dict) -> tuple[str, str]:
    if event.get("version") == "2.0":
        http = event["requestContext"]["http"]
        path = event.get("rawPath") or http.get("path") or "/"
        stage = event["requestContext"].get("stage")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1:]
        return http["method"], path
    return event["httpMethod"], event.get("path") or "/"


def _size_before_decoding(body: str, base64_encoded: bool) -> int:
    """The body's size in bytes, from its length alone: exact for padded base64; for text a lower
    bound (UTF-8 takes at least a byte a character), the runtime counts the encoded bytes."""
    if base64_encoded:
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(body)


def _proxy_response(response: Response) -> dict:
    if response.headers.get("content-type", "").startswith(_TEXT_TYPES):
        return {"statusCode": response.status, "headers": response.headers,
                "body": response.body.decode("utf-8"), "isBase64Encoded": False}
    return {"statusCode": response.status, "headers": response.headers,
            "body": base64.b64encode(response.body).decode("ascii"), "isBase64Encoded": True}
