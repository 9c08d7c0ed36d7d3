"""`mlgen serve`: lay out the bundle's app/ folder in a temporary directory and run the runtime
from it exactly as a deployed service would (same files, same command), for local development."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mlgen.bundle import requirements, write_app
from mlgen.errors import Problem, UsageError
from mlgen.spec import ServiceModel
from mlgen.spec.distributions import IMPORTS, project_name


def serve_spec(model: ServiceModel, *, host: str, port: int | None, stage: str) -> int:
    missing = missing_requirements(model)
    if missing:
        command = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "pip", "install", *missing))
        raise UsageError(Problem(f"serving {model.name} here needs {', '.join(project_name(r) for r in missing)}, "
                                 "which the Python running mlgen does not have", str(model.spec_path),
                                 hint=f"install them with: {command}"))
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


def missing_requirements(model: ServiceModel) -> list[str]:
    """The bundle's requirements (the runtime's and the model's, as the bundle pins them) that no
    installed distribution here provides: the runtime would fail on its first import of each."""
    from importlib import metadata

    def installed(name: str) -> bool:
        try:
            metadata.distribution(name)
            return True
        except metadata.PackageNotFoundError:
            return False

    missing = []
    for requirement in requirements(model):
        if not _applies(requirement):
            continue
        name = project_name(requirement)
        # onnxruntime-gpu's import is onnxruntime's: either build serves locally.
        alternatives = next((choices for choices in IMPORTS.values() if name in choices), (name,))
        if not any(installed(choice) for choice in alternatives):
            missing.append(requirement)
    return missing


def _applies(requirement: str) -> bool:
    """Whether a requirement's environment marker holds here (true when it cannot be evaluated)."""
    if ";" not in requirement:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:
        return True
    return Marker(requirement.split(";", 1)[1]).evaluate()
