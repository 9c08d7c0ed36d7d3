#!/usr/bin/env python3
"""What model.uri costs an on-prem service: start to ready of the onprem unit's command for iris with
the model in app/ (model.path), fetched from a local S3 store (moto's server) into an empty cache
(cold), and found in the cache a previous start filled (warm), alternated; medians side by side.
With --bundle-sizes, also the offline bundle (build-offline-bundle.sh's archive) of the example
with the largest model, rendered with model.path and with model.uri (the uri bundle still carries
the model, fetched into model-cache/, and the store's SDK wheels besides).

Usage: python bench/model_fetch_start.py [--runs 7] [--bundle-sizes]
Needs moto_server on PATH (or in ~/.cache/mlgen-tools/*/bin), boto3 and scikit-learn in this Python;
--bundle-sizes reaches the package index. A benchmark, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
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
IRIS = ROOT / "examples" / "iris"
TOOLS = Path(os.environ.get("MLGEN_TOOLS_DIR", Path.home() / ".cache" / "mlgen-tools"))
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start_s3(folder: Path) -> tuple[subprocess.Popen, dict]:
    moto = shutil.which("moto_server") or next((str(p) for p in sorted(TOOLS.glob("*/bin/moto_server"))), None)
    if not moto:
        raise SystemExit("moto_server is not installed (./scripts/test installs it)")
    port = free_port()
    process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_port(port)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="iris/model.joblib", Body=(IRIS / "model" / "model.joblib").read_bytes())
    return process, env


def spec_copy(example: Path, folder: Path, uri: str | None) -> Path:
    """examples/<example> for this Python, its model by model.uri when `uri` is given."""
    shutil.copytree(example, folder, ignore=shutil.ignore_patterns("spec.lock.json", "__pycache__"))
    data = yaml.safe_load((folder / "spec.yaml").read_text())
    data["runtime"]["python"] = THIS_PYTHON
    if uri:
        data["model"].pop("path")
        data["model"]["uri"] = uri
    (folder / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "spec.yaml"


def render_onprem(spec: Path, out: Path) -> Path:
    from mlgen import output
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    model = load_spec(spec)
    output.write(plan_target(model, "onprem", Renderer()).files, out / "onprem", model.spec_digest)
    return out / "onprem"


def unit_command(bundle: Path, port: int) -> tuple[list[str], dict]:
    """The unit's ExecStart and Environment=, run from the bundle with this Python instead of the venv."""
    unit = (bundle / "iris.service").read_text()
    exec_start = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start)
    argv[0], argv[argv.index("--config") + 1] = sys.executable, str(bundle / "app" / "serving.json")
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = "127.0.0.1", str(port)
    env = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            env.update(word.split("=", 1) for word in shlex.split(line.split("=", 1)[1]))
    env["PYTHONPATH"] = str(bundle / "app")
    return argv, env


def start_to_ready(bundle: Path, env: dict) -> float:
    port = free_port()
    argv, unit_env = unit_command(bundle, port)
    started = time.monotonic()
    process = subprocess.Popen(argv, env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), **unit_env, **env},
                               cwd=bundle / "app", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{argv} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


def start_times(runs: int, work: Path) -> None:
    store, store_env = start_s3(work)
    try:
        path_bundle = render_onprem(spec_copy(IRIS, work / "path-spec", None), work / "path-out")
        uri_bundle = render_onprem(spec_copy(IRIS, work / "uri-spec", "s3://models/iris/model.joblib"), work / "uri-out")
        times: dict[str, list[float]] = {"model.path": [], "uri, cold cache": [], "uri, warm cache": []}
        for run in range(runs):
            cache = work / f"cache-{run}"  # empty: the start fetches into it, the next start finds it there
            times["model.path"].append(start_to_ready(path_bundle, {}))
            times["uri, cold cache"].append(start_to_ready(uri_bundle, {**store_env, "MLGEN_MODEL_CACHE": str(cache)}))
            times["uri, warm cache"].append(start_to_ready(uri_bundle, {**store_env, "MLGEN_MODEL_CACHE": str(cache)}))
    finally:
        store.terminate()
        store.wait()
    base = statistics.median(times["model.path"])
    print(f"start to ready of the onprem unit's command, iris, {runs} runs each (median, min-max, x model.path):")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:16} {median * 1000:7.0f} ms  ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})  x{median / base:.2f}")


def bundle_sizes(work: Path) -> None:
    """The offline archive of the example with the largest model file, with model.path and model.uri."""
    example = max((p for p in (ROOT / "examples").iterdir() if (p / "model").is_dir()),
                  key=lambda p: max(f.stat().st_size for f in (p / "model").rglob("*") if f.is_file()))
    data = yaml.safe_load((example / "spec.yaml").read_text())
    model_file = example / data["model"]["path"]
    store, store_env = start_s3(work)
    try:
        import boto3

        boto3.client("s3", endpoint_url=store_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").put_object(
            Bucket="models", Key=f"{example.name}/{model_file.name}", Body=model_file.read_bytes())
        sizes = {}
        for label, uri in (("model.path", None), ("model.uri", f"s3://models/{example.name}/{model_file.name}")):
            bundle = render_onprem(spec_copy(example, work / f"{label}-spec", uri), work / f"{label}-out")
            archive = work / f"{label}.tar.gz"
            subprocess.run([str(bundle / "build-offline-bundle.sh"), "--output", str(archive)], check=True,
                           env={**os.environ, **store_env}, stdout=subprocess.DEVNULL)
            wheels = sum(f.stat().st_size for f in (bundle / "wheelhouse").glob("*.whl"))
            model = sum(f.stat().st_size for f in (bundle / "model-cache").rglob("*") if f.is_file()) \
                if uri else model_file.stat().st_size
            sizes[label] = (archive.stat().st_size, wheels, model)
    finally:
        store.terminate()
        store.wait()
    print(f"offline bundle of {example.name} (model {model_file.name}, {model_file.stat().st_size} bytes, "
          f"sha256 {hashlib.sha256(model_file.read_bytes()).hexdigest()[:12]}…), onprem for Python {THIS_PYTHON}:")
    for label, (archive, wheels, model) in sizes.items():
        print(f"  {label:10} archive {archive / 2**20:6.1f} MiB   wheels {wheels / 2**20:6.1f} MiB   model carried {model} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bundle-sizes", action="store_true", help="also build both offline bundles (reaches the index)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlgen-bench-") as folder:
        start_times(args.runs, Path(folder))
        if args.bundle_sizes:
            bundle_sizes(Path(folder) / "sizes")


if __name__ == "__main__":
    main()
