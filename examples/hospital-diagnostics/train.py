"""Train the hospital-diagnostics example's model on scikit-learn's bundled breast-cancer data
(Wisconsin diagnostic: 569 biopsies, 30 cell-nucleus measurements each).

Run from this folder: ``python train.py``. The model is small (a few KB) and committed, so the
example renders and serves without training; rerun this after upgrading scikit-learn (pinned in
spec.yaml's runtime.requirements) and update model.sha256 in spec.yaml with the sha256 it prints.
"""

import hashlib
from pathlib import Path

import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model" / "model.joblib"


def main() -> None:
    features, labels = load_breast_cancer(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.25, random_state=0, stratify=labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train_x, train_y)
    print(f"held-out accuracy: {model.score(test_x, test_y):.3f}")
    MODEL.parent.mkdir(exist_ok=True)
    joblib.dump(model, MODEL)
    print(f"sha256: {hashlib.sha256(MODEL.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
