"""End to end: the recsys bundle's stages started as local processes exactly as its Deployments
start them (their command, their env, the ConfigMap's serving.json) answer through the entry stage
with the model's recommendation; with the predict stage killed the entry stage answers 503 naming
it, and it answers again once the stage is back. Only what a laptop cannot have changes: the host
(127.0.0.1), a free port per stage, and the stage URLs (MLGEN_STAGE_URL_*) pointing at those ports."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, free_port, render_spec
from kubernetes_expansion import kubernetes_env, kubernetes_expand

pytest.importorskip("joblib")
pytest.importorskip("numpy")
import joblib  # noqa: E402
import numpy as np  # noqa: E402

EXAMPLE = EXAMPLES / "recsys-microservices"
READY_WITHIN_S = 120  # a bound, not a measurement: scikit-learn imports slowly on a busy machine
USERS = {  # item_ids and event_types of two users: one into genre 0 (items 0-3), one into genre 2 (8-11)
    "item_ids": [[0, 1, 2, 1, 3, 0, -1, -1], [8, 9, 4, 10, 11, 9, 10, 8]],
    "event_types": [[0, 1, 0, 2, 0, 1, 0, 0], [0, 0, 0, 1, 2, 0, 1, 2]],
}


def expected_recommendation() -> tuple[list[int], list[float]]:
    spec = importlib.util.spec_from_file_location("recsys_pipeline_expected", EXAMPLE / "recsys_pipeline.py")
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    model = joblib.load(EXAMPLE / "model" / "model.joblib")
    features = pipeline.preprocess({k: np.array(v, dtype=np.int64) for k, v in USERS.items()})
    top = pipeline.postprocess({"predict_proba": model.predict_proba(features["features"])})
    return top["items"].ravel().tolist(), top["scores"].ravel().tolist()


class Stage:
    """One Deployment's container, as a local process."""

    def __init__(self, deployment: dict, bundle: Path, logs: Path):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.name = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        self.port = free_port()
        # What the kubelet hands the process: $(NAME) and $$ expanded by Kubernetes' rules.
        self.env = kubernetes_env(container)
        self.command = [self._local(kubernetes_expand(arg, self.env), bundle) for arg in container["command"]]
        self.log = logs / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def _local(self, arg: str, bundle: Path) -> str:
        if arg == "python":
            return sys.executable
        if arg.startswith("/app/"):
            return str(bundle / "app" / arg.removeprefix("/app/"))
        return {"0.0.0.0": "127.0.0.1"}.get(arg, arg)

    def start(self, stage_urls: dict[str, str]) -> None:
        command = list(self.command)
        command[command.index("--port") + 1] = str(self.port)
        env = {**os.environ, **self.env, "PYTHONPATH": str(Path(command[command.index("--config") + 1]).parent),
               **{f"MLGEN_STAGE_URL_{stage.upper()}": url for stage, url in stage_urls.items()}}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # a crash, not a graceful stop
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} not ready within {READY_WITHIN_S}s:\n{self.log.read_text()[-2000:]}")


def infer(port: int) -> tuple[int, dict]:
    body = {"inputs": [{"name": name, "datatype": "INT64", "shape": [2, 8], "data": sum(rows, [])}
                       for name, rows in USERS.items()]}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/recsys/infer", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def stages(tmp_path):
    bundle = render_spec(EXAMPLE / "spec.yaml", "kubernetes", tmp_path / "out")
    deployments = [d for p in sorted((bundle / "base").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
                   if d and d["kind"] == "Deployment"]
    configmap = yaml.safe_load((bundle / "base" / "configmap.yaml").read_text())
    # The ConfigMap mounted over /app/serving.json says what the bundle's app/serving.json says.
    assert json.loads(configmap["data"]["serving.json"]) == json.loads((bundle / "app" / "serving.json").read_text())
    started = {stage.name: stage for stage in (Stage(d, bundle, tmp_path) for d in deployments)}
    assert sorted(started) == ["gateway", "postprocess", "predict", "preprocess"]
    urls = {name: f"http://127.0.0.1:{stage.port}" for name, stage in started.items() if name != "gateway"}
    try:
        for stage in started.values():
            stage.start(urls if stage.name == "gateway" else {})
        for stage in started.values():
            stage.wait_ready()
        yield started, urls
    finally:
        for stage in started.values():
            stage.stop()


def test_stages_answer_through_the_entry_stage_and_survive_a_stage_crash(stages):
    started, urls = stages
    gateway = started["gateway"].port
    items, scores = expected_recommendation()

    status, answer = infer(gateway)
    assert status == 200, answer
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["items"]["data"] == items and outputs["items"]["shape"] == [2, 3]
    assert outputs["scores"]["data"] == pytest.approx(scores)
    assert items[:3] != items[3:]  # the two users' tastes really differ

    started["predict"].kill()
    status, answer = infer(gateway)
    assert status == 503 and "'predict'" in answer["error"], answer

    started["predict"].start({})
    started["predict"].wait_ready()
    status, answer = infer(gateway)
    assert status == 200, answer
    assert {o["name"]: o for o in answer["outputs"]}["items"]["data"] == items
