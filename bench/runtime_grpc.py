"""The runtime's two transports side by side: one iris server answering the same 1-row request over
HTTP/JSON and over gRPC (raw contents, as tritonclient sends them), loaded by the same tool.

    python bench/runtime_grpc.py [--duration 8] [--connections 32] [--repeats 3] [--against REV]

h2load (Debian nghttp2-client) drives both: `--h1` with the V2 JSON body for HTTP, HTTP/2 with a
length-prefixed ModelInferRequest for gRPC, each client with one request in flight. Before loading,
tritonclient checks that both answers agree (h2load only sees HTTP 200, not gRPC's status). With
--against, a second server runs the runtime of that git revision, loaded in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
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
    parser.add_argument("--against", metavar="REV", help="also serve the runtime of this git revision (before/after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app_dir = Path(folder) / "app"
        apps.sklearn_app(app_dir, apps.iris_estimator()[0], outputs=[apps.IRIS_OUTPUTS[0]],
                         observability={"log_level": "warning"})
        json_body, grpc_file = Path(folder) / "body.json", Path(folder) / "body.grpc"
        json_body.write_text(json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                                                     "data": ROW}]}))
        grpc_body(grpc_file)
        sources = {"": bench.RUNTIME_SRC}
        if args.against:
            sources[f"@{args.against}"] = bench.runtime_at(args.against, Path(folder) / "against")
        loads, processes = {}, []
        try:
            for suffix, source in sources.items():
                # One app folder per server: the gRPC port is in serving.json.
                served_dir = Path(folder) / f"app{suffix}"
                if served_dir != app_dir:
                    shutil.copytree(app_dir, served_dir)
                port, grpc_port = bench.free_port(), bench.free_port()
                apps.set_runtime(served_dir / "serving.json", {"grpc_port": grpc_port})
                process = bench.serve_runtime(served_dir, port, source)
                processes.append(process)
                bench.wait_ready(f"http://127.0.0.1:{port}/v2/models/iris/ready", process)
                agree(port, grpc_port)
                loads[f"http{suffix}"] = (f"http://127.0.0.1:{port}/v2/models/iris/infer", json_body,
                                          ["content-type: application/json"], True)
                loads[f"grpc{suffix}"] = (f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer",
                                          grpc_file, ["content-type: application/grpc", "te: trailers"], False)
            for url, body, headers, http1 in loads.values():
                h2load(url, body, headers, 2, args.connections, http1)  # warm-up
            rates: dict[str, list[float]] = {name: [] for name in loads}
            for round_number in range(1, args.repeats + 1):
                for name, (url, body, headers, http1) in loads.items():
                    rates[name].append(h2load(url, body, headers, args.duration, args.connections, http1))
                    print(f"round {round_number} {name}: {rates[name][-1]:.0f} req/s", flush=True)
        finally:
            for process in processes:
                bench.stop(process)
    print(f"\niris, 1-row requests, {args.connections} clients, median of {args.repeats} (min-max)")
    for name in loads:
        print(f"{name:16} {statistics.median(rates[name]):7.0f} req/s ({min(rates[name]):.0f}-{max(rates[name]):.0f})")
    for suffix in sources:
        print(f"grpc/http{suffix}: {statistics.median(rates['grpc' + suffix]) / statistics.median(rates['http' + suffix]):.2f}")


if __name__ == "__main__":
    main()
