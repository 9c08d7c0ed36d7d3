"""The Open Inference Protocol over gRPC (`runtime.grpc_port`): KServe's GRPCInferenceService and the
standard gRPC health checking protocol, beside HTTP in the same process.

Both transports share the Service: the same validation (protocol.check_input, tensors.from_json and
from_binary), the same model call (batched when `runtime.batching` is on), the same output checks,
metrics and access log. A refusal carries the HTTP answer's message with the matching status code
(400 INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, 413 RESOURCE_EXHAUSTED, 500 INTERNAL); the
metrics count it under the HTTP status the same answer has over HTTP, so one alert rule covers both.

grpcio's own server runs on its threads; the ASGI lifespan starts it and, at shutdown, stops it
with the same grace as HTTP's drain (`runtime.shutdown_timeout_s`): calls in flight finish, new ones
are refused.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import grpc_predict_v2_pb2 as pb
from . import grpc_tensors, protocol
from .errors import RequestError
from .service import RUNTIME_VERSION, Response, Service, cores, valid_request_id

logger = logging.getLogger("mlgen_runtime")
SERVICE_NAME = "inference.GRPCInferenceService"
# Health RPCs answer without credentials, like HTTP's /v2/health/* (and grpc.health.v1 always does).
OPEN_RPCS = frozenset({"ServerLive", "ServerReady"})
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED,
          408: grpc.StatusCode.DEADLINE_EXCEEDED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          429: grpc.StatusCode.RESOURCE_EXHAUSTED, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 409: grpc.StatusCode.ABORTED, 500: grpc.StatusCode.INTERNAL,
          502: grpc.StatusCode.UNAVAILABLE, 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}
# Threads answering calls with batching: most of them wait for their batch, so there must be at
# least as many as the clients a batch should gather.
_BATCHING_THREADS = 64


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC status of an answer that has `http_status` over HTTP."""
    return _CODES.get(http_status, grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.UNKNOWN)


class GrpcTransport:
    def __init__(self, service: Service, host: str, port: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.service = service
        limit = service.config.runtime.max_body_bytes
        # grpcio refuses a message over its own limit with its own words; up to twice the body limit
        # the call reaches the handler, which refuses it the way HTTP does.
        self.server = grpc.server(ThreadPoolExecutor(threads(service), thread_name_prefix="mlgen-grpc"),
                                  options=[("grpc.max_receive_message_length", 2 * limit),
                                           ("grpc.max_send_message_length", -1)])
        raw = lambda handler: grpc.unary_unary_rpc_method_handler(handler)  # bytes in, message out  # noqa: E731
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {
            "ServerLive": raw(self.server_live), "ServerReady": raw(self.server_ready),
            "ModelReady": raw(self.model_ready), "ServerMetadata": raw(self.server_metadata),
            "ModelMetadata": raw(self.model_metadata), "ModelInfer": raw(self.model_infer)}),))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.set_serving(False)
        self.address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if self.server.add_insecure_port(self.address) == 0:
            raise OSError(f"cannot listen for gRPC on {self.address}")

    def start(self) -> None:
        self.server.start()
        logger.info("gRPC (Open Inference Protocol) on %s", self.address)

    def set_serving(self, serving: bool) -> None:
        """The health service's answer, for the whole server ("") and for the inference service."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def stop(self, grace_s: float):
        """Refuse new calls, let calls in flight finish for up to grace_s; an event set once stopped."""
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace_s)

    # --- the RPCs: each counted and logged as one request of the service ---

    def server_live(self, raw: bytes, context) -> bytes:
        return self._call("grpc_server_live", "ServerLive", context,
                          lambda exchange: pb.ServerLiveResponse(live=True))

    def server_ready(self, raw: bytes, context) -> bytes:
        return self._call("grpc_server_ready", "ServerReady", context,
                          lambda exchange: pb.ServerReadyResponse(ready=self.service.ready))

    def model_ready(self, raw: bytes, context) -> bytes:
        def answer(exchange):
            request = pb.ModelReadyRequest.FromString(raw)
            self._require_model(request.name, request.version)
            return pb.ModelReadyResponse(ready=self.service.ready)

        return self._call("grpc_model_ready", "ModelReady", context, answer)

    def server_metadata(self, raw: bytes, context) -> bytes:
        return self._call("grpc_server_metadata", "ServerMetadata", context, lambda exchange: pb.ServerMetadataResponse(
            name="mlgen", version=RUNTIME_VERSION, extensions=["binary_tensor_data"]))

    def model_metadata(self, raw: bytes, context) -> bytes:
        def answer(exchange):
            request = pb.ModelMetadataRequest.FromString(raw)
            self._require_model(request.name, request.version)
            metadata = self.service.model_metadata
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
                inputs=[tensor(**item) for item in metadata["inputs"]],
                outputs=[tensor(**item) for item in metadata["outputs"]])

        return self._call("grpc_model_metadata", "ModelMetadata", context, answer)

    def model_infer(self, raw: bytes, context) -> bytes:
        service = self.service

        def answer(exchange):
            limit = service.config.runtime.max_body_bytes
            if len(raw) > limit:
                raise RequestError(413, f"body of {len(raw)} bytes exceeds max_body_bytes {limit}")
            message = _parse(raw)
            self._require_model(message.model_name, message.model_version)
            service.require_ready()
            request = grpc_tensors.parse_request(message, service.role.input_specs)
            encode = lambda outputs: grpc_tensors.encode_response(  # noqa: E731
                service.config.name, service.config.version, message.id, outputs, raw=bool(message.raw_input_contents))
            exchange.inference = service.inference(request, exchange.request_id, encode)
            batcher = service.batcher
            run = service.run if batcher is None else (lambda inference: batcher.submit(inference).result())
            service.settle(exchange, run)
            if isinstance(exchange.response, Response):  # the error HTTP would answer
                raise _Refused(exchange.response)
            return exchange.response

        return self._call("grpc_infer", "ModelInfer", context, answer)

    def _call(self, route: str, rpc: str, context, answer) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        exchange = self.service.open("GRPC", f"/{SERVICE_NAME}/{rpc}", valid_request_id(metadata.get("x-request-id")), route)
        try:
            if self.service.guard.enabled and rpc not in OPEN_RPCS:
                self.service.authenticate(metadata, exchange)
            reply = answer(exchange)
        except _Refused as refused:
            return self._refuse(exchange, context, refused.status, refused.message)
        except RequestError as exc:
            return self._refuse(exchange, context, exc.status, exc.message, exc.headers)
        except Exception as exc:  # a bug: the same 500 (and log line) HTTP would give
            response = self.service.error_response(exc, exchange)
            return self._refuse(exchange, context, response.status, protocol.error_message(response.body))
        self.service.record(exchange, 200)
        context.set_trailing_metadata((("x-request-id", exchange.request_id),))
        return reply.SerializeToString()

    def _refuse(self, exchange, context, status: int, message: str, headers: dict | None = None) -> bytes:
        self.service.record(exchange, status)
        context.set_trailing_metadata((("x-request-id", exchange.request_id), *(headers or {}).items()))
        context.abort(status_code(status), message)

    def _require_model(self, name: str, version: str) -> None:
        config = self.service.config
        if name != config.name:
            raise RequestError(404, f"unknown model '{name}'; this service serves '{config.name}'")
        if version and version != config.version:
            raise RequestError(404, f"unknown version of model '{config.name}'; serving {config.version}")


def threads(service: Service) -> int:
    """Threads answering calls. Without batching each runs its call's model on it, CPU-bound: two
    per core keep the cores busy while a call is read or written; each thread more only queues on the
    GIL (iris, 32 clients: 64 threads answered 0.7 times the calls 4 did, bench/runtime_grpc.py).
    A gateway's threads wait on its stages, so it gets as many as its HTTP pool."""
    if service.role.stage == "gateway":
        return min(32, cores() * 8)
    if service.config.runtime.batching is not None:
        return _BATCHING_THREADS
    return cores() * 2


class _Refused(Exception):
    """An inference the service answered with an error (its HTTP-shaped response)."""

    def __init__(self, response) -> None:
        super().__init__()
        self.status = response.status
        self.message = protocol.error_message(response.body)


def _parse(raw: bytes) -> pb.ModelInferRequest:
    try:
        return pb.ModelInferRequest.FromString(raw)
    except Exception:  # google.protobuf.message.DecodeError
        raise RequestError(400, "the request is not a ModelInferRequest message") from None
