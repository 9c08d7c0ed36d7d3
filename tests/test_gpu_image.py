"""A GPU service's Kubernetes image: an ONNX model asking for a GPU builds on NVIDIA's CUDA runtime
image (CUDA and cuDNN, what onnxruntime-gpu loads), installs Ubuntu's Python in both stages, and
tells the NVIDIA container runtime which driver capabilities to hand over; hadolint and checkov
accept it. A Python the image cannot give is refused at runtime.python; a scikit-learn model, which
never computes on the GPU, keeps the slim Python image."""

from __future__ import annotations

import subprocess

import pytest

from helpers import EXAMPLES, require_tool, run_mlgen
from test_target_kubernetes import checkov

DIGITS = EXAMPLES / "image-classifier-serverless" / "spec.yaml"  # an ONNX model
# The example releases its function as a canary, which Kubernetes would gate on metrics it turns off.
ON_KUBERNETES = ("--set", "scaling.min_replicas=1", "--set", "rollout={strategy: all_at_once}")
GPU = ("--set", "resources.gpu=1", *ON_KUBERNETES, "--set", "runtime.requirements=[pillow==13.0.0]")


def render(tmp_path, spec, *sets):
    result = run_mlgen("render", spec, "-t", "kubernetes", "-o", tmp_path / "out", *sets)
    return result, tmp_path / "out" / "kubernetes"


def test_an_onnx_gpu_service_builds_on_the_cuda_image(tmp_path):
    result, bundle = render(tmp_path, DIGITS, *GPU)
    assert result.returncode == 0, result.stderr
    dockerfile = (bundle / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    assert [stage.split()[0] for stage in stages[1:]] == ["docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"] * 2
    assert "python3.12 python3.12-venv" in stages[1] and "apt-get install -y --no-install-recommends python3.12 \\" in stages[2]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in stages[2]
    requirements = (bundle / "app" / "requirements.txt").read_text().split()
    assert any(r.startswith("onnxruntime-gpu") for r in requirements) and not any(r.startswith("onnxruntime>") for r in requirements)
    linted = subprocess.run([require_tool("hadolint"), str(bundle / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr
    assert checkov([bundle / "Dockerfile"], "dockerfile", {})["passed"] >= 20


def test_a_python_the_cuda_image_cannot_give_is_refused_at_runtime_python(tmp_path):
    result, bundle = render(tmp_path, DIGITS, *GPU, "--set", 'runtime.python="3.13"')
    assert result.returncode == 1 and not bundle.exists()
    assert "runtime.python: the GPU image docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 (Ubuntu 24.04) " \
           "installs Python 3.12, not 3.13" in result.stderr


@pytest.mark.parametrize("spec, sets", [
    (EXAMPLES / "iris" / "spec.yaml", ("--set", "resources.gpu=1")),  # scikit-learn: no CUDA
    (DIGITS, ON_KUBERNETES),  # ONNX without a GPU
])
def test_a_service_that_computes_on_cpu_keeps_the_python_image(tmp_path, spec, sets):
    result, bundle = render(tmp_path, spec, *sets)
    assert result.returncode == 0, result.stderr
    dockerfile = (bundle / "Dockerfile").read_text()
    assert "nvidia" not in dockerfile.lower() and "apt-get" not in dockerfile
