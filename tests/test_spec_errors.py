"""A user's bad spec gets every error at once, each pointing at file:line:column and the field,
saying what was expected — and mlgen exits 1 without writing anything."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from helpers import run_mlgen
from mlgen.errors import SpecError
from mlgen.spec import load_spec

MODEL_BYTES = b"not really a model, but a file"

GOOD = """\
apiVersion: mlgen.dev/v1
kind: ModelService
metadata:
  name: demo
model:
  format: sklearn
  path: model.joblib
  inputs:
    - {name: x, datatype: FP32, shape: [-1, 4]}
  outputs:
    - {name: predict, datatype: INT64, shape: [-1]}
"""


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    (folder / "model.joblib").write_bytes(MODEL_BYTES)
    spec = folder / name
    spec.write_text(textwrap.dedent(text), encoding="utf-8")
    return spec


def errors_of(spec: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    return [problem.render() for problem in caught.value.problems]


def test_a_good_spec_builds_a_model_with_defaults(tmp_path: Path) -> None:
    model = load_spec(write_spec(tmp_path, GOOD))
    assert model.name == "demo"
    assert model.version == "0.1.0"
    assert model.runtime.port == 8080
    assert model.pipeline.stages == ("predict",)
    assert model.target("kubernetes")["service_monitor"] is False
    assert model.target("onprem")["prefix"] == "/opt/mlgen"


def test_every_error_is_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD.replace("name: demo", "name: Demo_1").replace("format: sklearn", "format: sklern")
                      + "runtime:\n  port: 80\n  wrokers: 2\n")
    errors = errors_of(spec)
    assert len(errors) == 4
    assert errors[0].startswith(f"{spec}:4:9: metadata.name: 'Demo_1' is not a DNS-1123 label")
    assert errors[1].startswith(f"{spec}:6:11: model.format: 'sklern' is not one of: sklearn, onnx, python")
    assert "did you mean 'sklearn'?" in errors[1]
    assert errors[2].startswith(f"{spec}:13:9: runtime.port: 80 is less than the minimum of 1024")
    assert errors[3] == f"{spec}:14:3: runtime.wrokers: unknown field 'wrokers' (did you mean 'workers'?)"


def test_yaml_booleans_and_numbers_get_a_hint_to_quote_them(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD.replace("  name: demo\n", "  name: demo\n  version: 1.10\n  labels:\n    team: no\n"))
    errors = errors_of(spec)
    assert any("metadata.version: expected a string, got a number" in e and 'quote it: "1.10"' in e for e in errors)
    assert any("metadata.labels.team: expected a string, got a boolean" in e and 'quote it: "no"' in e for e in errors)


def test_secret_values_are_refused_with_a_reason(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD + "secrets:\n  - name: DB_PASSWORD\n    secret: db\n    value: hunter2\n")
    (error,) = errors_of(spec)
    assert ":15:5: secrets[0].value: unknown field 'value'" in error
    assert "only references" in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("apiVersion: mlgen.dev/v1\napiVersion: mlgen.dev/v1\n", "2:1: apiVersion: duplicate key 'apiVersion' (first defined at line 1)"),
        ("metadata:\n\tname: x\n", "2:1: a tab is used for indentation"),
        ("a: [1, 2\n", "YAML syntax error"),
        ("a: &x [1]\nb: *x\n<<: {c: 1}\n", "merge keys (<<) are not supported"),
        ("yes: 1\n", "key 'yes' is not a string"),
    ],
)
def test_malformed_yaml_is_refused_with_a_position(tmp_path: Path, text: str, expected: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    assert any(expected in error for error in errors_of(spec)), errors_of(spec)


def test_alias_bombs_stop_early(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    spec = tmp_path / "spec.yaml"
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert any("expands to more than" in error for error in errors_of(spec))


def test_non_utf8_and_huge_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("apiVersion: mlgen.dev/v1\nkind: caf\xe9\n".encode("latin-1"))
    assert errors_of(bad) == [f"{bad}:2:10: byte 0xe9 is not valid UTF-8 (save the file as UTF-8)"]
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# padding\n" * 200_000)
    assert "larger than 1024 KiB" in errors_of(huge)[0]


def test_paths_may_not_escape_the_spec_folder(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "outside.joblib").write_bytes(MODEL_BYTES)
    spec = write_spec(inner, GOOD.replace("path: model.joblib", "path: ../outside.joblib"))
    assert any("model.path: ../outside.joblib is outside the spec's folder" in e for e in errors_of(spec))
    (inner / "link.joblib").symlink_to(tmp_path / "outside.joblib")
    spec = write_spec(inner, GOOD.replace("path: model.joblib", "path: link.joblib"))
    assert any("model.path: link.joblib is outside the spec's folder" in e for e in errors_of(spec))


def test_missing_files_and_wrong_checksums_are_named(tmp_path: Path) -> None:
    wrong = "ab" * 32
    spec = write_spec(tmp_path, GOOD.replace("  path: model.joblib\n", f"  path: model.joblib\n  sha256: {wrong}\n")
                      + "pipeline:\n  preprocess: handlers.pre:run\n")
    errors = errors_of(spec)
    actual = hashlib.sha256(MODEL_BYTES).hexdigest()
    assert any("model.sha256: model.joblib does not match this sha256" in e and actual in e for e in errors)
    assert any("pipeline.preprocess: module 'handlers.pre' was not found" in e for e in errors)


def test_python_models_need_a_handler_and_replicas_must_be_ordered(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD.replace("format: sklearn", "format: python")
                      + "scaling:\n  min_replicas: 5\n  max_replicas: 2\n")
    errors = errors_of(spec)
    assert any("model: required field 'handler' is missing" in e for e in errors)
    spec = write_spec(tmp_path, GOOD + "scaling:\n  min_replicas: 5\n  max_replicas: 2\n")
    assert any("scaling.min_replicas: min_replicas (5) is greater than max_replicas (2)" in e for e in errors_of(spec))


def test_the_cli_exits_1_prints_to_stderr_and_writes_nothing(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD.replace("kind: ModelService", "kind: Model"))
    out = tmp_path / "out"
    result = run_mlgen("render", spec, "-t", "onprem", "-o", out)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{spec}:2:7: kind: expected 'ModelService', got 'Model'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_validate_reports_each_spec_and_continues_past_a_bad_one(tmp_path: Path) -> None:
    good = write_spec(tmp_path, GOOD, "good.yaml")
    bad = write_spec(tmp_path, GOOD.replace("apiVersion: mlgen.dev/v1", "apiVersion: mlgen.dev/v9"), "bad.yaml")
    result = run_mlgen("validate", bad, good)
    assert result.returncode == 1
    assert f"{good}: valid (demo 0.1.0)" in result.stdout
    assert f"{bad}:1:13: apiVersion: expected 'mlgen.dev/v1'" in result.stderr


def test_a_trailing_newline_cannot_slip_past_an_anchored_pattern(tmp_path: Path) -> None:
    # Python's `$` matches before a final newline; ECMA's (the schema's dialect) does not.
    spec = write_spec(tmp_path, GOOD.replace("name: demo", 'name: "demo\\n"'))
    (error,) = errors_of(spec)
    assert "metadata.name: 'demo\\n' is not a DNS-1123 label" in error


@pytest.mark.parametrize("target, expected, absent", [
    # kubernetes installs onnxruntime-gpu for a GPU spec: the CPU pin beside it is refused at its line
    ("kubernetes", "runtime.requirements[0]: 'onnxruntime==1.32.0' is the CPU build", "no GPUs"),
    # serverless has no GPU at all: it says so, and nothing about wheels it would never install
    ("serverless", "no GPUs", "is the CPU build"),
])
def test_a_cpu_onnxruntime_pin_on_a_gpu_spec_is_refused_only_where_the_gpu_is_used(tmp_path: Path, target, expected,
                                                                                     absent) -> None:
    """With resources.gpu the bundle installs onnxruntime-gpu; a pin of the CPU build installs the
    same `onnxruntime` package beside it, so CUDA could silently disappear."""
    spec = Path(__file__).parent.parent / "examples" / "image-classifier-serverless" / "spec.yaml"
    result = run_mlgen("render", spec, "--target", target, "--set", "resources.gpu=1", "-o", tmp_path / "out")
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr and absent not in result.stderr, result.stderr
    assert "spec.yaml:34:7:" in result.stderr or target == "serverless"
    assert "onnxruntime-gpu==1.32.0" in result.stderr or target == "serverless"
