"""End to end without a cluster, as the other Kubernetes end-to-end tests run: iris with its model
kept in a store (model.uri). The container that loads the model (a Deployment's; KServe's
ServingRuntime container for the predictor), started as a local process with its rendered command
and env, fetches the model from a real local store (moto's S3 server; an HTTPS server with a
throwaway CA), verifies it and caches it where the rendered MLGEN_MODEL_CACHE points: that path is
the emptyDir's mount, and stands here for a temporary folder (as /app stands for the bundle's app/).
It answers the spec's examples; started again with the store gone (a container restart keeps the
pod's emptyDir) it answers from the cache.
Only what a laptop cannot have changes: host, port, the store's endpoint and its test credentials
(on a cluster, the ServiceAccount's identity)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, render_spec
from runtime.stores import HTTPSStore, S3Store
from test_target_kubernetes_e2e import Stage
from test_target_kubernetes_flavors_e2e import as_pod, objects
from test_target_kubernetes_model_uri import iris_from_s3

pytest.importorskip("boto3")

MODEL = (EXAMPLES / "iris" / "model" / "model.joblib").read_bytes()  # what the spec's sha256 names
STORES = {"s3": S3Store, "https": HTTPSStore}


def loading_container(bundle: Path, flavor: str) -> dict:
    found = objects(bundle)
    if flavor == "kserve":
        (runtime,) = [d for d in found if d["kind"] == "ServingRuntime"]
        (container,) = runtime["spec"]["containers"]
        return as_pod(container, "server")
    (deployment,) = [d for d in found if d["kind"] == "Deployment"]
    return deployment


def infer(spec_path: Path, port: int) -> dict:
    spec = yaml.safe_load(spec_path.read_text())
    (example,) = spec["examples"]
    rows = example["inputs"]["input-0"]
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [len(rows), 4], "data": sum(rows, [])}]}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/iris-s3/infer", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer = json.loads(reply.read())
    assert example["outputs"]["predict"] == next(o["data"] for o in answer["outputs"] if o["name"] == "predict")
    return answer


@pytest.mark.parametrize("store_kind, flavor", [("s3", "deployment"), ("https", "kserve")])
def test_the_loading_container_fetches_its_model_into_the_empty_dir_and_a_restart_reads_it_there(
        tmp_path, store_kind, flavor):
    store = STORES[store_kind](tmp_path)
    try:
        store.put("iris/2026-11-30/model.joblib", MODEL)
        spec = iris_from_s3(tmp_path / "spec")
        sets = [f"model.uri={store.uri('iris/2026-11-30/model.joblib')}"]
        if flavor == "kserve":
            sets.append("targets.kubernetes.flavor=kserve")
        bundle = render_spec(spec, "kubernetes", tmp_path / "out", sets=sets)
        pod = loading_container(bundle, flavor)
        container = pod["spec"]["template"]["spec"]["containers"][0]
        (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "model-cache"]

        stage = Stage(pod, bundle, tmp_path)
        assert stage.env["MLGEN_MODEL_CACHE"] == mount  # the process caches on the emptyDir
        empty_dir = tmp_path / "empty-dir"
        stage.env.update(store.env, MLGEN_MODEL_CACHE=str(empty_dir))
        try:
            stage.start({})
            stage.wait_ready()
            infer(spec, stage.port)
        finally:
            stage.stop()
        cached = list(empty_dir.rglob("model.joblib"))
        assert [path.read_bytes() for path in cached] == [MODEL]
        assert cached[0].parent.name == hashlib.sha256(MODEL).hexdigest()
        assert "sha256 verified" in stage.log.read_text()
    finally:
        store.stop()

    stage.log.write_text("")
    try:  # the store is gone: only the emptyDir can give the model now
        stage.start({})
        stage.wait_ready()
        infer(spec, stage.port)
    finally:
        stage.stop()
    assert "found in the cache" in stage.log.read_text()
