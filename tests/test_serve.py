"""`mlgen serve` runs the bundle's own app/ straight from a spec: a real HTTP client gets the
model's prediction, and SIGTERM stops it cleanly."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT, free_port, wait_until_ready

pytest.importorskip("joblib")
pytest.importorskip("numpy")
pytest.importorskip("requests")
import joblib  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402

IRIS = EXAMPLES / "iris"


def test_mlgen_serve_answers_with_the_models_prediction() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlgen", "serve", str(IRIS / "spec.yaml"), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server)
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        answer = requests.post(f"{base}/v2/models/iris/infer", timeout=10, json={
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": rows}]}).json()
        outputs = {output["name"]: output for output in answer["outputs"]}
        model = joblib.load(IRIS / "model" / "model.joblib")
        assert outputs["predict"]["data"] == model.predict(np.array(rows, dtype=np.float32)).tolist()
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    assert code == 0


def test_serve_without_the_models_packages_says_what_to_install_and_exits_2(tmp_path) -> None:
    """A package the bundle installs but this Python lacks: the exact pip command, no traceback."""
    shutil.copytree(IRIS / "model", tmp_path / "model")
    spec = (IRIS / "spec.yaml").read_text().replace("    - scikit-learn==1.9.1\n",
                                                    "    - scikit-learn==1.9.1\n    - mlgen-test-absent-package==2.0\n")
    (tmp_path / "spec.yaml").write_text(spec)
    result = subprocess.run([sys.executable, "-m", "mlgen", "serve", "spec.yaml", "--port", str(free_port())],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "needs mlgen-test-absent-package" in result.stderr
    assert f"install them with: {sys.executable} -m pip install mlgen-test-absent-package==2.0" in result.stderr
    assert "scikit-learn" not in result.stderr.split("install them with:")[1]  # installed here: not asked for
