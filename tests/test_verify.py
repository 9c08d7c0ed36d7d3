"""`mlgen verify`: every example's bundles, started as their platforms start them, answer the
spec's examples; a broken service (a handler that raises at import, a model file the handler opens
that is missing, an output under another name) fails with a message that says what went wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from helpers import EXAMPLES, REQUIRE_TOOLS

pytestmark = pytest.mark.slow

VERIFY_TIMEOUT_S = 1800  # cold environments download a few hundred MB


def verify(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "mlgen", "verify", *map(str, args), "--format", "json"],
                            capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, {r["target"]: r for r in json.loads(result.stdout or "[]")}, result.stderr


def passed_where_this_machine_can(results: dict) -> None:
    for target, result in results.items():
        if result["status"] == "not verified" and not REQUIRE_TOOLS:
            continue  # a Python or architecture this machine lacks: said, never passed
        assert result["status"] == "passed", f"{target}: {result['reason']}"
        assert result["ready_s"] > 0 and result["first_s"] > 0


def test_iris_answers_its_examples_on_every_target_started_as_its_platform_starts_it():
    code, results, err = verify(EXAMPLES / "iris" / "spec.yaml")
    assert sorted(results) == ["cloud", "kubernetes", "onprem", "serverless"]
    passed_where_this_machine_can(results)
    assert code == 0, err
    assert all(r["locked"] for r in results.values() if r["status"] == "passed")  # built from the lock's hashes


@pytest.mark.parametrize("provider", ["gcp", "azure"])
def test_digits_function_answers_on_cloud_functions_and_azure(provider):
    # The example's canary is for Lambda; Azure's slots swap all the traffic at once.
    release = "{strategy: canary, steps: [{weight: 10, pause: 5m}, {weight: 100}]}" if provider == "gcp" else "{}"
    code, results, err = verify(EXAMPLES / "image-classifier-serverless" / "spec.yaml",
                                "--set", f"targets.serverless.provider={provider}", "--set", f"rollout={release}")
    passed_where_this_machine_can(results)
    assert code == 0, err


def test_an_arm64_lambda_is_not_verified_on_an_x86_64_machine_and_says_why():
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the story is about an x86_64 machine")
    code, results, err = verify(EXAMPLES / "image-classifier-serverless" / "spec.yaml")
    assert results["serverless"]["status"] == "not verified"
    assert "aarch64" in results["serverless"]["reason"]
    assert code == 0


# --- broken services: a python-format model on this machine's Python, on-prem -------------------------

SCORER = '''
import json, os
import numpy as np


class Model:
    def load(self, path):
        with open(path, encoding="utf-8") as handle:
            self.weights = np.asarray(json.load(handle)["weights"], dtype=np.float64)

    def predict(self, inputs):
        return {"label": (np.asarray(inputs["x"], dtype=np.float64) @ self.weights).astype(np.int64)}
'''


def service(tmp_path, scorer: str = SCORER, outputs: str = "label"):
    (tmp_path / "weights.json").write_text(json.dumps({"weights": [1.0, 1.0]}))
    (tmp_path / "scorer.py").write_text(textwrap.dedent(scorer))
    spec = {
        "apiVersion": "mlgen.dev/v1", "kind": "ModelService",
        "metadata": {"name": "adder", "version": "1.0.0"},
        "model": {"format": "python", "path": "weights.json", "handler": "scorer:Model",
                  "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                  "outputs": [{"name": outputs, "datatype": "INT64", "shape": [-1]}]},
        "runtime": {"python": f"{sys.version_info.major}.{sys.version_info.minor}"},
        "targets": {"onprem": {}},
        "examples": [{"inputs": {"x": [[1, 2], [3, 4]]}, "outputs": {outputs: [3, 7]}}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "spec.yaml"


def test_a_working_python_model_passes(tmp_path):
    code, results, err = verify(service(tmp_path))
    assert results["onprem"]["status"] == "passed", results["onprem"]["reason"]
    assert code == 0


def test_a_handler_that_raises_at_import_fails_with_its_error(tmp_path):
    code, results, err = verify(service(tmp_path, 'raise RuntimeError("no licence for the scorer")\n' + SCORER))
    assert code == 1
    assert results["onprem"]["status"] == "FAILED"
    assert "exited" in results["onprem"]["reason"] and "no licence for the scorer" in results["onprem"]["reason"]


def test_a_model_file_the_handler_opens_that_is_not_in_the_bundle_fails_naming_it(tmp_path):
    missing = SCORER.replace('with open(path, encoding="utf-8") as handle:',
                             'open(os.path.join(os.path.dirname(path), "vocabulary.txt")).read()\n'
                             '        with open(path, encoding="utf-8") as handle:')
    code, results, err = verify(service(tmp_path, missing))
    assert code == 1 and results["onprem"]["status"] == "FAILED"
    assert "vocabulary.txt" in results["onprem"]["reason"]


def test_an_output_under_another_name_fails_naming_both(tmp_path):
    code, results, err = verify(service(tmp_path, outputs="total"))
    assert code == 1 and results["onprem"]["status"] == "FAILED"
    reason = results["onprem"]["reason"]
    assert "total" in reason and ("label" in reason or "HTTP 500" in reason), reason


def test_the_text_report_has_a_line_per_target_with_its_times(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mlgen", "verify", str(service(tmp_path))], capture_output=True,
                            text=True, timeout=VERIFY_TIMEOUT_S, env={**os.environ})
    assert result.returncode == 0, result.stderr
    header, line = result.stdout.splitlines()[:2]
    assert header.split()[:2] == ["target", "environment"]
    assert line.startswith("onprem") and line.rstrip().endswith("passed") and " s" in line and " ms" in line


def test_a_model_in_storage_behind_an_api_key_is_verified_from_a_local_copy(tmp_path):
    """iris-s3 asks callers for an API key and fetches its model from S3: verify delivers each
    bundle a throwaway key as its platform delivers secrets, sends it with every example, and puts
    the local copy (checked against model.sha256) in the bundle's model cache."""
    spec = EXAMPLES / "iris-s3" / "spec.yaml"
    code, results, err = verify(spec, "--model-file", EXAMPLES / "iris" / "model" / "model.joblib")
    assert sorted(results) == ["cloud", "kubernetes", "onprem", "serverless"]
    passed_where_this_machine_can(results)
    assert code == 0, err
    wrong = tmp_path / "model.joblib"
    wrong.write_bytes(b"another model")
    code, results, err = verify(spec, "-t", "onprem", "--model-file", wrong)
    assert code == 1 and results["onprem"]["status"] == "FAILED"
    assert "not the spec's model.sha256 795e4c45" in results["onprem"]["reason"]
