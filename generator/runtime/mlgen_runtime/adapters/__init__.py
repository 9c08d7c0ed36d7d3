"""Function platform adapters: each turns its platform's request into the runtime's one call,
`Service.handle(method, path, headers, body)`, and the Response back. A bundle's entry point
(handler.py, main.py, function_app.py) is a few lines that call one of these:

    handler = aws_lambda.lambda_handler(APP / "serving.json")   # AWS Lambda
    serve = gcp.http_function(APP / "serving.json", "serve")    # Google Cloud Functions
    app = azure.function_app(APP / "serving.json", public=False) # Azure Functions

Each adapter imports its platform's library itself, so the runtime never needs one. All of them
refuse a body over serving.json's max_body_bytes with the runtime's JSON 413 before reading it whole,
and all of them start the service through FunctionInstance: a model named by `model.uri` is fetched
on the cold start, before the first request is answered.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading

from ..config import load_config
from ..service import ModelUnavailable, Response, Service

logger = logging.getLogger("mlgen_runtime")


def platform_cache() -> str:
    """Where a function keeps a fetched model: the platform's writable temporary folder (Lambda's
    and Cloud Functions' /tmp, the Azure Functions host's temp), since the deployed code folder is
    read-only there. A warm instance finds the model already there; MLGEN_MODEL_CACHE overrides."""
    return os.environ.get("MLGEN_MODEL_CACHE") or os.path.join(tempfile.gettempdir(), "mlgen-model-cache")


class FunctionInstance:
    """The service of one function instance. It loads at import, which the platform runs on the cold
    start before handing the instance a request, so the first invocation waits for a fetched model
    instead of being answered 503. When the store cannot give the model (denied, missing, down),
    the instance stays up and answers 503 with the reason; each later invocation tries the load
    again before answering, so a grant that lands or a store that comes back heals the instance
    without a redeploy. A service without `model.uri` that fails to load raises, as before."""

    def __init__(self, config_path, *, fetch_in_background: bool = False) -> None:
        self.service = Service(load_config(config_path, {**os.environ, "MLGEN_MODEL_CACHE": platform_cache()}))
        self._lock = threading.Lock()  # Cloud Functions and Azure run requests on threads
        if fetch_in_background and self.service.config.model.uri:
            # The import returns at once and the fetch runs beside it; the lock, held until that
            # first load ends, makes the first invocation wait for it.
            self._lock.acquire()
            threading.Thread(target=self._first_load, name="mlgen-model-fetch", daemon=True).start()
        else:
            self._load()

    def ready_service(self) -> Service:
        """The service to answer this invocation, after one more try at loading it if it is not ready."""
        if self.service.pipeline is None:
            with self._lock:
                if self.service.pipeline is None:
                    self._load()
        return self.service

    def _first_load(self) -> None:
        try:
            self._load()
        finally:
            self._lock.release()

    def _load(self) -> None:
        try:
            self.service.load()
        except ModelUnavailable as exc:
            logger.error("%s", exc)


def declared_size(headers) -> int | None:
    """The Content-Length the caller declared; None when it is absent or not a byte count."""
    for key, value in headers.items():
        if str(key).lower() == "content-length":
            value = str(value).strip()
            return int(value) if value.isdigit() else None
    return None


def refuse_oversized(service: Service, method: str, path: str, headers, size: int | None) -> Response | None:
    """The 413 when a body of `size` bytes would pass max_body_bytes; None when it may be read."""
    if size is not None and size > service.config.runtime.max_body_bytes:
        return service.too_large(method, path, headers, size)
    return None
