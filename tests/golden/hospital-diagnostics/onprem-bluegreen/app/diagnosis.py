"""Postprocess for the hospital-diagnostics service: the classifier's class (0 malignant,
1 benign, as in scikit-learn's breast-cancer data) becomes a word a clinician reads, with the
probability that the tumour is malignant."""

import numpy as np

LABELS = np.array(["malignant", "benign"], dtype=object)


def postprocess(outputs: dict) -> dict:
    return {
        "diagnosis": LABELS[np.asarray(outputs["predict"], dtype=np.int64)],
        "malignant_probability": np.asarray(outputs["predict_proba"])[:, 0],
    }
