"""What the tests share: where things are, finding the real checkers, free ports, stopping what a
test started, and running mlgen as a user does (the library, or the command line in a subprocess).

Real checkers (systemd-analyze, shellcheck, kubectl, ...) are found through `require_tool`: on a
developer machine a missing one skips its test with the reason; in CI (`MLGEN_REQUIRE_TOOLS=1`, set
by .ci/run) a missing one fails, so no check is silently skipped."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RUNTIME_SRC = ROOT / "generator" / "runtime"
# Large checkers (checkov, aws-sam-cli, awscli, azure-cli) live in virtual environments of their
# own, made by scripts/test, so their pinned dependencies never fight the project's.
TOOLS_DIR = Path(os.environ.get("MLGEN_TOOLS_DIR", Path.home() / ".cache" / "mlgen-tools"))
REQUIRE_TOOLS = os.environ.get("MLGEN_REQUIRE_TOOLS") == "1"


def require_tool(name: str) -> str:
    """Path of the executable `name`, or skip (fail in CI) when it is not installed."""
    found = shutil.which(name) or _venv_tool(name)
    if found:
        return found
    message = f"{name} is not installed (./scripts/test installs it)"
    if REQUIRE_TOOLS:
        pytest.fail(message)
    pytest.skip(message)


def _venv_tool(name: str) -> str | None:
    candidates = [Path(sys.executable).parent / name, *sorted(TOOLS_DIR.glob(f"*/bin/{name}"))]
    found = next((c for c in candidates if c.exists()), None)
    return str(found) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process, timeout: float = 30) -> int:
    """Stop a server this test started, by its own pid: SIGTERM (so it drains), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_ready(base_url: str, process, deadline_s: float = 60) -> None:
    """Poll BASE_URL/v2/health/ready until it answers 200; fail if `process` exits first."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        assert process.poll() is None, f"the server exited ({process.returncode}) before it was ready"
        time.sleep(0.1)
    raise AssertionError(f"{base_url} was not ready within {deadline_s} s")


def render_spec(spec: Path, target: str, out: Path, **render_options) -> Path:
    """Render `spec` for `target` into out/<target> through the library (what `mlgen render`
    does, `sets` as its --set arguments) and return that folder."""
    from mlgen import output
    from mlgen.plan import parse_back, plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    model = load_spec(spec, sets=tuple(render_options.get("sets", ())))
    plan = plan_target(model, target, Renderer(render_options.get("templates")))
    parse_back(plan)
    dest = out / target
    output.write(plan.files, dest, model.spec_digest, force=render_options.get("force", False))
    return dest


def run_mlgen(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run the real command line in a subprocess: exit code, stdout and stderr as a user sees them.
    It runs in a scratch folder unless told otherwise, so a relative path can never write into
    the source tree."""
    return subprocess.run([sys.executable, "-m", "mlgen", *map(str, args)], cwd=cwd or _scratch(),
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


_SCRATCH: list[Path] = []


def _scratch() -> Path:
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="mlgen-tests-")))
        atexit.register(shutil.rmtree, _SCRATCH[0], ignore_errors=True)
    return _SCRATCH[0]


def send_json(handler, document: dict, status: int = 200) -> None:
    """Answer the request a test server's BaseHTTPRequestHandler is handling with a JSON document."""
    import json

    body = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
