"""python -m mlgen_runtime serve|predict --config app/serving.json …

serve    start the HTTP server (uvicorn), and gRPC with runtime.grpc_port, for one stage of the pipeline (default: all of it)
predict  answer one request read from stdin (V2 `inputs` or V1 `instances`) without a server
Exit codes: 0 ok, 1 the service could not load or the request failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import ConfigError, load_config
from .logs import configure
from .pipeline import SERVE_STAGES


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"mlgen_runtime: {exc}", file=sys.stderr)
        return 1


def _serve(args) -> int:
    import uvicorn

    from .asgi import ServingApp
    from .service import Service

    config = load_config(args.config)
    observability, runtime = config.observability, config.runtime
    configure(observability.log_format, observability.log_level, config.model.version)
    # proxy_headers off: uvicorn's X-Forwarded-* middleware is one more ASGI layer on every request,
    # and it rewrites only the client address and scheme, which the runtime never reads.
    options = dict(host=args.host, port=args.port or runtime.port, lifespan="on", access_log=False,
                   proxy_headers=False, log_config=None, log_level=observability.log_level,
                   timeout_graceful_shutdown=runtime.shutdown_timeout_s or runtime.timeout_s)
    workers = args.workers or runtime.workers
    # runtime.admin_port: health and metrics listen there, inference on the public port (the entry
    # process only; the app tells them apart by the port a request came to).
    admin_port = (args.admin_port or runtime.admin_port) if args.stage in ("all", "gateway") else None
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        # uvicorn's worker processes import the app by name; hand them the config through the environment.
        os.environ["MLGEN_CONFIG"] = str(os.path.abspath(args.config))
        os.environ["MLGEN_STAGE"] = args.stage
        os.environ["MLGEN_HOST"] = args.host
        if args.grpc_port:
            os.environ["MLGEN_GRPC_PORT"] = str(args.grpc_port)
        if not admin_port:
            uvicorn.run("mlgen_runtime.asgi:app_from_environment", factory=True, workers=workers, **options)
            return 0
        os.environ["MLGEN_ADMIN_PORT"] = str(admin_port)
        server_config = uvicorn.Config("mlgen_runtime.asgi:app_from_environment", factory=True, workers=workers, **options)
        Multiprocess(server_config, sockets=_sockets(server_config, admin_port, args.admin_host)).run()
        return 0
    app = ServingApp(Service(config, args.stage), args.host, args.grpc_port, admin_port)
    server_config = uvicorn.Config(app, **options)
    server = uvicorn.Server(server_config)
    app.stop_server = lambda: setattr(server, "should_exit", True)
    server.run(sockets=_sockets(server_config, admin_port, args.admin_host) if admin_port else None)
    return 1 if app.load_failed else 0


def _sockets(server_config, admin_port: int, admin_host: str | None) -> list:
    """The listening sockets of the public port and the admin port (on `admin_host`, else the
    public port's address: a host keeps unauthenticated health and metrics on loopback)."""
    import copy

    admin = copy.copy(server_config)
    admin.port = admin_port
    admin.host = admin_host or server_config.host
    return [server_config.bind_socket(), admin.bind_socket()]


def _predict(args) -> int:
    import orjson

    from dataclasses import replace

    from .service import Service

    config = load_config(args.config)
    # stdout carries the answer; only warnings and errors go to stderr.
    level = config.observability.log_level if config.observability.log_level in ("warning", "error") else "warning"
    configure(config.observability.log_format, level, config.model.version)
    body = sys.stdin.buffer.read()
    # predict answers whoever runs it on this machine, not a network caller: like reading the model
    # file itself, it asks for no credential (the API keys need not even be delivered to it).
    service = Service(replace(config, security=replace(config.security, auth="none", stage_token=None)), args.stage)
    service.load()
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and "instances" in document:
        path = f"/v1/models/{config.name}:predict"
    else:
        path = f"/v2/models/{config.name}/infer"
    response = service.handle("POST", path, {"content-type": "application/json"}, body)
    stream = sys.stdout if response.status == 200 else sys.stderr
    stream.buffer.write(response.body + b"\n")
    stream.flush()
    return 0 if response.status == 200 else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlgen_runtime", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--config", required=True, help="path to serving.json")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default runtime.port)")
    serve.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default runtime.grpc_port)")
    serve.add_argument("--admin-port", type=int, default=None, help="health and metrics port (default runtime.admin_port)")
    serve.add_argument("--admin-host", default=None, help="address of the admin port (default --host)")
    serve.add_argument("--stage", default="all", choices=SERVE_STAGES, help="part of the pipeline to run")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default runtime.workers)")
    serve.set_defaults(run=_serve)
    predict = commands.add_parser("predict", help="answer one request from stdin")
    predict.add_argument("--config", required=True, help="path to serving.json")
    predict.add_argument("--stage", default="all", choices=SERVE_STAGES, help=argparse.SUPPRESS)
    predict.set_defaults(run=_predict)
    return parser


if __name__ == "__main__":
    sys.exit(main())
