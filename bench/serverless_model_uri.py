#!/usr/bin/env python3
"""What fetching the model (`model.uri`) costs a Lambda function: the cold start of the rendered
handler as a whole new process (interpreter, imports, model load) with the digits model in the
package, fetched from S3 (moto's server on 127.0.0.1, so the transfer of a real region is not in
it), and found in /tmp's cache as a warm environment would; with --zip, the size of build.sh's
zip for each.

Usage: python bench/serverless_model_uri.py [--runs 7] [--zip]
  --zip  also run both bundles' build.sh (downloads Lambda wheels from PyPI) and print their sizes
A benchmark, not a test: it prints medians; nothing asserts a time. Needs moto's server (moto_server).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "examples" / "image-classifier-serverless"
MODEL = EXAMPLE / "model" / "digits.onnx"
KEY = "digits/1.0.0/digits.onnx"
IMPORT = ("import importlib.util, sys\nspec = importlib.util.spec_from_file_location('handler', sys.argv[1])\n"
          "spec.loader.exec_module(importlib.util.module_from_spec(spec))")
# moto's well-known dummy keys: the store is a local emulator, nothing here is a credential.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def render(spec: Path, out: Path) -> Path:
    from mlgen import output
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    model = load_spec(spec)
    output.write(plan_target(model, "serverless", Renderer()).files, out, model.spec_digest)
    return out


def uri_variant(folder: Path) -> Path:
    """The example with its model named by an S3 URI instead of carried."""
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "model"))
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    del spec["model"]["path"]
    spec["model"].update(uri=f"s3://models/{KEY}", sha256=hashlib.sha256(MODEL.read_bytes()).hexdigest(), max_size="16Mi")
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "spec.yaml"


def start_moto(work: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = shutil.which("moto_server") or sys.exit("moto_server is not installed (pip install 'moto[server]')")
    process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=(work / "moto.log").open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    for _ in range(100):
        try:
            client.create_bucket(Bucket="models")
            break
        except Exception:  # not listening yet
            time.sleep(0.1)
    client.put_object(Bucket="models", Key=KEY, Body=MODEL.read_bytes())
    return process, url


def cold_start(handler: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT, str(handler)], cwd=handler.parent, check=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--zip", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlgen-bench-uri-"))
    moto, url = start_moto(work)
    try:
        carried = render(EXAMPLE / "spec.yaml", work / "path")
        fetched = render(uri_variant(work / "uri-spec"), work / "uri")
        env = {**S3_ENV, "AWS_ENDPOINT_URL": url}
        times: dict[str, list[float]] = {"model in the package": [], "model fetched from S3": [], "model found in /tmp": []}
        for _ in range(args.runs):
            times["model in the package"].append(cold_start(carried / "handler.py", {}))
            tmp = work / "tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            times["model fetched from S3"].append(cold_start(fetched / "handler.py", {**env, "TMPDIR": str(tmp)}))
            times["model found in /tmp"].append(cold_start(fetched / "handler.py", {**env, "TMPDIR": str(tmp)}))
        print(f"Lambda handler cold start (import + model), median of {args.runs}:")
        for name, values in times.items():
            print(f"  {name:<24} {statistics.median(values):.3f} s  (min {min(values):.3f}, max {max(values):.3f})")
        if args.zip:
            for name, bundle in (("model in the package", carried), ("model fetched from S3", fetched)):
                subprocess.run(["./build.sh"], cwd=bundle, check=True, capture_output=True)
                unzipped = sum(p.stat().st_size for p in (bundle / "build" / "package").rglob("*") if p.is_file())
                zipped = (bundle / "build" / "function.zip").stat().st_size
                print(f"  zip, {name:<24} {zipped / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped")
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
