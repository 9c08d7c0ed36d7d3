"""Train the shop's recommender: from what a customer bought per product category in the last
90 days, which category to recommend on their next visit.

scikit-learn bundles no shop data, so baskets are simulated with a fixed seed: eight categories
in four pairs that sell together (phones and cases, coffee and mugs, ...); each customer buys
mostly within one pair and next buys its other half. Run from this folder: ``python train.py``
(the model is committed; rerun it after upgrading scikit-learn, pinned in spec.yaml, and update
model.sha256 in spec.yaml).
"""

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
CATEGORIES = ("phones", "phone-cases", "coffee", "mugs", "running-shoes", "sports-socks", "books", "reading-lamps")
CUSTOMERS = 4000


def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    pairs = rng.integers(0, len(CATEGORIES) // 2, CUSTOMERS)
    bought = rng.poisson(0.3, (CUSTOMERS, len(CATEGORIES))).astype(np.float32)
    first = pairs * 2 + rng.integers(0, 2, CUSTOMERS)
    bought[np.arange(CUSTOMERS), first] += rng.integers(1, 5, CUSTOMERS)
    next_category = pairs * 2 + (1 - first % 2)  # the other half of the pair
    return bought, next_category


def main() -> None:
    baskets, next_category = simulate(np.random.default_rng(42))
    model = LogisticRegression(max_iter=1000).fit(baskets, next_category)
    joblib.dump(model, HERE / "model" / "model.joblib")


if __name__ == "__main__":
    main()
