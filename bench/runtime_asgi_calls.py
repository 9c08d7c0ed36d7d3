"""The runtime's ASGI app against the bare app, called in-process: what each costs per request with
no server, socket or client in the way (the part of the HTTP path the runtime owns).

    python bench/runtime_asgi_calls.py [--requests 5000] [--rounds 5] [--stub-model [--stub-between WHAT]]
        [--runtime-src DIR] [--against DIR] [--profile]

Both apps get the same 1-row and 64-row iris V2 requests as uvicorn would hand them (scope, one
body message), in rounds that alternate the two, and the medians are compared. The runtime runs as
bench/runtime_throughput.py's "runtime" (access log at info, to /dev/null) and "quiet" (log_level
warning). --stub-model answers every request with zeros instead of the model's prediction, in
both apps, so what is left is the transport's own work. --stub-between model makes the stub run
the real model's predict first and drop its answer (the model's code through the CPU's caches
between two requests, the stub's answer); --stub-between loop spins a plain loop as long instead.
The time of either is measured and left out of both apps' figures, so what is printed is the apps'
own code; with the model in between against the loop, the price of the caches the model's code
evicts (the bare app pays it too, on less code of its own). --runtime-src imports mlgen_runtime from
another folder (a revision's generator/runtime, for before/after). --against DIR also runs the
runtime from DIR ("runtime@against", "quiet@against"), alternated with the others in the same rounds,
so before and after see the same machine load (make DIR with
`git archive REV generator/runtime/mlgen_runtime | tar -x -C DIR`, and pass DIR/generator/runtime).
--profile prints a cProfile of the runtime's requests instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from runtime import apps  # noqa: E402


def request(rows: int) -> tuple[dict, bytes]:
    body = json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [rows, 4],
                                   "data": [[5.1, 3.5, 1.4, 0.2]] * rows}]}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v2/models/iris/infer", "raw_path": b"/v2/models/iris/infer", "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    return scope, body


async def drive(app, scope: dict, body: bytes, count: int) -> float:
    """Seconds for `count` requests through `app`, each answered 200."""
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses = []

    async def receive():
        return message

    async def send(event):
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    started = time.perf_counter()
    for _ in range(count):
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    return elapsed


BETWEEN = None  # --stub-between: what the stub does before it answers
BETWEEN_SECONDS = [0.0]  # the time it took, summed (subtracted from the app's, so its noise is not counted)


def stub_model(rows):
    import numpy as np

    if BETWEEN is not None:
        started = time.perf_counter()
        BETWEEN(rows)
        BETWEEN_SECONDS[0] += time.perf_counter() - started
    return np.zeros(len(rows), dtype=np.int64)


def spin_like(predict, rows) -> callable:
    """A loop that takes about as long as `predict(rows)` and runs the same few bytecodes over."""
    started = time.perf_counter()
    for _ in range(200):
        predict(rows)
    target = (time.perf_counter() - started) / 200
    started = time.perf_counter()
    for _ in range(1_000_000):
        pass
    turns = max(1, int(target / ((time.perf_counter() - started) / 1_000_000)))

    def spin(rows):
        for _ in range(turns):
            pass

    return spin


def import_runtime(source: Path) -> None:
    """Make `import mlgen_runtime` load the package in `source`; apps built from an earlier
    import keep their own modules (the hot path imports nothing lazily)."""
    for name in [name for name in sys.modules if name == "mlgen_runtime" or name.startswith("mlgen_runtime.")]:
        del sys.modules[name]
    sys.path[:] = [entry for entry in sys.path if entry != str(source)]
    sys.path.insert(0, str(source))
    importlib.invalidate_caches()


def runtime_app(app_dir: Path, log_level: str, stub: bool):
    from mlgen_runtime.asgi import ServingApp
    from mlgen_runtime.config import load_config
    from mlgen_runtime.service import Service

    config_path = app_dir / f"serving-{log_level}.json"
    document = json.loads((app_dir / "serving.json").read_text())
    document["observability"]["log_level"] = log_level
    config_path.write_text(json.dumps(document))
    app = ServingApp(Service(load_config(config_path)))
    app.service.load()
    if stub:
        app.service.pipeline.steps = [("predict", lambda inputs, context: {"predict": stub_model(inputs["input-0"])})]
    app.typical_s = 0.0  # as a server that has learnt the model is quick: inline on the loop
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stub-model", action="store_true")
    parser.add_argument("--stub-between", choices=("nothing", "model", "loop"), default="nothing")
    parser.add_argument("--runtime-src", type=Path, default=ROOT / "generator" / "runtime")
    parser.add_argument("--against", type=Path, help="also the runtime in this folder, alternated (before/after)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app_dir = Path(folder)
        apps.sklearn_app(app_dir, apps.iris_estimator()[0], outputs=[apps.IRIS_OUTPUTS[0]])
        os.environ["MODEL"] = str(app_dir / "model" / "model.joblib")
        import runtime_bare_app

        if args.stub_model:
            import numpy as np

            global BETWEEN
            model, rows = runtime_bare_app.MODEL, np.asarray([[5.1, 3.5, 1.4, 0.2]] * 64, dtype=np.float32)
            BETWEEN = {"nothing": None, "model": model.predict, "loop": spin_like(model.predict, rows)}[args.stub_between]
            runtime_bare_app.MODEL = type("Stub", (), {"predict": staticmethod(stub_model)})()

        # The access log goes where a service's stderr would; here to /dev/null, so it costs its write.
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved_stderr = os.dup(2)
        logging.getLogger().setLevel(logging.INFO)
        apps_by_name = {"bare": runtime_bare_app.app}
        if args.against:
            import_runtime(args.against.resolve())
            apps_by_name["runtime@against"] = runtime_app(app_dir, "info", args.stub_model)
            apps_by_name["quiet@against"] = runtime_app(app_dir, "warning", args.stub_model)
        import_runtime(args.runtime_src.resolve())
        apps_by_name["runtime"] = runtime_app(app_dir, "info", args.stub_model)
        apps_by_name["quiet"] = runtime_app(app_dir, "warning", args.stub_model)
        try:  # the loop uvicorn runs the app on (uvloop's loop.time() and tasks are C)
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        requests = {rows: request(rows) for rows in (1, 64)}
        os.dup2(devnull, 2)
        try:
            if args.profile:
                profile = cProfile.Profile()
                for rows, (scope, body) in requests.items():
                    loop.run_until_complete(drive(apps_by_name["runtime"], scope, body, 200))
                    profile.enable()
                    loop.run_until_complete(drive(apps_by_name["runtime"], scope, body, args.requests))
                    profile.disable()
                os.dup2(saved_stderr, 2)
                pstats.Stats(profile).sort_stats("tottime").print_stats(30)
                return
            times: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for rows, (scope, body) in requests.items():
                    for name, app in apps_by_name.items():
                        level = logging.WARNING if name.startswith("quiet") else logging.INFO
                        if logging.getLogger().level != level:
                            logging.getLogger().setLevel(level)
                        BETWEEN_SECONDS[0] = 0.0
                        seconds = loop.run_until_complete(drive(app, scope, body, args.requests))
                        seconds -= BETWEEN_SECONDS[0]  # --stub-between: its own time is not the app's
                        times.setdefault((name, rows), []).append(seconds / args.requests * 1e6)
        finally:
            os.dup2(saved_stderr, 2)
        print(f"µs per request, median of {args.rounds} rounds of {args.requests} (alternated)"
              f"{', model stubbed' if args.stub_model else ''}"
              f"{f' (between requests: {args.stub_between})' if args.stub_model else ''}; mlgen_runtime from {args.runtime_src}")
        print("rows  app              µs/request (min-max)     bare/it   own work µs (minus bare)")
        for rows in (1, 64):
            bare = statistics.median(times[("bare", rows)])
            for name in apps_by_name:
                runs = times[(name, rows)]
                value = statistics.median(runs)
                spread = f"({min(runs):.1f}-{max(runs):.1f})"
                print(f"{rows:4}  {name:16} {value:8.1f} {spread:15} {bare / value:6.2f}   {value - bare:8.1f}")


if __name__ == "__main__":
    main()
