"""A spec names its model by `model.uri` instead of `model.path`: the mistakes a person makes with
one (both fields, neither, no sha256, a credential or signed query in the URI, a bucket name no
store accepts) are located errors from `mlgen validate`, never a download; and each target either
renders a model.uri spec or, while its bundles cannot fetch the model, refuses it at model.uri
instead of rendering a bundle that would never become ready."""

from __future__ import annotations

import pytest
import yaml

from helpers import EXAMPLES, run_mlgen

SHA = "795e4c457ef937cbc3420d63141b2370b7867e6965943bcd46915db7d3a5e416"


def iris_with(tmp_path, **model_fields):
    spec = yaml.safe_load((EXAMPLES / "iris" / "spec.yaml").read_text())
    spec["model"].pop("path")
    spec["model"].pop("sha256")
    spec["model"].update(model_fields)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_spec_with_a_model_uri_validates_without_fetching_anything(tmp_path):
    result = run_mlgen("validate", iris_with(tmp_path, uri="s3://acme-models/iris/1.0.0/model.joblib", sha256=SHA,
                                             version="1.0.1"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("fields, expected", [
    ({"uri": "s3://acme-models/iris/model.joblib"}, "model.uri: uri needs sha256 beside it"),
    ({"uri": "https://user:secret@models.example.com/iris.joblib", "sha256": SHA}, "carries a user name or password"),
    ({"uri": "https://models.example.com/iris.joblib?sig=abc", "sha256": SHA}, "a signed URL is a credential"),
    ({"uri": "s3://Acme_Models/iris.joblib", "sha256": SHA}, "is not a valid bucket name"),
    ({"uri": "s3://acme-models/", "sha256": SHA}, "names a bucket but no object"),
    ({"uri": "https://acme.blob.core.windows.net/iris.joblib", "sha256": SHA}, "https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"),
    ({"uri": "file://relative/model.joblib", "sha256": SHA}, "absolute path"),
    ({"uri": "ftp://models.example.com/iris.joblib", "sha256": SHA}, "model.uri"),
    ({"path": "model/model.joblib", "uri": "s3://acme-models/iris.joblib", "sha256": SHA}, "model has both path and uri"),
    ({}, "model needs path or uri"),
])
def test_a_model_uri_mistake_is_a_located_error(tmp_path, fields, expected):
    result = run_mlgen("validate", iris_with(tmp_path, **fields))
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr and "spec.yaml:" in result.stderr and "Traceback" not in result.stderr
    assert "secret@" not in result.stderr or "user name or password" in result.stderr


@pytest.mark.parametrize("target", ["cloud", "kubernetes", "onprem", "serverless"])
def test_each_target_renders_a_model_uri_spec_or_refuses_it_at_model_uri(tmp_path, target):
    """A target whose bundles fetch the model renders the spec; one that cannot yet refuses it at
    model.uri instead of rendering a bundle that would never become ready."""
    from mlgen.plan import FETCHING_TARGETS

    spec = iris_with(tmp_path, uri="s3://acme-models/iris/1.0.0/model.joblib", sha256=SHA)
    result = run_mlgen("render", spec, "--target", target, "-o", tmp_path / "out")
    if target in FETCHING_TARGETS:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out" / target).is_dir()
        return
    assert result.returncode == 1
    assert f"model.uri: target {target} cannot deploy a model fetched from model.uri yet" in result.stderr
    assert not (tmp_path / "out" / target).exists()


def test_the_limits_use_the_artifact_size_from_model_size_else_max_size(tmp_path):
    from mlgen.spec import load_spec

    spec = iris_with(tmp_path, uri="s3://acme-models/iris/model.joblib", sha256=SHA, max_size="64Mi")
    assert load_spec(spec).model.expected_bytes == 64 * 2**20  # unknown: at most what the service fetches
    assert load_spec(spec, model_size=5_000).model.expected_bytes == 5_000
    path_model = load_spec(EXAMPLES / "iris" / "spec.yaml").model
    assert path_model.expected_bytes == (EXAMPLES / "iris" / "model" / "model.joblib").stat().st_size


@pytest.mark.parametrize("size, expected", [
    ("3Gi", ":13: model.max_size: the artifact is 3221225472 bytes (--model-size), more than max_size 64Mi"),
    ("12Mx", "'12Mx' is not a size"),
])
def test_a_model_size_the_service_could_not_fetch_is_refused(tmp_path, size, expected):
    spec = iris_with(tmp_path, uri="s3://acme-models/iris/model.joblib", sha256=SHA, max_size="64Mi")
    result = run_mlgen("validate", spec, "--model-size", size)
    assert result.returncode in (1, 2) and expected in result.stderr, result.stderr


def test_model_size_on_a_model_in_the_bundle_is_refused_at_model_path():
    result = run_mlgen("validate", EXAMPLES / "iris" / "spec.yaml", "--model-size", "3Mi")
    assert result.returncode == 1
    assert "spec.yaml:13:9: model.path: --model-size is for a model fetched from model.uri" in result.stderr
