"""Train the iris example's model: a logistic regression on scikit-learn's bundled iris data.

Run from this folder: ``python train.py``. The model is small (a few KB) and committed, so the
example renders and serves on a fresh machine without training; rerun this after upgrading
scikit-learn (pinned in spec.yaml's runtime.requirements) so the pickle matches the version served.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main() -> None:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features.astype("float32"), labels)
    joblib.dump(model, HERE / "model" / "model.joblib")


if __name__ == "__main__":
    main()
