"""The recommender's two pipeline steps around the model, each deployed as its own service.

preprocess:  a user's recent behaviour events → one feature row per user (how strongly they engaged
             with each catalogue item, recent purchases weighing most).
postprocess: the model's score for every item → the user's top items and their scores.
"""

import numpy as np

N_ITEMS = 12  # catalogue size: item ids 0..11
TOP_K = 3
# Event types a client sends: 0 view, 1 click, 2 purchase (purchases say the most about taste).
EVENT_WEIGHTS = np.array([1.0, 2.0, 4.0])


def features(item_ids: np.ndarray, event_types: np.ndarray) -> np.ndarray:
    """Weighted engagement per item, normalised per user; padding (-1) counts for nothing."""
    rows = np.zeros((item_ids.shape[0], N_ITEMS))
    valid = (item_ids >= 0) & (item_ids < N_ITEMS)
    users, slots = np.nonzero(valid)
    np.add.at(rows, (users, item_ids[users, slots]), EVENT_WEIGHTS[np.clip(event_types[users, slots], 0, 2)])
    totals = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)


def preprocess(tensors: dict) -> dict:
    return {"features": features(np.asarray(tensors["item_ids"]), np.asarray(tensors["event_types"]))}


def postprocess(tensors: dict) -> dict:
    scores = np.asarray(tensors["predict_proba"])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return {"items": top.astype(np.int64), "scores": np.take_along_axis(scores, top, axis=1)}
