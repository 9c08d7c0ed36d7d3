"""Train the recommender: which catalogue item a user buys next, from their recent behaviour.

scikit-learn bundles no interaction data, so the behaviour is simulated with a fixed seed: twelve
items in three genres of four; each user prefers one genre, views, clicks and buys mostly within
it, and next buys an item of that genre. A logistic regression over the preprocess step's features
learns the preference. Run from this folder: ``python train.py`` (the model is committed; rerun it
after upgrading scikit-learn, pinned in spec.yaml).
"""

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from recsys_pipeline import N_ITEMS, features

HERE = Path(__file__).resolve().parent
USERS, EVENTS, GENRE_SIZE = 3000, 8, 4


def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    genres = rng.integers(0, N_ITEMS // GENRE_SIZE, USERS)
    in_genre = genres[:, None] * GENRE_SIZE + rng.integers(0, GENRE_SIZE, (USERS, EVENTS))
    anywhere = rng.integers(0, N_ITEMS, (USERS, EVENTS))
    items = np.where(rng.random((USERS, EVENTS)) < 0.8, in_genre, anywhere)
    types = rng.choice(3, size=(USERS, EVENTS), p=[0.6, 0.3, 0.1])
    next_buy = genres * GENRE_SIZE + rng.integers(0, GENRE_SIZE, USERS)
    return items, types, next_buy


def main() -> None:
    items, types, next_buy = simulate(np.random.default_rng(7))
    model = LogisticRegression(max_iter=1000).fit(features(items, types), next_buy)
    assert list(model.classes_) == list(range(N_ITEMS)), "every item must be a class: columns are item ids"
    joblib.dump(model, HERE / "model" / "model.joblib")


if __name__ == "__main__":
    main()
