"""Train the example's digit classifier on scikit-learn's bundled 8x8 digits and export it to ONNX.

Run from this folder: ``python train.py`` (needs scikit-learn and skl2onnx; the function itself
needs neither: it serves model/digits.onnx with onnxruntime, which starts ~5x faster than
scikit-learn, see docs/targets/serverless.md). The ONNX file is small (a few KB) and committed.
Pixels are scaled to 0..1 (the bundled data is 0..16) so preprocess.py and the model agree.
"""

from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main() -> None:
    images, labels = load_digits(return_X_y=True)
    pixels = (images / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=2000).fit(pixels, labels)
    onnx_model = to_onnx(model, pixels[:1], options={id(model): {"zipmap": False}},
                         initial_types=None, target_opset=17)
    onnx_model.graph.input[0].name = "pixels"  # the name preprocess.py feeds
    for node in onnx_model.graph.node:
        node.input[:] = ["pixels" if name == "X" else name for name in node.input]
    (HERE / "model").mkdir(exist_ok=True)
    (HERE / "model" / "digits.onnx").write_bytes(onnx_model.SerializeToString())
    print(f"training accuracy {model.score(pixels, labels):.3f}")


if __name__ == "__main__":
    main()
