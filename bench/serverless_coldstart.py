#!/usr/bin/env python3
"""Cold start of each provider's function handler, as a whole new process: interpreter start +
import + model load + first prediction, for the example's digit classifier in ONNX and the same
model in scikit-learn, side by side with bare onnxruntime and bare scikit-learn doing the same.

Usage: python bench/serverless_coldstart.py [--runs 5] [--zip]
  --zip  also run the AWS bundles' build.sh (downloads Lambda wheels from PyPI) and print sizes
A benchmark, not a test: it prints medians and ratios; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
PIXELS = json.dumps([0, 0, 5, 13, 9, 1, 0, 0] * 8)
REQUEST = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [PIXELS]}]}

CALL = {  # one first request through each provider's entry point, in a fresh interpreter
    "aws": "import handler; r = handler.handler(REQUEST, None); assert r['statusCode'] == 200, r",
    "gcp": ("import main, flask; app = flask.Flask('bench')\n"
            "with app.test_request_context('/v2/models/digits/infer', method='POST', data=BODY,"
            " content_type='application/json'):\n"
            "    body, status, headers = main.serve(flask.request)\n"
            "assert status == 200, body"),
    "azure": ("import function_app, azure.functions as func\n"
              "serve = function_app.app.get_functions()[0].get_user_function()\n"
              "r = serve(func.HttpRequest('POST', 'http://x/v2/models/digits/infer', headers={}, params={},"
              " route_params={}, body=BODY))\nassert r.status_code == 200, r.get_body()"),
}
BARE = {
    "bare onnxruntime": ("import numpy as np, onnxruntime as rt\n"
                         "s = rt.InferenceSession(MODEL, providers=['CPUExecutionProvider'])\n"
                         "s.run(None, {'pixels': np.zeros((1, 64), np.float32)})"),
    "bare scikit-learn": "import joblib, numpy as np\nm = joblib.load(MODEL)\nm.predict_proba(np.zeros((1, 64)))",
}


def sklearn_variant(folder: Path) -> Path:
    """The example with the same classifier as a scikit-learn joblib file instead of ONNX."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    images, labels = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit((images / 16.0).astype(np.float32), labels)
    joblib.dump(model, folder / "model" / "digits.joblib")
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    spec["model"].update(format="sklearn", path="model/digits.joblib")
    spec["model"].pop("sha256")
    spec["model"]["outputs"] = [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 10]}]
    spec["runtime"]["requirements"] = ["scikit-learn", "pillow==13.0.0"]
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "spec.yaml"


def render(spec: Path, provider: str, out: Path) -> Path:
    from mlgen import output
    from mlgen.plan import plan_target
    from mlgen.render import Renderer
    from mlgen.spec import load_spec

    data = yaml.safe_load(spec.read_text())
    data["targets"]["serverless"]["provider"] = provider
    variant = spec.with_name(f"spec-{provider}.yaml")
    variant.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = plan_target(load_spec(variant), "serverless", Renderer())
    output.write(plan.files, out, "bench", force=True)
    return out


def cold_start(code: str, cwd: Path, runs: int, **names) -> float:
    prelude = "".join(f"{key} = {value!r}\n" for key, value in names.items())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, check=True,
                       env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--zip", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlgen-coldstart-"))
    specs = {"onnx": EXAMPLE / "spec.yaml", "sklearn": sklearn_variant(work / "sklearn-example")}
    onnx_spec = work / "onnx-example"
    shutil.copytree(EXAMPLE, onnx_spec, ignore=shutil.ignore_patterns("__pycache__"))
    specs["onnx"] = onnx_spec / "spec.yaml"
    body = json.dumps(REQUEST).encode()
    print(f"median of {args.runs} fresh processes, {sys.executable} {sys.version.split()[0]}")
    baseline = cold_start(BARE["bare onnxruntime"], work, args.runs, MODEL=str(EXAMPLE / "model" / "digits.onnx"))
    print(f"{'bare onnxruntime':28s} {baseline:6.2f} s   1.00x")
    bare_sk = cold_start(BARE["bare scikit-learn"], work, args.runs, MODEL=str(work / "sklearn-example" / "model" / "digits.joblib"))
    print(f"{'bare scikit-learn':28s} {bare_sk:6.2f} s   {bare_sk / baseline:4.2f}x")
    for fmt, spec in specs.items():
        for provider in ("aws", "gcp", "azure"):
            bundle = render(spec, provider, work / f"{fmt}-{provider}")
            seconds = cold_start(CALL[provider], bundle, args.runs, REQUEST=REQUEST, BODY=body)
            print(f"{provider + ' handler, ' + fmt:28s} {seconds:6.2f} s   {seconds / baseline:4.2f}x")
            if args.zip and provider == "aws":
                built = subprocess.run(["bash", "build.sh"], cwd=bundle, capture_output=True, text=True)
                print("    " + (built.stdout.strip() or built.stderr.strip()[-400:]))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
