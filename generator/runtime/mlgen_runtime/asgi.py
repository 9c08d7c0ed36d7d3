"""The HTTP transport: a plain ASGI application for uvicorn around the shared Service core.

The body is refused with 413 before it is read whole: by Content-Length up front, and by counting
while it streams in (chunked uploads have no Content-Length). Inference that takes a while, and
anything that may block (a gateway calls its stages), runs on a thread pool so the event loop keeps
accepting and answering health checks while a model computes. Inference that is usually quicker than
INLINE_BELOW_S runs on the event loop itself: for a small model the hop to a thread and back costs
more than the prediction (iris, 1 row: 4,400 req/s and p99 40 ms through the pool, 5,500 req/s and
p99 8.5 ms inline). The model loads on the pool after startup, so the server is live (and says
"not ready", 503) while a large model loads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from time import monotonic
from concurrent.futures import ThreadPoolExecutor

from .auth import OPEN_PATHS
from .config import ConfigError, load_config
from .service import ModelUnavailable, Response, Service, cores

logger = logging.getLogger("mlgen_runtime")

INLINE_BELOW_S = 0.002  # a request that blocks the loop this long delays the others about as much
_SMOOTHING = 0.1  # weight of the newest request in the running estimate of how long one takes


class ServingApp:
    def __init__(self, service: Service, grpc_host: str = "0.0.0.0", grpc_port: int | None = None,
                 admin_port: int | None = None) -> None:
        self.service = service
        # Health and metrics on a port of their own (the entry process only: stages are internal).
        entry = service.role.stage in ("all", "gateway")
        self.admin_port = (admin_port or service.config.runtime.admin_port) if entry else None
        # gRPC listens beside HTTP in the entry process (the whole pipeline, or the gateway); stage
        # services talk HTTP to their gateway.
        if grpc_port is None:
            grpc_port = service.config.runtime.grpc_port
        self.grpc_address = (grpc_host, grpc_port) if grpc_port and service.role.stage in ("all", "gateway") else None
        self.grpc = None
        self.max_body_bytes = service.config.runtime.max_body_bytes
        self.body_timeout_s = service.config.runtime.timeout_s
        self.body_deadlines = BodyDeadlines(self.body_timeout_s)
        self.executor = ThreadPoolExecutor(max_workers=_pool_size(service), thread_name_prefix="mlgen")
        self.gets_block = service.role.stage == "gateway"
        # Running estimate of one inference's duration. It starts at the threshold, so the first
        # requests go to the pool (a slow model never blocks the loop while it is being learnt).
        self.typical_s = INLINE_BELOW_S
        self.load_failed = False
        # How to stop the server when the model cannot load; `serve` points this at uvicorn's exit
        # flag so the process exits 1. Worker processes of `workers` > 1 signal themselves instead.
        self.stop_server = lambda: os.kill(os.getpid(), signal.SIGTERM)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        # One coroutine per request, the app itself: each await of another one costs a frame and
        # an object, and this path runs between two model calls, with the CPU's caches cold.
        service, method, path = self.service, scope["method"], scope["path"]
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        response = self._refused_before_body(scope, method, path, headers)
        if response is None:
            # A body that trickles in would hold a connection (and its memory) forever: it must
            # arrive within runtime.timeout_s, like the answer.
            try:
                body = await self.body_deadlines.read(receive, self.max_body_bytes)
            except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
                body = TIMED_OUT
            if body is None:
                return  # the client went away
            if body is TOO_LARGE:
                response = service.too_large(method, path, headers, None)
            elif body is TIMED_OUT:
                response = service.refused(method, path, headers, 408,
                                           f"the request body did not arrive within {self.body_timeout_s:g} s")
            elif self.gets_block:  # a gateway waits on its stages, whatever the method
                response = await self._offload(method, path, headers, body)
            elif service.batcher is not None and method == "POST":
                response = await self._batched(method, path, headers, body)
            elif method == "GET":
                response = service.answer(method, path, headers, body)
            elif self.typical_s < INLINE_BELOW_S:
                response = self._timed(method, path, headers, body)
            else:
                response = await self._offload(method, path, headers, body, timed=True)
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(key.encode("latin-1"), value.encode("latin-1")) for key, value in response.headers.items()]})
        await send({"type": "http.response.body", "body": response.body})

    def _refused_before_body(self, scope, method: str, path: str, headers: dict[str, str]) -> Response | None:
        """The answer to a request refused before its body is read, else None."""
        service = self.service
        if self.admin_port is not None:
            wrong = service.wrong_port(method, path, headers, admin=scope.get("server", ("", 0))[1] == self.admin_port)
            if wrong is not None:
                return wrong
        if service.guard.enabled and service.guard.header not in headers and path not in OPEN_PATHS:
            # No credential at all: refused before its body is read (counted and logged like any refusal).
            return service.answer(method, path, headers, b"")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return service.too_large(method, path, headers, int(declared))
        return None

    async def _batched(self, method, path, headers, body) -> Response:
        service = self.service
        exchange = service.begin(method, path, headers, body)
        if exchange.inference is not None:
            future = service.batcher.submit(exchange.inference)
            try:
                await asyncio.wrap_future(future)
            except Exception:
                pass  # settle turns the request's own failure into its answer
            service.settle(exchange, lambda inference: future.result())
        return service.finish(exchange)

    def _timed(self, method, path, headers, body) -> Response:
        exchange = self.service.exchange(method, path, headers, body)
        # The request's own duration, as the metrics counted it (no timer of its own).
        self.typical_s += _SMOOTHING * (exchange.seconds - self.typical_s)
        return exchange.response

    async def _offload(self, method, path, headers, body, timed: bool = False) -> Response:
        work = self._timed if timed else self.service.answer
        return await asyncio.get_running_loop().run_in_executor(self.executor, work, method, path, headers, body)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.grpc_address is not None:
                    try:
                        self._start_grpc()
                    except OSError as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                asyncio.get_running_loop().run_in_executor(self.executor, self._load)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.grpc is not None:
                    # HTTP has drained; gRPC calls in flight get the same grace.
                    grace = self.service.config.runtime.shutdown_timeout_s or self.service.config.runtime.timeout_s
                    stopped = self.grpc.stop(grace)
                    await asyncio.get_running_loop().run_in_executor(None, stopped.wait, grace + 5)
                self.service.close()
                self.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_grpc(self) -> None:
        from .grpc_server import GrpcTransport  # grpcio is imported only by services that serve gRPC

        self.grpc = GrpcTransport(self.service, *self.grpc_address)
        self.grpc.start()

    def _load(self) -> None:
        try:
            self.service.load()
            if self.grpc is not None:
                self.grpc.set_serving(True)
        except ModelUnavailable as exc:
            # The model's store said no (or nothing): the process stays live and says why it is not
            # ready, so the cause is visible on the readiness probe, not only in a restart loop.
            logger.error("%s", exc)
        except ConfigError as exc:
            self._fail(f"cannot load the service: {exc}", traceback=False)
        except Exception:
            self._fail("cannot load the service", traceback=True)

    def _fail(self, message: str, traceback: bool) -> None:
        # The process must not linger unready forever: stop it, and let the supervisor (systemd,
        # Kubernetes, uvicorn's worker manager) restart it or show the failure.
        logger.error(message, exc_info=traceback)
        self.load_failed = True
        self.stop_server()


TOO_LARGE = object()  # BodyDeadlines.read's answer for a body past the limit
TIMED_OUT = object()  # a body that did not arrive in time


class BodyDeadlines:
    """Request bodies must arrive within `seconds`: one timer ticks (every quarter of the limit, at
    most every second) and cancels each read past its deadline, at most one tick late.

    A read is not registered anywhere: it only notes in a local variable when it started waiting,
    and the tick finds the reads among the loop's tasks (each task's coroutine awaits this read).
    Keeping a registry (a dict of reading tasks, written and cleared per request) cost ~2 µs a
    request once the model's code had run through the CPU's caches; asyncio.timeout or wait_for
    would arm and disarm a timer per request, ~8 µs. Either is more than the rest of the transport's
    own work on a request."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick_s = min(1.0, seconds / 4)
        self.expired: set[asyncio.Task] = set()  # tasks cancelled by the tick, until their read sees it
        self.ticking = False

    async def read(self, receive, limit: int):
        """The request body from ASGI `receive`: its bytes; None when the client went away; TOO_LARGE
        once it grows past `limit` bytes; asyncio.TimeoutError once the deadline has passed."""
        waiting_since = monotonic()  # noqa: F841 (read by _tick, from this coroutine's frame)
        if not self.ticking:
            self.ticking = True
            loop = asyncio.get_running_loop()
            loop.call_later(self.tick_s, self._tick, loop)
        try:
            message = await receive()
            body = message.get("body", b"")
            if not message.get("more_body", False):  # the whole body in one message: the usual case
                return None if message["type"] == "http.disconnect" else (TOO_LARGE if len(body) > limit else body)
            chunks, size = [], 0
            while True:
                if message["type"] == "http.disconnect":
                    return None
                size += len(body)
                if size > limit:
                    return TOO_LARGE
                chunks.append(body)
                if not message.get("more_body", False):
                    return b"".join(chunks)
                message = await receive()
                body = message.get("body", b"")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task not in self.expired:
                raise  # cancelled by the server (the client went away, shutdown)
            self.expired.discard(task)
            if hasattr(task, "uncancel"):  # Python 3.11+: this cancellation is handled
                task.uncancel()
            raise asyncio.TimeoutError from None

    def _tick(self, loop) -> None:
        deadline = monotonic() - self.seconds
        for task in asyncio.all_tasks(loop):
            since = _waiting_since(task)
            if since is not None and since <= deadline and task not in self.expired:
                self.expired.add(task)
                task.cancel()  # lands in read(): the task waits there
        loop.call_later(self.tick_s, self._tick, loop)


def _waiting_since(task: asyncio.Task) -> float | None:
    """When `task`'s body read started waiting, if the task is suspended in BodyDeadlines.read."""
    awaiting = task.get_coro()
    while awaiting is not None and getattr(awaiting, "cr_code", None) is not _READ_CODE:
        awaiting = getattr(awaiting, "cr_await", None)
    if awaiting is None or awaiting.cr_frame is None:
        return None
    return awaiting.cr_frame.f_locals.get("waiting_since")


_READ_CODE = BodyDeadlines.read.__code__


def _pool_size(service: Service) -> int:
    # CPU-bound predict: one thread per core; more only queue on the GIL and stretch tail latency.
    # A gateway's threads mostly wait on its stages, so it gets more.
    return min(32, cores() * 8) if service.role.stage == "gateway" else cores()


def create_app(config_path: str, stage: str = "all") -> ServingApp:
    return ServingApp(Service(load_config(config_path), stage))


def app_from_environment() -> ServingApp:
    """Factory for uvicorn's worker processes (`workers` > 1), which cannot receive objects."""
    from .logs import configure

    service = Service(load_config(os.environ["MLGEN_CONFIG"]), os.environ.get("MLGEN_STAGE", "all"))
    configure(service.config.observability.log_format, service.config.observability.log_level, service.config.model.version)
    grpc_port, admin_port = os.environ.get("MLGEN_GRPC_PORT"), os.environ.get("MLGEN_ADMIN_PORT")
    return ServingApp(service, os.environ.get("MLGEN_HOST", "0.0.0.0"), int(grpc_port) if grpc_port else None,
                      int(admin_port) if admin_port else None)
