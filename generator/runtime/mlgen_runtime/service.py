"""The request-handling core every transport shares: the ASGI server, the predict CLI and the
serverless handlers all call `Service.handle(method, path, headers, body)` and get the same answer.

    service = load_service("app/serving.json")      # loads and verifies the model once
    response = service.handle("POST", "/v2/models/iris/infer", {}, body)
    response.status, response.headers, response.body
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from random import getrandbits
from typing import Callable

import orjson

from . import protocol, tensors
from .auth import OPEN_PATHS, Guard, Refused, log_refusal
from .config import ConfigError, ServingConfig, load_config
from .errors import ModelError, RequestError
from .handlers import RequestContext
from .logs import AccessLog
from .metrics import Metrics
from .pipeline import LocalPipeline, role_for

RUNTIME_VERSION = "1.0.0"
logger = logging.getLogger("mlgen_runtime")
_JSON = {"content-type": "application/json"}
_NOTHING: frozenset[str] = frozenset()  # no output asked for in binary


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class Inference:
    """A validated inference request waiting for its model call."""

    inputs: dict
    shapes: dict[str, list[int]]  # each input's shape as sent (batching concatenates along the first axis)
    context: RequestContext
    encode: Callable[[list[tuple]], object]  # the transport's answer from the outputs for the wire
    requested: list[str] | None  # the outputs asked for, in order; None: every declared one


@dataclass(slots=True)
class Exchange:
    """One request through the service, from arrival to its counted and logged answer."""

    method: str
    path: str
    request_id: str
    started: float
    route: str = "unknown"
    inference: Inference | None = None
    response: Response | None = None
    seconds: float = 0.0  # from arrival to the answer, once recorded


class ModelUnavailable(ConfigError):
    """The model of `model.uri` could not be fetched; the service stays live and not ready."""


def load_service(config_path: str | os.PathLike, stage: str = "all") -> Service:
    """Read serving.json and load the model and handlers (once); raises ConfigError when it cannot."""
    service = Service(load_config(config_path), stage)
    service.load()
    return service


class Service:
    def __init__(self, config: ServingConfig, stage: str = "all") -> None:
        self.config = config
        self.role = role_for(config, stage)
        self.metrics = Metrics(stage, enabled=config.observability.metrics)
        self.access_log = AccessLog(config.observability.log_format, stage, config.model.version)
        self.guard = Guard(config.security, self.role.stage, config.name)
        self.pipeline = None
        self.batcher = None  # runtime.batching: the transports submit inferences to it
        self._declared_outputs = {spec.name: spec for spec in self.role.output_specs or ()}
        self._model_prefix = f"/v2/models/{config.name}"
        self._version_prefix = f"{self._model_prefix}/versions/{config.model.version}"
        self.metrics.model_version = config.model.version
        # Why the service is not ready yet (fetching the model, or why the fetch failed); None once loaded.
        self.not_ready_reason: str | None = "the model is loading"
        self.model_metadata = {
            "name": config.name, "versions": [config.model.version], "platform": config.model.format,
            "inputs": [spec.as_metadata() for spec in self.role.input_specs or ()],
            "outputs": [spec.as_metadata() for spec in self.role.output_specs or ()]}
        self._metadata = orjson.dumps(self.model_metadata)
        # The inference routes by (method, path), looked up before the general routing.
        self._inference_routes = {("POST", f"{prefix}/infer"): ("v2_infer", self._v2_infer)
                                  for prefix in (self._model_prefix, self._version_prefix)}
        self._inference_routes["POST", f"/v1/models/{config.name}:predict"] = ("v1_predict", self._v1_predict)
        self._server_metadata = orjson.dumps({"name": "mlgen", "version": RUNTIME_VERSION,
                                              "extensions": ["binary_tensor_data"]})
        self._plain_paths: frozenset[str] = frozenset()  # where _plain may answer (once loaded)
        self._plain_outputs = protocol.plain_outputs(self.role.output_specs)

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and self.pipeline.ready()

    def load(self) -> None:
        """Import handlers and load the model; handler modules resolve next to serving.json."""
        started = time.perf_counter()
        app_dir = str(self.config.app_dir)
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        if self.config.model.uri and "predict" in self.role.steps and self.role.stage != "gateway":
            self._fetch_model()
        if self.role.stage == "gateway":
            from .gateway import RemotePipeline  # http.client is only needed by a gateway

            self.pipeline = RemotePipeline(self.config, self.role, self.metrics)
        else:
            self.pipeline = LocalPipeline(self.config, self.role)
        batching = self.config.runtime.batching
        if batching is not None and self.role.stage != "gateway":
            from .batching import Batcher

            self.batcher = Batcher(self.pipeline.run, batching.max_batch_size, batching.max_latency_ms,
                                   workers=cores(), metrics=self.metrics)
        if self.batcher is None and self.role.stage != "gateway" and self.role.input_specs:
            self._plain_paths = frozenset(path for (_, path), (route, _) in self._inference_routes.items()
                                          if route == "v2_infer")
        provider = self.pipeline.execution_provider
        if provider is not None:
            self.metrics.execution_provider = provider
            self.model_metadata["parameters"] = {"execution_provider": provider}
            self._metadata = orjson.dumps(self.model_metadata)
        if self.guard.tokens is not None:
            self.guard.tokens.prefetch()
        self.metrics.model_load_seconds = time.perf_counter() - started
        self.metrics.model_ready = 1
        self.not_ready_reason = None
        logger.info("%s model %s loaded as stage %s in %.3fs", self.config.name, self.config.model.version,
                    self.role.stage, self.metrics.model_load_seconds)

    def _fetch_model(self) -> None:
        """Put the model of `model.uri` in the cache (or find it there) and load it from there. A
        failure leaves the service live and not ready, saying why (ModelUnavailable)."""
        from dataclasses import replace

        from .fetch import FetchError, fetch_model

        model = self.config.model
        self.not_ready_reason = f"fetching the model from {model.uri}"
        try:
            path = fetch_model(model.uri, model.sha256, model.max_bytes, model.cache_dir)
        except FetchError as exc:
            self.not_ready_reason = f"the model could not be fetched: {exc}"
            raise ModelUnavailable(self.not_ready_reason) from None
        self.config = replace(self.config, model=replace(model, path=path))

    def close(self) -> None:
        """Stop background work (the batcher) once the transports have drained."""
        if self.batcher is not None:
            self.batcher.close()

    def handle(self, method: str, path: str, headers, body: bytes) -> Response:
        """Answer one request start to finish: route, validate, run the model, encode, count, log.
        Header names in any case."""
        return self.answer(method, path, _lowercase(headers), body)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        """`handle` for a transport whose header names are lower case already (ASGI's are)."""
        return self.exchange(method, path, headers, body).response

    def exchange(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Exchange:
        """`answer`, with the exchange it made (its `seconds` too)."""
        exchange = self._plain(method, path, headers, body) if path in self._plain_paths else None
        if exchange is None:
            exchange = self.begin(method, path, headers, body)
            if exchange.inference is not None:
                self.settle(exchange, self.run)
            self.finish(exchange)
        return exchange

    def _plain(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Exchange | None:
        """The common request in one pass: a V2 JSON inference whose tensors are exactly the declared
        ones, answered by the same parts as begin, settle and finish, with fewer steps between them
        (the runtime's own time per request runs between two model calls, with the CPU's caches
        cold: every step costs about twice its own time; see docs/runtime.md, Performance). None,
        before anything is counted or logged, for any other request, a refused credential included:
        the general path then answers it and words every refusal."""
        if method != "POST" or len(body) > self.config.runtime.max_body_bytes:
            return None
        if self.guard.enabled:
            try:
                self.guard.check(headers)
            except Refused:
                return None
        started = time.perf_counter()
        request = protocol.parse_plain_v2(body, headers, self.role.input_specs)
        if request is None:
            return None
        exchange = Exchange(method, path, valid_request_id(headers.get("x-request-id")), started, "v2_infer")
        self.metrics.request_started()
        answer_id = request.id or exchange.request_id
        try:
            produced = self.pipeline.run(request.inputs, RequestContext(exchange.request_id, {}))
            payload = self._plain_outputs and protocol.encode_plain_v2(
                self.config.name, self.config.model.version, answer_id, produced, self._plain_outputs)
            exchange.response = (Response(200, {"content-type": "application/json"}, payload) if payload else
                                 self._v2_response(answer_id, self._outputs_for_wire(produced, None), _NOTHING))
        except Exception as exc:
            exchange.response = self.error_response(exc, exchange)
        self.finish(exchange)
        return exchange

    def begin(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Exchange:
        """Route and validate a request (header names in lower case). An inference leaves with
        `exchange.inference` set, waiting for its model call (here, on a thread, or in a batch);
        anything else with its response."""
        exchange = Exchange(method, path, valid_request_id(headers.get("x-request-id")), time.perf_counter())
        self.metrics.request_started()
        try:
            if len(body) > self.config.runtime.max_body_bytes:
                raise RequestError(413, f"body of {len(body)} bytes exceeds max_body_bytes "
                                        f"{self.config.runtime.max_body_bytes}")
            bare_path = path.partition("?")[0]
            if self.guard.enabled and bare_path not in OPEN_PATHS:
                self.authenticate(headers, exchange)
            exchange.route, handler = self._inference_routes.get((method, bare_path)) or self._resolve(method, bare_path)
            result = handler(headers, body, exchange.request_id)
        except Exception as exc:
            exchange.response = self.error_response(exc, exchange)
            return exchange
        if isinstance(result, Inference):
            exchange.inference = result
        else:
            exchange.response = result
        return exchange

    def settle(self, exchange: Exchange, run) -> None:
        """Give an exchange its answer: `run(inference)` returns the pipeline's outputs (or raises)."""
        inference = exchange.inference
        try:
            exchange.response = inference.encode(self._outputs_for_wire(run(inference), inference.requested))
        except Exception as exc:
            exchange.response = self.error_response(exc, exchange)

    def run(self, inference: Inference) -> dict:
        """One model call for one request (batching calls the pipeline itself)."""
        return self.pipeline.run(inference.inputs, inference.context)

    def authenticate(self, headers: dict[str, str], exchange: Exchange) -> None:
        """Raise Refused (counted and logged, without the credential) unless the caller may call;
        `headers` have lower-case names."""
        try:
            self.guard.check(headers)
        except Refused as refused:
            self.metrics.auth_failed(refused.reason)
            log_refusal(refused, exchange.request_id, exchange.path)
            raise

    def error_response(self, exc: Exception, exchange: Exchange) -> Response:
        """The answer to a request that failed: its own status for a refusal, 500 otherwise. A 5xx
        body says what happened in words that never change and the request id; exception text,
        paths and internal URLs go to the log under the same id."""
        request_id = exchange.request_id
        if isinstance(exc, RequestError):
            message = exc.message if exc.status < 500 else f"{exc.message} (request id {request_id})"
            return Response(exc.status, {**_JSON, **exc.headers}, protocol.error_body(message))
        if isinstance(exc, ModelError):
            logger.error("%s %s failed: %s", exchange.method, exchange.path, exc, exc_info=exc.__cause__,
                         extra={"request_id": request_id})
            return Response(500, dict(_JSON), protocol.error_body(
                f"the model could not answer this request (request id {request_id}); the service log has the details"))
        # A bug in the runtime itself: log it, answer without internals.
        logger.error("unexpected error handling %s %s", exchange.method, exchange.path, exc_info=exc,
                     extra={"request_id": request_id})
        return Response(500, dict(_JSON), protocol.error_body(f"internal error (request id {request_id}); "
                                                              "the service log has the details"))

    def wrong_port(self, method: str, path: str, headers, admin: bool) -> Response | None:
        """With runtime.admin_port, health and metrics answer only there and inference only on the
        public port: the 404 for a request that came to the other one, else None."""
        if self.config.runtime.admin_port is None or (path.partition("?")[0] in OPEN_PATHS) == admin:
            return None
        where = "runtime.admin_port" if not admin else "the public port"
        return self.refused(method, path, headers, 404, f"no route {path.partition('?')[0]} on this port (it is served on {where})")

    def too_large(self, method: str, path: str, headers, size: int | None) -> Response:
        """The 413 a transport answers when it refuses a body before reading all of it."""
        limit = self.config.runtime.max_body_bytes
        what = f"body of {size} bytes" if size is not None else "body"
        return self.refused(method, path, headers, 413, f"{what} exceeds max_body_bytes {limit}")

    def refused(self, method: str, path: str, headers, status: int, message: str) -> Response:
        """A transport's own refusal (413 too large, 408 body too slow), counted and logged like any answer."""
        exchange = self.open(method, path, valid_request_id(_lowercase(headers).get("x-request-id")))
        exchange.response = Response(status, dict(_JSON), protocol.error_body(message))
        return self.finish(exchange)

    def open(self, method: str, path: str, request_id: str, route: str = "unknown") -> Exchange:
        """Start counting a request that a transport routes itself (gRPC, a refusal)."""
        self.metrics.request_started()
        return Exchange(method, path, request_id, time.perf_counter(), route)

    def finish(self, exchange: Exchange) -> Response:
        """Count and log an answered exchange; the response carries the request id."""
        response = exchange.response
        response.headers["x-request-id"] = exchange.request_id
        self.record(exchange, response.status)
        return response

    def record(self, exchange: Exchange, status: int) -> None:
        """Count and log an answered exchange (`status`: the HTTP status of the same answer)."""
        seconds = exchange.seconds = time.perf_counter() - exchange.started
        self.metrics.request_finished(exchange.route, status, seconds)
        if self.access_log.enabled:
            self.access_log.write(exchange.request_id, exchange.method, exchange.path, status, seconds)

    def _resolve(self, method: str, path: str):
        """(route label for metrics, handler(headers, body, request_id) -> Response) of a request."""
        if path.startswith("/v2/models/"):
            return self._model_route(method, path)
        if path.startswith("/v1/models/"):
            return self._v1_route(method, path)
        simple = _SIMPLE_ROUTES.get(path)
        if simple is None:
            raise RequestError(404, f"no route {path}")
        route, handler = simple
        _require(method, "GET")
        return route, lambda headers, body, request_id: handler(self)

    def _model_route(self, method: str, path: str):
        if path.startswith(self._version_prefix + "/") or path == self._version_prefix:
            rest = path[len(self._version_prefix):]
        elif path.startswith(self._model_prefix + "/") or path == self._model_prefix:
            rest = path[len(self._model_prefix):]
            if rest.startswith("/versions/"):
                raise RequestError(404, f"unknown version of model '{self.config.name}'; serving {self.config.model.version}")
        else:
            raise RequestError(404, f"unknown model in {path}; this service serves '{self.config.name}'")
        if rest == "/infer":
            _require(method, "POST")
            return "v2_infer", self._v2_infer
        _require(method, "GET")
        if rest == "":
            return "v2_model_metadata", lambda headers, body, request_id: Response(200, dict(_JSON), self._metadata)
        if rest == "/ready":
            return "v2_model_ready", lambda headers, body, request_id: self._readiness()
        raise RequestError(404, f"no route {path}")

    def _v1_route(self, method: str, path: str):
        name, _, verb = path[len("/v1/models/"):].partition(":")
        if name != self.config.name:
            raise RequestError(404, f"unknown model '{name}'; this service serves '{self.config.name}'")
        if verb == "predict":
            _require(method, "POST")
            return "v1_predict", self._v1_predict
        if verb:
            raise RequestError(404, f"no route {path}")
        _require(method, "GET")
        return "v1_model", lambda headers, body, request_id: Response(
            200, dict(_JSON), orjson.dumps({"name": self.config.name, "ready": self.ready}))

    def _v2_infer(self, headers, body: bytes, request_id: str) -> Inference:
        self.require_ready()
        request = protocol.parse_v2(body, headers, self.role.input_specs)
        return self.inference(request, request_id,
                              lambda outputs: self._v2_response(request.id or request_id, outputs, request.binary))

    def _v2_response(self, request_id: str, outputs: list[tuple], binary: set[str]) -> Response:
        payload, headers = protocol.encode_v2(self.config.name, self.config.model.version, request_id, outputs, binary)
        return Response(200, headers, payload)

    def _v1_predict(self, headers, body: bytes, request_id: str) -> Inference:
        self.require_ready()
        if not self.role.input_specs:
            raise RequestError(404, "V1 predict needs declared inputs; use the V2 infer route")
        request = protocol.parse_v1(body, self.role.input_specs)
        return self.inference(request, request_id, lambda outputs: Response(200, dict(_JSON), protocol.encode_v1(outputs)))

    def inference(self, request: protocol.InferenceRequest, request_id: str, encode) -> Inference:
        """A validated request waiting for its model call; `encode(outputs)` builds the transport's answer
        from the (name, datatype, shape, values) of the outputs asked for, checked against the spec."""
        requested = request.requested
        if requested is not None and self.role.output_specs is not None:
            declared = self._declared_outputs
            unknown = [name for name in requested if name not in declared]
            if unknown:
                raise RequestError(400, f"unknown output(s) {', '.join(unknown)}; outputs: {', '.join(sorted(declared))}")
        parameters = request.parameters
        if "binary_data_output" in parameters:  # the transport's business, not the handler's
            parameters = {k: v for k, v in parameters.items() if k != "binary_data_output"}
        return Inference(request.inputs, request.shapes, RequestContext(request_id, parameters), encode, requested)

    def _outputs_for_wire(self, produced: dict, requested: list[str] | None) -> list[tuple]:
        """(name, datatype, shape, values) of the outputs asked for, checked against the declared ones."""
        specs, declared = self.role.output_specs, self._declared_outputs
        if specs is None:
            names = requested if requested is not None else list(produced)
        else:
            names = requested if requested is not None else declared
        outputs = []
        for name in names:
            if name not in produced:
                if specs is None:
                    raise RequestError(400, f"unknown output '{name}'; outputs: {', '.join(produced)}")
                raise ModelError(f"the pipeline returned no output '{name}' (it returned {', '.join(produced) or 'none'})")
            spec = declared.get(name)
            try:
                datatype, shape, values = tensors.to_wire(name, produced[name], spec.datatype if spec else None)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"output '{name}' does not fit the spec: {exc}") from None
            if spec is not None and not tensors.shape_matches(spec.shape, shape):
                raise ModelError(f"output '{name}' has shape {shape}, the spec declares {list(spec.shape)}")
            outputs.append((name, datatype, shape, values))
        return outputs

    def require_ready(self) -> None:
        # A gateway does not probe its stages here: the stage call itself answers 503 naming the stage.
        if self.pipeline is None:
            raise RequestError(503, "the model is still loading" if self.not_ready_reason == "the model is loading"
                               else f"not ready: {self.not_ready_reason}")

    def _readiness(self) -> Response:
        ready = self.ready
        if ready or self.not_ready_reason is None:
            return Response(200 if ready else 503, dict(_JSON), orjson.dumps({"ready": ready}))
        return Response(503, dict(_JSON), orjson.dumps({"ready": False, "reason": self.not_ready_reason}))

    def _live(self) -> Response:
        return Response(200, dict(_JSON), b'{"live":true}')

    def _server_info(self) -> Response:
        return Response(200, dict(_JSON), self._server_metadata)

    def _metrics(self) -> Response:
        if not self.metrics.enabled:
            raise RequestError(404, "metrics are disabled (observability.metrics)")
        return Response(200, {"content-type": "text/plain; version=0.0.4; charset=utf-8"}, self.metrics.exposition())


_SIMPLE_ROUTES = {
    "/v2/health/live": ("v2_live", Service._live),
    "/v2/health/ready": ("v2_ready", Service._readiness),
    "/v2": ("v2_server_metadata", Service._server_info),
    "/metrics": ("metrics", Service._metrics),
}


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _require(method: str, allowed: str) -> None:
    if method != allowed:
        raise RequestError(405, f"method {method} not allowed here; use {allowed}")


def _lowercase(headers) -> dict[str, str]:
    return {str(key).lower(): value for key, value in headers.items()} if headers else {}


def valid_request_id(given: str | None) -> str:
    """The caller's request id when it is fit for logs and headers, else a new one."""
    # Accept a caller's id only when it is short and printable: it lands in logs and response headers.
    if given and len(given) <= 128 and given.isprintable():
        return given
    # An id only has to be unique, not unguessable: the PRNG (seeded from os.urandom, and again in
    # a forked child) costs a fraction of a urandom system call per request.
    return f"{getrandbits(128):032x}"
