#!/usr/bin/env python3
"""Start to ready of each recsys stage, the part of a scale-from-zero cold start that is mlgen's:
the container's command (from the rendered Deployment) started as a new process until its readiness
path answers 200, side by side with a bare uvicorn serving a trivial ASGI app (the floor any Python
server pays). Image pull, scheduling and the platform's own proxies come on top on a cluster.

Usage: python bench/kubernetes_start_to_ready.py [--runs 5]
A benchmark, not a test: it prints medians and ratios; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "examples" / "recsys-microservices" / "spec.yaml"
BARE_APP = ("async def app(scope, receive, send):\n"
            "    if scope['type'] == 'http':\n"
            "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
            "        await send({'type': 'http.response.body', 'body': b''})\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_to_ready(command: list[str], env: dict, port: int, path: str) -> float:
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as reply:
                    if reply.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


def stage_commands(out: Path) -> dict[str, tuple[list[str], str]]:
    from mlgen import output
    from mlgen.plan import parse_back, plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    model = load_spec(EXAMPLE)
    plan = plan_target(model, "kubernetes", Renderer())
    parse_back(plan)
    output.write(plan.files, out, model.spec_digest)
    found = {}
    for path in sorted((out / "base").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Deployment":
                (container,) = document["spec"]["template"]["spec"]["containers"]
                command = [sys.executable if word == "python" else str(out / "app" / word.removeprefix("/app/"))
                           if word.startswith("/app/") else word for word in container["command"]]
                found[document["metadata"]["labels"]["app.kubernetes.io/component"]] = (
                    command, container["readinessProbe"]["httpGet"]["path"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        base = {**os.environ, "PYTHONPATH": tmp}
        medians = {"bare uvicorn": statistics.median(
            start_to_ready([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port := free_port())],
                           base, port, "/") for _ in range(runs))}
        out = Path(tmp) / "kubernetes"
        # The gateway does not wait for its stages to be ready (its probe is /v2/health/live).
        env = {**os.environ, "PYTHONPATH": str(out / "app"),
               **{f"MLGEN_STAGE_URL_{s}": "http://127.0.0.1:9" for s in ("PREPROCESS", "PREDICT", "POSTPROCESS")}}
        for stage, (command, path) in stage_commands(out).items():
            times = []
            for _ in range(runs):
                port = free_port()
                local = list(command)  # only the host and port change on one machine
                local[local.index("--port") + 1], local[local.index("--host") + 1] = str(port), "127.0.0.1"
                times.append(start_to_ready(local, env, port, path))
            medians[stage] = statistics.median(times)
    floor = medians["bare uvicorn"]
    for name, seconds in medians.items():
        print(f"{name:>12}: {seconds:6.2f} s  ({seconds / floor:4.1f}x bare uvicorn)")


if __name__ == "__main__":
    main()
