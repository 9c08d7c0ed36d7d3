"""On a machine with an NVIDIA GPU: the runtime serves an ONNX model on the CUDA execution provider,
and how much faster than on CPU. Exits 1 when the service did not get CUDA.

    python3 -m pip install onnxruntime-gpu skl2onnx scikit-learn && python bench/gpu_smoke.py [--rows 256] [--requests 200]

An MLP (two hidden layers of 1024) exported to ONNX, served twice through the runtime's in-process
API (the same Service the HTTP and gRPC servers call): serving.json asking for CUDA then CPU, and for
CPU alone. Prints requests per second for both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))

from runtime import apps  # noqa: E402

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def mlp_app(app_dir: Path, providers: list[str]) -> Path:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    features = rng.normal(size=(512, 64)).astype(np.float32)
    model = MLPClassifier(hidden_layer_sizes=(1024, 1024), max_iter=5).fit(features, rng.integers(0, 4, 512))
    onnx_model = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 64]))],
                                 options={id(model): {"zipmap": False}}, target_opset=17)
    (app_dir / "model").mkdir(parents=True, exist_ok=True)
    (app_dir / "model" / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return apps.write_serving_json(app_dir, {
        "format": "onnx", "path": "model/model.onnx", "sha256": None, "handler": None, "execution_providers": providers,
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]}]},
        observability={"log_level": "warning"})


def rate(config: Path, rows: int, requests: int) -> tuple[str, float]:
    import numpy as np

    from mlgen_runtime import load_service

    service = load_service(config)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 64],
                                   "data": np.ones((rows, 64)).ravel().tolist()}]}).encode()
    path = "/v2/models/iris/infer"
    for _ in range(10):  # warm-up (CUDA kernels, memory arenas)
        assert service.handle("POST", path, {}, body).status == 200
    started = time.perf_counter()
    for _ in range(requests):
        service.handle("POST", path, {}, body)
    return service.pipeline.execution_provider, requests / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        gpu_provider, gpu_rps = rate(mlp_app(Path(folder) / "gpu", [CUDA, CPU]), args.rows, args.requests)
        cpu_provider, cpu_rps = rate(mlp_app(Path(folder) / "cpu", [CPU]), args.rows, args.requests)
    print(f"{args.rows}-row requests: {gpu_provider} {gpu_rps:.0f} req/s, {cpu_provider} {cpu_rps:.0f} req/s, "
          f"ratio {gpu_rps / cpu_rps:.2f}")
    if gpu_provider != CUDA:
        print(f"the service runs on {gpu_provider}, not {CUDA}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
