"""The entry stage of a split pipeline: calls the stage services over HTTP (V2 with binary tensors).

Blocking http.client on the service's thread pool, one small pool of keep-alive connections per stage.
A connection error drops that stage's idle connections (after a stage restarts they are all dead) and
retries a bounded number of times, so the gateway recovers by itself when a stage comes back. A
timeout is not retried: the stage may be busy, and retrying would multiply the wait.
Failures name the stage: 503 unreachable or not ready, 504 timed out, 502 broken or failing answer.
The caller reads only that; the stage's URL, the connection error and the stage's own words go to
the log under the request id. With `security.stage_token` the gateway shows each stage the token
they share.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import orjson

from . import protocol
from .auth import STAGE_TOKEN_HEADER, credential
from .config import ConfigError, ServingConfig
from .errors import RequestError
from .pipeline import StageRole

_RETRY_PAUSE_S = 0.05
logger = logging.getLogger("mlgen_runtime")


class StageClient:
    def __init__(self, stage: str, url: str, model_name: str, timeout_s: float, retries: int, metrics,
                 token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"stage URL for {stage} {url!r} must be http://host:port")
        self.stage, self.url, self.timeout_s, self.retries, self.metrics = stage, url, timeout_s, retries, metrics
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._address = (parts.hostname, parts.port)
        prefix = parts.path.rstrip("/")
        self.infer_path = f"{prefix}/v2/models/{model_name}/infer"
        self.ready_path = f"{prefix}/v2/health/ready"
        self._credentials = {STAGE_TOKEN_HEADER: token} if token else {}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def infer(self, tensors: dict, context) -> dict:
        body, headers = protocol.encode_v2_request(tensors, context.parameters, context.request_id)
        headers["x-request-id"] = context.request_id
        headers.update(self._credentials)
        started = time.perf_counter()
        outcome = "error"
        try:
            status, response_headers, payload = self._post(body, headers)
            outcome = str(status)
            if status == 200:
                try:
                    return protocol.parse_v2_response(payload, response_headers)
                except RequestError as exc:
                    outcome = "bad_response"
                    logger.error("stage %s sent an invalid response: %s", self.stage, exc.message,
                                 extra={"request_id": context.request_id})
                    raise RequestError(502, f"stage '{self.stage}' sent an invalid response") from None
            raise self._failure(status, payload, context.request_id)
        except RequestError as exc:
            if outcome == "error":
                outcome = {503: "unavailable", 504: "timeout"}.get(exc.status, "error")
            raise
        finally:
            self.metrics.stage_call(self.stage, outcome, time.perf_counter() - started)

    def ready(self) -> bool:
        try:
            status, _, _ = self._request("GET", self.ready_path, None, dict(self._credentials), timeout_s=min(self.timeout_s, 2.0))
        except RequestError:
            return False
        return status == 200

    def _failure(self, status: int, payload: bytes, request_id: str) -> RequestError:
        message = _error_message(payload)
        if 400 <= status < 500 and status not in (401, 403):
            # the stage refused the request itself: the client should see why
            return RequestError(status, f"stage '{self.stage}': {message}")
        logger.error("stage %s answered %s: %s", self.stage, status, message, extra={"request_id": request_id})
        if status in (401, 403):  # the gateway's own credentials: a deployment mistake, not the caller's
            return RequestError(502, f"stage '{self.stage}' refused the gateway")
        if status == 503:
            return RequestError(503, f"stage '{self.stage}' is not ready")
        if status == 504:
            return RequestError(504, f"stage '{self.stage}' timed out")
        return RequestError(502, f"stage '{self.stage}' failed with {status}")

    def _post(self, body: bytes, headers: dict):
        return self._request("POST", self.infer_path, body, headers, timeout_s=self.timeout_s)

    def _request(self, method: str, path: str, body, headers: dict, timeout_s: float):
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            connection = self._take(timeout_s)
            try:
                connection.request(method, path, body, headers)
                response = connection.getresponse()
                payload = response.read()
            except (socket.timeout, TimeoutError):
                connection.close()
                raise RequestError(504, f"stage '{self.stage}' did not answer within {timeout_s:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self._drop_idle()
                last_error = exc
                if attempt < self.retries:
                    time.sleep(_RETRY_PAUSE_S * attempt)  # first retry at once: usually a stale connection
                continue
            if response.will_close:
                connection.close()
            else:
                self._give_back(connection)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        logger.warning("stage %s is unreachable at %s: %s: %s", self.stage, self.url, type(last_error).__name__, last_error)
        raise RequestError(503, f"stage '{self.stage}' is unreachable")

    def _take(self, timeout_s: float):
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connection_class(*self._address, timeout=timeout_s)
        else:
            connection.timeout = timeout_s
            if connection.sock is not None:
                connection.sock.settimeout(timeout_s)
        return connection

    def _give_back(self, connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class RemotePipeline:
    """The role's steps, each a call to its stage service."""

    execution_provider = None  # the stages compute; they report their own

    def __init__(self, config: ServingConfig, role: StageRole, metrics) -> None:
        urls = config.pipeline.stage_urls
        missing = [step for step in role.steps if not urls.get(step)]
        if missing:
            raise ConfigError(f"gateway needs pipeline.stage_urls (or MLGEN_STAGE_URL_*) for {', '.join(missing)}")
        token = None
        if config.security.stage_token:
            token = credential(config.security.stage_token)
            if not token:
                raise ConfigError(f"security.stage_token: the credential {config.security.stage_token} was not delivered")
        self.clients = [StageClient(step, urls[step], config.name, config.runtime.timeout_s,
                                    config.runtime.stage_retries, metrics, token) for step in role.steps]

    def ready(self) -> bool:
        return all(client.ready() for client in self.clients)

    def run(self, tensors: dict, context) -> dict:
        for client in self.clients:
            tensors = client.infer(tensors, context)
        return tensors


def _error_message(payload: bytes) -> str:
    try:
        document = orjson.loads(payload)
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            return document["error"]
    except orjson.JSONDecodeError:
        pass
    return payload[:200].decode("utf-8", "replace") or "no body"
