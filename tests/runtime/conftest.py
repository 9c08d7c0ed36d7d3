"""Fixtures for the runtime tests: bundle app/ folders (session-scoped: training and exporting a model
once is enough) and servers started as real processes, stopped by their own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import RUNTIME_SRC, free_port

from . import apps

READY_DEADLINE_S = 30


class Server:
    """`python -m mlgen_runtime serve` in a subprocess, the way a bundle's unit or Dockerfile runs it."""

    def __init__(self, config: Path, stage: str = "all", env: dict | None = None, port: int | None = None):
        self.config, self.stage = config, stage
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"server-{stage}-{self.port}.log"
        environment = {**os.environ, "PYTHONPATH": str(RUNTIME_SRC), **(env or {})}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlgen_runtime", "serve", "--config", str(config), "--host", "127.0.0.1",
                 "--port", str(self.port), "--stage", stage],
                cwd=config.parent, env=environment, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, path: str = "/v2/health/ready", deadline_s: float = READY_DEADLINE_S) -> "Server":
        import requests  # the modules that start servers importorskip it first

        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not answering 200 on {path} within {deadline_s}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def start_server():
    """Start servers inside a test; every one is stopped (by its pid) at teardown."""
    started: list[Server] = []

    def start(config: Path, stage: str = "all", env: dict | None = None, port: int | None = None) -> Server:
        server = Server(config, stage, env, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def iris():
    return apps.iris_estimator()


@pytest.fixture(scope="session")
def sklearn_config(tmp_path_factory, iris) -> Path:
    return apps.sklearn_app(tmp_path_factory.mktemp("sklearn-app"), iris[0])


@pytest.fixture(scope="session")
def sklearn_server(sklearn_config):
    server = Server(sklearn_config).wait()
    yield server
    server.stop()

