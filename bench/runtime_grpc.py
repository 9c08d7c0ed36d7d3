"""The runtime's two transports side by side: one iris server answering the same 1-row request over
HTTP/JSON and over gRPC (raw contents, as tritonclient sends them), loaded by the same tool.

    python bench/runtime_grpc.py [--duration 8] [--connections 32] [--repeats 3]

h2load (Debian nghttp2-client) drives both: `--h1` with the V2 JSON body for HTTP, HTTP/2 with a
length-prefixed ModelInferRequest for gRPC, each client with one request in flight. Before loading,
tritonclient checks that both answers agree (h2load only sees HTTP 200, not gRPC's status).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import struct
import subprocess
import tempfile
from pathlib import Path

import runtime_throughput as bench

from runtime import apps

ROW = [6.7, 3.0, 5.2, 2.3]


def grpc_body(path: Path) -> None:
    import numpy as np

    from mlgen_runtime import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.array(ROW, dtype="<f4").tobytes())
    message = request.SerializeToString()
    path.write_bytes(struct.pack(">?I", False, len(message)) + message)  # gRPC framing: flag, length


def h2load(url: str, body: Path, headers: list[str], duration: int, connections: int, http1: bool) -> float:
    command = ["h2load", "-D", str(duration), "-c", str(connections), "-m", "1", "-t", "1", "-d", str(body),
               *[part for header in headers for part in ("-H", header)], *(["--h1"] if http1 else []), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", output)
    if done.group(1) != done.group(2):
        raise SystemExit(f"h2load: not every request succeeded:\n{output}")
    return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output).group(1))


def agree(http_port: int, grpc_port: int) -> None:
    import numpy as np
    import tritonclient.grpc as grpc_client
    import tritonclient.http as http_client

    answers = []
    for module, port in ((http_client, http_port), (grpc_client, grpc_port)):
        client = module.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = module.InferInput("input-0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array([ROW], dtype=np.float32))
        answers.append(client.infer("iris", [tensor]).as_numpy("predict").tolist())
        client.close()
    assert answers[0] == answers[1], answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app_dir = Path(folder) / "app"
        apps.sklearn_app(app_dir, apps.iris_estimator()[0], outputs=[apps.IRIS_OUTPUTS[0]],
                         observability={"log_level": "warning"})
        grpc_port = bench.free_port()
        apps.set_runtime(app_dir / "serving.json", {"grpc_port": grpc_port})
        json_body, grpc_file = Path(folder) / "body.json", Path(folder) / "body.grpc"
        json_body.write_text(json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                                                     "data": ROW}]}))
        grpc_body(grpc_file)
        port = bench.free_port()
        process = bench.serve_runtime(app_dir, port)
        rates: dict[str, list[float]] = {"http": [], "grpc": []}
        try:
            bench.wait_ready(f"http://127.0.0.1:{port}/v2/models/iris/ready", process)
            agree(port, grpc_port)
            http = (f"http://127.0.0.1:{port}/v2/models/iris/infer", json_body, ["content-type: application/json"], True)
            grpc = (f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer", grpc_file,
                    ["content-type: application/grpc", "te: trailers"], False)
            for name, (url, body, headers, http1) in (("http", http), ("grpc", grpc)):
                h2load(url, body, headers, 2, args.connections, http1)  # warm-up
            for round_number in range(1, args.repeats + 1):
                for name, (url, body, headers, http1) in (("http", http), ("grpc", grpc)):
                    rates[name].append(h2load(url, body, headers, args.duration, args.connections, http1))
                    print(f"round {round_number} {name}: {rates[name][-1]:.0f} req/s", flush=True)
        finally:
            bench.stop(process)
    http_rps, grpc_rps = statistics.median(rates["http"]), statistics.median(rates["grpc"])
    print(f"\niris, 1-row requests, {args.connections} clients, median of {args.repeats} (min-max)")
    for name in ("http", "grpc"):
        print(f"{name:5} {statistics.median(rates[name]):7.0f} req/s ({min(rates[name]):.0f}-{max(rates[name]):.0f})")
    print(f"grpc/http: {grpc_rps / http_rps:.2f}")


if __name__ == "__main__":
    main()
