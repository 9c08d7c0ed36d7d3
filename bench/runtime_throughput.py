"""Throughput and cold start of the mlgen runtime, side by side with a bare ASGI app and MLServer.

    python bench/runtime_throughput.py [--duration 5] [--rounds 3] [--connections 32] [--granian]
        [--against REV] [--mlserver /tmp/mlserver-venv/bin/mlserver] [--no-cold-start]

Serves one scikit-learn iris model several ways on 127.0.0.1 (the runtime with its access log, the
runtime with log_level warning, a bare ASGI app, MLServer; with --granian the quiet runtime and the
bare app on granian too; with --against the runtime of a git revision), all at once, and loads each
in turn with wrk (1-row and 64-row V2 infer requests), round after round; it prints the medians.
Then measures cold start (a fresh process: import + load + first prediction through the in-process
API) for sklearn and ONNX, against bare onnxruntime.
MLServer lives in its own venv: python -m venv /tmp/mlserver-venv &&
/tmp/mlserver-venv/bin/pip install mlserver mlserver-sklearn 'uvloop<0.22' scikit-learn==<same as here>.
Not a test: it prints figures, and ratios against the baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_SRC = ROOT / "generator" / "runtime"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(RUNTIME_SRC))

from runtime import apps  # noqa: E402  (the test suite's bundle builders)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready within {deadline_s}s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wrk(url: str, body_file: Path, duration: int, connections: int) -> dict:
    script = ROOT / "bench" / "runtime_post.lua"
    output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
                            capture_output=True, text=True, env={**os.environ, "WRK_BODY_FILE": str(body_file)},
                            timeout=duration + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rps, "p50_ms": _latency(output, "50"), "p99_ms": _latency(output, "99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def serve_runtime(app_dir: Path, port: int, source: Path = RUNTIME_SRC) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlgen_runtime", "serve", "--config", str(app_dir / "serving.json"),
                             "--host", "127.0.0.1", "--port", str(port)], cwd=app_dir,
                            env={**os.environ, "PYTHONPATH": str(source)}, stderr=subprocess.DEVNULL)


def serve_bare(app_dir: Path, port: int) -> subprocess.Popen:
    # The runtime's own uvicorn settings: no access log, no proxy-headers middleware.
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "runtime_bare_app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log", "--no-proxy-headers", "--log-level", "warning"],
                            cwd=ROOT / "bench", env={**os.environ, "MODEL": str(app_dir / "model" / "model.joblib")})


def serve_granian(app: str, port: int, env: dict, cwd: Path, factory: bool = False) -> subprocess.Popen:
    """An ASGI app on granian (Rust HTTP server), one worker, uvloop, no access log."""
    return subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                             "--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
                             *(["--factory"] if factory else []), app], cwd=cwd, env={**os.environ, **env})


def serve_runtime_granian(app_dir: Path, port: int) -> subprocess.Popen:
    return serve_granian("mlgen_runtime.asgi:app_from_environment", port, cwd=app_dir, factory=True, env={
        "PYTHONPATH": str(RUNTIME_SRC), "MLGEN_CONFIG": str(app_dir / "serving.json"), "MLGEN_HOST": "127.0.0.1"})


def serve_mlserver(app_dir: Path, port: int, mlserver: str, model_settings: dict | None = None) -> subprocess.Popen:
    folder = app_dir / "mlserver"
    (folder / "iris").mkdir(parents=True, exist_ok=True)
    shutil.copy(app_dir / "model" / "model.joblib", folder / "iris" / "model.joblib")
    (folder / "settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                      "metrics_port": free_port(), "host": "127.0.0.1"}))
    (folder / "iris" / "model-settings.json").write_text(json.dumps({
        "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1.0.0"}, **(model_settings or {})}))
    return subprocess.Popen([mlserver, "start", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def runtime_at(revision: str, folder: Path) -> Path:
    """The runtime sources of a git revision, to serve beside this tree's (before/after in one run)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "generator/runtime/mlgen_runtime"],
                             capture_output=True, check=True).stdout
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "generator" / "runtime"


def throughput(app_dir: Path, args) -> dict:
    bodies = {}
    for rows in (1, 64):
        path = app_dir / f"body-{rows}.json"
        data = [[5.1, 3.5, 1.4, 0.2]] * rows
        path.write_text(json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [rows, 4],
                                                "data": data}]}))
        bodies[rows] = path
    # "runtime" as configured by default (one access-log line per request at log_level info);
    # "quiet" with log_level warning: the same work as the bare app, which logs nothing.
    quiet_dir = app_dir.parent / "quiet"
    shutil.copytree(app_dir, quiet_dir, dirs_exist_ok=True)
    config = json.loads((quiet_dir / "serving.json").read_text())
    config["observability"]["log_level"] = "warning"
    (quiet_dir / "serving.json").write_text(json.dumps(config))
    servers = {"runtime": lambda port: serve_runtime(app_dir, port), "quiet": lambda port: serve_runtime(quiet_dir, port),
               "bare": lambda port: serve_bare(app_dir, port)}
    if args.against:
        source = runtime_at(args.against, app_dir.parent / "against")
        servers[f"runtime@{args.against}"] = lambda port: serve_runtime(app_dir, port, source)
        servers[f"quiet@{args.against}"] = lambda port: serve_runtime(quiet_dir, port, source)
    if args.granian:
        servers["quiet-gr"] = lambda port: serve_runtime_granian(quiet_dir, port)
        servers["bare-gr"] = lambda port: serve_granian("runtime_bare_app:app", port, cwd=ROOT / "bench",
                                                         env={"MODEL": str(app_dir / "model" / "model.joblib")})
    if args.mlserver and Path(args.mlserver).exists():
        servers["mlserver"] = lambda port: serve_mlserver(app_dir, port, args.mlserver)
    else:
        print(f"MLServer not compared: no {args.mlserver} (see this script's docstring)", flush=True)
    # Every server runs for the whole benchmark, idle but for its turn; each round loads each one in
    # turn, so a change in the machine's load (shared cores) falls on all of them alike.
    running = {}
    try:
        for name, start in servers.items():
            port = free_port()
            running[name] = (start(port), f"http://127.0.0.1:{port}/v2/models/iris/infer")
        for name, (process, url) in running.items():
            wait_ready(url.removesuffix("/infer") + "/ready", process)
            for body in bodies.values():
                wrk(url, body, 2, args.connections)  # warm-up
        rates: dict[tuple[str, int], list[dict]] = {}
        for round_number in range(1, args.rounds + 1):
            for rows, body in bodies.items():
                for name, (_, url) in running.items():
                    result = wrk(url, body, args.duration, args.connections)
                    rates.setdefault((name, rows), []).append(result)
                    print(f"round {round_number} {name:16} {rows:3} rows: {result}", flush=True)
    finally:
        for process, _ in running.values():
            stop(process)
    return {key: {field: statistics.median(run[field] for run in runs) for field in ("rps", "p50_ms", "p99_ms")}
            | {"spread": (min(run["rps"] for run in runs), max(run["rps"] for run in runs)),
               "non_2xx": sum(run["non_2xx"] for run in runs), "rounds": [run["rps"] for run in runs]}
            for key, runs in rates.items()}


COLD_RUNTIME = """
import sys, time
from mlgen_runtime import load_service
service = load_service(sys.argv[1])
response = service.handle("POST", "/v2/models/iris/infer", {}, sys.argv[2].encode())
assert response.status == 200, response.body
"""
COLD_ONNXRUNTIME = """
import sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
session.run(None, {"float_input": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)})
"""


def cold_start(sklearn_dir: Path, onnx_dir: Path, repeats: int) -> dict:
    def body(name: str) -> str:
        return json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]})

    runs = {
        "runtime sklearn": [sys.executable, "-c", COLD_RUNTIME, str(sklearn_dir / "serving.json"), body("input-0")],
        "runtime onnx": [sys.executable, "-c", COLD_RUNTIME, str(onnx_dir / "serving.json"), body("float_input")],
        "bare onnxruntime": [sys.executable, "-c", COLD_ONNXRUNTIME, str(onnx_dir / "model" / "model.onnx")],
    }
    results = {}
    for name, command in runs.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(RUNTIME_SRC)}, timeout=120)
            times.append(time.perf_counter() - started)
        results[name] = statistics.median(times)
        print(f"cold start {name:17} median of {repeats}: {results[name]:.3f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also serve the runtime of this git revision (before/after)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlserver", default="/tmp/mlserver-venv/bin/mlserver")
    parser.add_argument("--granian", action="store_true", help="also the quiet runtime and the bare app on granian")
    parser.add_argument("--no-cold-start", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        estimator, _ = apps.iris_estimator()
        sklearn_dir, onnx_dir = Path(folder) / "sklearn", Path(folder) / "onnx"
        apps.sklearn_app(sklearn_dir, estimator, outputs=[apps.IRIS_OUTPUTS[0]])
        apps.onnx_app(onnx_dir, estimator)
        results = throughput(sklearn_dir, args)
        print(f"\nmedians of {args.rounds} rounds of {args.duration} s, {args.connections} connections")
        print("rows  server               req/s  (min-max)        p50 ms   p99 ms   runtime/it  quiet/it")
        names = list(dict.fromkeys(name for name, _ in results))
        for rows in (1, 64):
            runtime, quiet = results[("runtime", rows)], results[("quiet", rows)]
            for name in names:
                r = results[(name, rows)]
                spread = f"({r['spread'][0]:.0f}-{r['spread'][1]:.0f})"
                print(f"{rows:4}  {name:18} {r['rps']:8.0f}  {spread:15} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}", end="")
                if name in ("bare", "mlserver") or "@" in name:
                    print(f"   {runtime['rps'] / r['rps']:9.2f} {quiet['rps'] / r['rps']:9.2f}", end="")
                if name == "bare-gr":  # the runtime against the bare app on the same (granian) stack
                    print(f"   {'':9} {results[('quiet-gr', rows)]['rps'] / r['rps']:9.2f}", end="")
                if r["non_2xx"]:
                    print(f"   {r['non_2xx']} non-2xx", end="")
                print()
        # Each round's own ratio, then their median: a round loads the servers one after the other
        # within seconds, so a change in the machine's load between rounds cancels out.
        print("\nmedian of each round's ratio (min-max)")
        for rows in (1, 64):
            for mine in ("runtime", "quiet"):
                for name in names:
                    if name in ("bare", "mlserver") or name.startswith(f"{mine}@"):
                        ratios = [a / b for a, b in zip(results[(mine, rows)]["rounds"], results[(name, rows)]["rounds"])]
                        print(f"{rows:4}  {mine:8} / {name:18} {statistics.median(ratios):6.2f}"
                              f"  ({min(ratios):.2f}-{max(ratios):.2f})")
        print()
        if args.no_cold_start:
            return
        cold = cold_start(sklearn_dir, onnx_dir, args.repeats)
        print(f"runtime onnx / bare onnxruntime cold start: {cold['runtime onnx'] / cold['bare onnxruntime']:.2f}")


if __name__ == "__main__":
    main()
