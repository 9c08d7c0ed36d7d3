"""The metric names the alert rules and dashboards use are exactly those the runtime exports: a
server started from a rendered app/ (127.0.0.1, free port) is scraped after a request, and every
runtime metric a rule or panel names is there with the type the monitoring module expects."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import yaml

from helpers import EXAMPLES, free_port, render_spec, stop_process
from mlgen.monitoring import RUNTIME_METRICS, metric_names

READY_DEADLINE_S = 60


def _get(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def test_every_metric_the_rules_and_dashboard_name_is_exported(tmp_path) -> None:
    bundle = render_spec(EXAMPLES / "iris" / "spec.yaml", "onprem", tmp_path)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlgen_runtime", "serve", "--config", "serving.json",
                               "--host", "127.0.0.1", "--port", str(port)], cwd=bundle / "app",
                              env={**os.environ, "PYTHONPATH": str(bundle / "app")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while _get(f"{base}/v2/health/ready")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        request = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
        assert _get(f"{base}/v2/models/iris/infer", json.dumps(request).encode())[0] == 200
        status, text = _get(f"{base}/metrics")
        assert status == 200
    finally:
        stop_process(server)
    exported = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text.decode(), re.MULTILINE))
    assert {name: exported.get(name) for name in RUNTIME_METRICS} == RUNTIME_METRICS
    # The series the rules' selectors need after one inference request.
    assert re.search(r'^mlgen_requests_total\{route="v2_infer",stage="all",status="200"\} 1$', text.decode(), re.MULTILINE)
    assert re.search(r'^mlgen_request_duration_seconds_bucket\{route="v2_infer",stage="all",le="\+Inf"\} 1$', text.decode(), re.MULTILINE)
    assert re.search(r'^mlgen_model_ready\{stage="all"\} 1$', text.decode(), re.MULTILINE)

    monitoring = bundle / "monitoring"
    used = set()
    for rule in yaml.safe_load(next(monitoring.glob("*.rules.yml")).read_text())["groups"][0]["rules"]:
        used |= metric_names(rule["expr"])
    for panel in json.loads((monitoring / "dashboard.json").read_text())["panels"]:
        for target in panel.get("targets", ()):
            used |= metric_names(target["expr"])
    runtime_used = {name for name in used if name.startswith("mlgen_")}
    assert runtime_used and runtime_used <= set(exported), runtime_used - set(exported)
