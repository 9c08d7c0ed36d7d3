"""Services that render but could not start, caught by `mlgen validate` before they ship: the corpus
in tests/broken_services/ (one folder per case: spec.yaml, its handler modules, and `expected`,
the start of the line validate must print). Each case gets the iris scikit-learn pickle as
model/model.joblib and the scaffold's iris ONNX model as model/model.onnx. A case whose expected
line is a warning validates (exit 0) and still says it; every other case exits 1. Nothing of the
user's is imported or unpickled: the model readers are checked against the libraries that really
load these files."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, run_mlgen

CORPUS = Path(__file__).parent / "broken_services"
CASES = sorted(path.name for path in CORPUS.iterdir() if (path / "expected").exists())
IRIS_PICKLE = EXAMPLES / "iris" / "model" / "model.joblib"
IRIS_ONNX = ROOT / "templates" / "init" / "model.onnx"


def test_the_corpus_covers_handlers_imports_onnx_and_pickles():
    assert len(CASES) >= 20
    for topic in ("handler", "imports", "onnx", "pickle"):
        assert any(topic in case for case in CASES), topic


@pytest.mark.parametrize("case", CASES)
def test_a_broken_service_fails_validate_at_the_line_that_breaks_it(case, tmp_path):
    work = tmp_path / case
    shutil.copytree(CORPUS / case, work)
    (work / "model").mkdir()
    shutil.copyfile(IRIS_PICKLE, work / "model" / "model.joblib")
    shutil.copyfile(IRIS_ONNX, work / "model" / "model.onnx")
    expected = (work / "expected").read_text(encoding="utf-8").rstrip("\n")

    result = run_mlgen("validate", "spec.yaml", cwd=work)

    assert "Traceback" not in result.stderr
    assert result.returncode == (0 if ": warning: " in expected else 1), result.stderr
    assert any(line.startswith(expected) for line in result.stderr.splitlines()), result.stderr


def test_the_onnx_graph_read_from_the_file_is_what_onnxruntime_sees(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlgen.spec.onnxgraph import read_graph

    features, labels = load_iris(return_X_y=True)
    made = []
    for name, estimator, options in [("zipmap", LogisticRegression(max_iter=500), None),
                                     ("forest", RandomForestClassifier(n_estimators=5), {"zipmap": False})]:
        estimator.fit(features, labels)
        onnx_model = skl2onnx.to_onnx(estimator, features[:1].astype("float32"),
                                      options={id(estimator): options} if options else None)
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(onnx_model.SerializeToString())
        made.append(path)
    models = [*ROOT.glob("examples/*/model/*.onnx"), IRIS_ONNX, *made]
    for path in models:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        graph = read_graph(path)
        for ours, theirs in ((graph.inputs, session.get_inputs()), (graph.outputs, session.get_outputs())):
            assert [tensor.name for tensor in ours] == [node.name for node in theirs], path
            for tensor, node in zip(ours, theirs):
                if node.type.startswith("tensor("):
                    assert tensor.rank == len(node.shape), (path, tensor)
                    assert tensor.datatype is not None
                else:  # ZipMap's sequence of maps is not a tensor
                    assert tensor.datatype is None


def test_the_pickle_scan_reads_what_unpickling_would_give_without_unpickling(tmp_path):
    joblib = pytest.importorskip("joblib")
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlgen.spec.pickles import scan

    features, labels = load_iris(return_X_y=True)
    estimators = [LogisticRegression(max_iter=500), make_pipeline(StandardScaler(), LogisticRegression()),
                  RandomForestClassifier(n_estimators=3)]
    for index, estimator in enumerate(estimators):
        estimator.fit(features, labels)
        files = []
        for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
            files.append(tmp_path / f"{index}-{compress}.joblib")
            joblib.dump(estimator, files[-1], compress=compress)
        for protocol in (2, 4, 5):
            files.append(tmp_path / f"{index}-{protocol}.pkl")
            files[-1].write_bytes(pickle.dumps(estimator, protocol=protocol))
        for path in files:
            facts = scan(path)
            assert facts.sklearn_version == sklearn.__version__, path
            assert facts.n_features_in == joblib.load(path).n_features_in_ == 4, path
            assert facts.estimator == f"{type(estimator).__module__}.{type(estimator).__name__}", path


class _Hostile:
    """Unpickling this runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_scanned_but_never_run(tmp_path):
    marker = tmp_path / "pwned"
    work = tmp_path / "service"
    shutil.copytree(CORPUS / "06-pickle-without-pin", work)
    (work / "model").mkdir()
    (work / "model" / "model.joblib").write_bytes(pickle.dumps({"model": _Hostile(marker)}))

    result = run_mlgen("validate", "spec.yaml", cwd=work)

    assert result.returncode == 0, result.stderr
    assert not marker.exists()
