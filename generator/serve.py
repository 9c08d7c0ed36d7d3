"""`mlgen serve`: lay out the bundle's app/ folder in a temporary directory and run the runtime
from it exactly as a deployed service would (same files, same command), for local development."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mlgen.bundle import write_app
from mlgen.spec import ServiceModel


def serve_spec(model: ServiceModel, *, host: str, port: int | None, stage: str) -> int:
    with tempfile.TemporaryDirectory(prefix=f"mlgen-serve-{model.name}-") as folder:
        app = write_app(model, Path(folder))
        command = [sys.executable, "-m", "mlgen_runtime", "serve", "--config", str(app / "serving.json"),
                   "--host", host, "--port", str(port if port is not None else model.runtime.port), "--stage", stage]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(app), os.environ.get("PYTHONPATH")]))}
        server = subprocess.Popen(command, cwd=app, env=env)
        # Pass SIGTERM/SIGINT on so the runtime drains in-flight requests, then clean up.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda received, _frame: server.send_signal(received))
        code = server.wait()
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
