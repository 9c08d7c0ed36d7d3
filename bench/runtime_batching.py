"""Adaptive batching on a model whose call has a large fixed cost: the runtime without batching, with
`runtime.batching`, and MLServer with its adaptive batching configured the same, side by side.

    python bench/runtime_batching.py [--duration 10] [--connections 32] [--repeats 3] [--mlserver PATH]

A 300-tree scikit-learn random forest on iris, 1-row V2 infer requests, 32 wrk connections. Each
server in turn on 127.0.0.1; every round runs all three, so the ratios compare runs made minutes
apart on the same machine. Batching settings: max_batch_size 32 rows, max_latency_ms 10 (MLServer:
max_batch_size 32, max_batch_time 0.01). MLServer lives in its own venv (see runtime_throughput.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import runtime_throughput as bench

from runtime import apps

BATCHING = {"max_batch_size": 32, "max_latency_ms": 10}
MLSERVER_BATCHING = {"max_batch_size": 32, "max_batch_time": 0.01}


def forest():
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, labels = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=300, random_state=0).fit(features, labels)


def measure(start, body: Path, args) -> dict:
    port = bench.free_port()
    process = start(port)
    try:
        bench.wait_ready(f"http://127.0.0.1:{port}/v2/models/iris/ready", process)
        url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
        bench.wrk(url, body, 2, args.connections)  # warm-up
        return bench.wrk(url, body, args.duration, args.connections)
    finally:
        bench.stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mlserver", default="/tmp/mlserver-venv/bin/mlserver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        unbatched, batched = Path(folder) / "unbatched", Path(folder) / "batched"
        model = forest()
        for app_dir in (unbatched, batched):
            apps.sklearn_app(app_dir, model, outputs=[apps.IRIS_OUTPUTS[0]], observability={"log_level": "warning"})
        apps.set_runtime(batched / "serving.json", {"batching": BATCHING})
        body = Path(folder) / "body.json"
        body.write_text(json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                                                "data": [[6.7, 3.0, 5.2, 2.3]]}]}))
        servers = {"unbatched": lambda port: bench.serve_runtime(unbatched, port),
                   "batched": lambda port: bench.serve_runtime(batched, port)}
        if Path(args.mlserver).exists():
            servers["mlserver"] = lambda port: bench.serve_mlserver(Path(folder) / "ml", port, args.mlserver,
                                                                    MLSERVER_BATCHING)
            (Path(folder) / "ml" / "model").mkdir(parents=True)
            (Path(folder) / "ml" / "model" / "model.joblib").write_bytes((unbatched / "model" / "model.joblib").read_bytes())
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for round_number in range(1, args.repeats + 1):
            for name, start in servers.items():
                result = measure(start, body, args)
                runs[name].append(result)
                print(f"round {round_number} {name:9} {result}", flush=True)
    print(f"\n300-tree forest, 1-row requests, {args.connections} connections, median of {args.repeats} "
          "(min-max req/s)")
    print("server      req/s (spread)        p50 ms   p99 ms   vs unbatched  batched/it")
    median = {name: statistics.median(r["rps"] for r in results) for name, results in runs.items()}
    for name, results in runs.items():
        rps = [r["rps"] for r in results]
        p50 = statistics.median(r["p50_ms"] for r in results)
        p99 = statistics.median(r["p99_ms"] for r in results)
        print(f"{name:10} {median[name]:7.0f} ({min(rps):.0f}-{max(rps):.0f})  {p50:9.1f} {p99:8.1f} "
              f"{median[name] / median['unbatched']:12.1f}x {median['batched'] / median[name]:10.2f}")
        if any(r["non_2xx"] for r in results):
            print(f"  {name}: {sum(r['non_2xx'] for r in results)} non-2xx answers")


if __name__ == "__main__":
    main()
