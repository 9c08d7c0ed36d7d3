"""ONNX models and the GPU: a spec with resources.gpu asks for CUDA first, then CPU. On a machine
without CUDA (this one) the service still starts, says in its log that CUDA is not there, and
reports the provider it really runs on in model metadata and a metric."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import EXAMPLES, run_mlgen
from mlgen_runtime.loaders import CPU, usable_providers

from . import apps

pytest.importorskip("requests")
pytest.importorskip("onnxruntime")
import requests  # noqa: E402

CUDA = "CUDAExecutionProvider"


def test_cuda_comes_first_where_onnxruntime_has_it_and_cpu_is_always_the_last_resort():
    assert usable_providers((CUDA, CPU), [CUDA, CPU]) == [CUDA, CPU]
    assert usable_providers((CUDA, CPU), ["AzureExecutionProvider", CPU]) == [CPU]
    assert usable_providers((CUDA,), [CUDA, CPU]) == [CUDA, CPU]
    assert usable_providers((CPU,), [CUDA, CPU]) == [CPU]


def test_a_gpu_spec_on_a_machine_without_cuda_serves_on_cpu_and_says_so(tmp_path, start_server, iris):
    config = apps.onnx_app(tmp_path, iris[0])
    document = json.loads(config.read_text())
    document["model"]["execution_providers"] = [CUDA, CPU]
    config.write_text(json.dumps(document))
    server = start_server(config).wait()
    body = {"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": [6.7, 3.0, 5.2, 2.3]}]}
    answer = requests.post(server.url + "/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == iris[0].predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    metadata = requests.get(server.url + "/v2/models/iris", timeout=5).json()
    assert metadata["parameters"] == {"execution_provider": CPU}
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert f'mlgen_model_execution_provider{{stage="all",provider="{CPU}"}} 1' in metrics
    warnings = [json.loads(line) for line in server.log_text().splitlines()
                if line.startswith("{") and '"level":"warning"' in line]
    assert any(entry["msg"].startswith(f"{CUDA} is not available here") and entry["msg"].endswith(f"the model runs on {CPU}")
               for entry in warnings), server.log_text()


def test_a_scikit_learn_service_reports_cpu(sklearn_server):
    metadata = requests.get(sklearn_server.url + "/v2/models/iris", timeout=5).json()
    assert metadata["parameters"] == {"execution_provider": "cpu"}


def test_mlgen_plan_warns_that_a_scikit_learn_model_on_a_gpu_spec_computes_on_cpu(tmp_path):
    spec_dir = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", spec_dir)
    spec = spec_dir / "spec.yaml"
    spec.write_text(spec.read_text().replace("  memory: 512Mi\n", "  memory: 512Mi\n  gpu: 1\n", 1))
    done = run_mlgen("plan", spec)
    line = next(number for number, row in enumerate(spec.read_text().splitlines(), 1) if "gpu: 1" in row)
    assert f"spec.yaml:{line}:8: warning: resources.gpu: a scikit-learn model does not use the GPU" in done.stdout + done.stderr
