"""End to end without a cluster, as the Deployment tests do: the recsys example rendered for KServe
and for Knative, each container started as a local process with exactly the command and environment
its platform would give it (KServe: the ServingRuntime's container for the predictor; the
transformer's gateway with the arguments KServe appends, and its sidecars), answers the model's
recommendation through the entry point. The KEDA query and the Prometheus Adapter's rule are
evaluated by a real Prometheus scraping a running runtime labelled as the ServiceMonitor labels it.
Only what a laptop cannot have changes: the host (127.0.0.1), free ports, and the stage URLs."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, free_port, require_tool, stop_process
from test_target_kubernetes_e2e import Stage, expected_recommendation, infer
from test_target_kubernetes_flavors import render_with

EXAMPLE = EXAMPLES / "recsys-microservices" / "spec.yaml"
IRIS = EXAMPLES / "iris" / "spec.yaml"
QUERY_WITHIN_S = 90  # a bound, not a measurement: Prometheus needs two scrapes of a changed counter


def objects(bundle: Path) -> list[dict]:
    return [d for p in sorted((bundle / "base").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def as_pod(container: dict, component: str) -> dict:
    """A container in the shape Stage reads (a Deployment's), labelled with its stage."""
    return {"metadata": {"labels": {"app.kubernetes.io/component": component}},
            "spec": {"template": {"spec": {"containers": [container]}}}}


class ShellStage(Stage):
    """KServe's transformer container: /bin/sh -c SCRIPT NAME, then the arguments KServe appends to
    a transformer's args (kserve pkg/apis/serving/v1beta1/transformer_custom.go, GetContainer)."""

    def __init__(self, pod: dict, bundle: Path, logs: Path, appended: list[str]):
        super().__init__(pod, bundle, logs)
        shell, flag, script, *rest = self.command
        assert (shell, flag) == ("/bin/sh", "-c"), self.command
        words = [self._local(word, bundle) for word in script.removeprefix("exec ").split(" ")]
        self.script_words, self.rest = words, [*rest, *appended]

    def start(self, stage_urls: dict[str, str]) -> None:
        words = list(self.script_words)
        words[words.index("--port") + 1] = str(self.port)
        config = words[words.index("--config") + 1]
        env = {**os.environ, **self.env, "PYTHONPATH": str(Path(config).parent),
               **{f"MLGEN_STAGE_URL_{stage.upper()}": url for stage, url in stage_urls.items()}}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(["/bin/sh", "-c", "exec " + " ".join(words), *self.rest],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)


def run_and_ask(stages: dict[str, Stage], entry: str, urls: dict[str, str]) -> None:
    try:
        for stage in stages.values():
            stage.start(urls if stage.name == entry else {})
        for stage in stages.values():
            stage.wait_ready()
        status, answer = infer(stages[entry].port)
        assert status == 200, answer
        items, scores = expected_recommendation()
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["items"]["data"] == items and outputs["scores"]["data"] == pytest.approx(scores)
        # What the PodMonitor and the prometheus.io annotations point at: the runtime's metrics.
        with urllib.request.urlopen(f"http://127.0.0.1:{stages[entry].port}/metrics", timeout=10) as reply:
            assert b'mlgen_requests_total{route="v2_infer",stage="gateway",status="200"} 1' in reply.read()
    finally:
        for stage in stages.values():
            stage.stop()


def test_kserve_predictor_and_transformer_answer_through_the_transformer(tmp_path):
    bundle = render_with(tmp_path, EXAMPLE, ["targets.kubernetes.flavor=kserve"], "kserve")
    found = objects(bundle)
    (runtime,) = [d for d in found if d["kind"] == "ServingRuntime"]
    (isvc,) = [d for d in found if d["kind"] == "InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    # The predictor runs the ServingRuntime's container unchanged: the model names no command, args or env.
    assert model["runtime"] == runtime["metadata"]["name"] and not {"command", "args", "env"} & set(model)
    (predictor,) = runtime["spec"]["containers"]
    gateway, *sidecars = isvc["spec"]["transformer"]["containers"]
    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    appended = ["--model_name", name, "--predictor_host", f"{name}-predictor.{namespace}", "--http_port", "8080"]
    stages = {"predict": Stage(as_pod(predictor, "predict"), bundle, tmp_path),
              "gateway": ShellStage(as_pod(gateway, "gateway"), bundle, tmp_path, appended),
              **{c["name"]: Stage(as_pod(c, c["name"]), bundle, tmp_path) for c in sidecars}}
    assert sorted(stages) == ["gateway", "postprocess", "predict", "preprocess"]
    # serving.json sends the transformer to its sidecars on the loopback and to KServe's predictor Service.
    rendered = json.loads((bundle / "app" / "serving.json").read_text())["pipeline"]["stage_urls"]
    assert rendered == {"predict": f"http://{name}-predictor", **{
        c["name"]: f"http://127.0.0.1:{c['command'][c['command'].index('--port') + 1]}" for c in sidecars}}
    urls = {stage: f"http://127.0.0.1:{s.port}" for stage, s in stages.items() if stage != "gateway"}
    run_and_ask(stages, "gateway", urls)


def test_knative_services_answer_through_the_public_one(tmp_path):
    bundle = render_with(tmp_path, EXAMPLE, ["targets.kubernetes.flavor=knative", "targets.kubernetes.autoscaling=requests",
                                             "scaling.min_replicas=0"], "knative")
    services = [d for d in objects(bundle) if d["apiVersion"] == "serving.knative.dev/v1"]
    stages = {s.name: s for s in (Stage(d, bundle, tmp_path) for d in services)}
    assert sorted(stages) == ["gateway", "postprocess", "predict", "preprocess"]
    # Knative routes each Service by its name on port 80.
    rendered = json.loads((bundle / "app" / "serving.json").read_text())["pipeline"]["stage_urls"]
    assert rendered == {stage: f"http://recsys-{stage}" for stage in ("preprocess", "predict", "postprocess")}
    run_and_ask(stages, "gateway", {stage: f"http://127.0.0.1:{s.port}" for stage, s in stages.items() if stage != "gateway"})


def prometheus_query(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_keda_query_and_adapter_rule_read_what_a_running_runtime_exports(tmp_path):
    """A Prometheus scraping the iris server as the ServiceMonitor would label it (namespace,
    service, pod) finds a request rate above zero with the ScaledObject's own query, and the
    Prometheus Adapter's rule (its <<.Series>> template filled in as the adapter does) finds the
    in-flight gauge per pod."""
    prometheus = require_tool("prometheus")
    keda_bundle = render_with(tmp_path, IRIS, ["targets.kubernetes.autoscaling=keda"], "keda")
    requests_bundle = render_with(tmp_path, IRIS, ["targets.kubernetes.autoscaling=requests"], "requests")
    (scaled,) = [d for d in objects(keda_bundle) if d["kind"] == "ScaledObject"]
    (trigger,) = scaled["spec"]["triggers"]
    (deployment,) = [d for d in objects(keda_bundle) if d["kind"] == "Deployment"]
    rule = yaml.safe_load((requests_bundle / "prometheus-adapter.yaml").read_text())["rules"]["custom"][0]
    (hpa,) = [d for d in objects(requests_bundle) if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]

    server = Stage(deployment, keda_bundle, tmp_path)
    prom_port = free_port()
    labels = {"namespace": scaled["metadata"]["namespace"], "service": deployment["metadata"]["name"],
              "pod": f"{deployment['metadata']['name']}-0", "job": "iris"}
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "iris", "static_configs": [
                  {"targets": [f"127.0.0.1:{server.port}"], "labels": labels}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
    process = None
    try:
        server.start({})
        server.wait_ready()
        process = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                   stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
        series = rule["metricsQuery"].replace("<<.Series>>", rule["seriesQuery"].split("{")[0]).replace(
            "<<.LabelMatchers>>", f'namespace="{labels["namespace"]}",pod="{labels["pod"]}"').replace("<<.GroupBy>>", "pod")
        deadline, rate, in_flight = time.monotonic() + QUERY_WITHIN_S, [], []
        while time.monotonic() < deadline and not (rate and float(rate[0]["value"][1]) > 0 and in_flight):
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v2/models/iris/infer",
                                             json.dumps(body).encode(), {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200
            time.sleep(0.5)
            try:
                rate = prometheus_query(prom_port, trigger["metadata"]["query"])
                in_flight = prometheus_query(prom_port, series)
            except OSError:
                continue  # Prometheus is still starting
        assert rate and float(rate[0]["value"][1]) > 0, f"the KEDA query found no request rate: {rate}"
        assert [r["metric"]["pod"] for r in in_flight] == [labels["pod"]], in_flight
    finally:
        if process:
            stop_process(process)
        server.stop()
    # The rendered query names exactly the runtime's counter and route, as the runtime exports them.
    assert 'mlgen_requests_total{' in trigger["metadata"]["query"] and 'route="v2_infer"' in trigger["metadata"]["query"]
