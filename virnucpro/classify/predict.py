"""Run the classifier on features: probabilities exactly as the original's prediction.py computes them."""

from __future__ import annotations

import numpy as np
import torch

from virnucpro.io.features import Features
from virnucpro.models.encoders import COLUMNS

# The original scored DataLoader batches of 256. Rows are independent in eval mode (BatchNorm uses its running
# statistics), so a larger batch gives the same numbers (bit-identical with MKL, checked on 50,000 rows) in
# less than half the time: small batches leave a many-core CPU waiting on thread start-up for every matmul.
BATCH = 4096


def check_fits(classifier, features: Features) -> None:
    """ValueError unless `features` are the classifier's input columns, in its order and width."""
    if features.names != COLUMNS:  # the classifier was trained on these columns, side by side in this order
        raise ValueError(f"feature columns are {', '.join(features.names)}, the classifier takes {', '.join(COLUMNS)}")
    width = sum(a.shape[1] for a in features.columns.values())
    if width != classifier.input_dim:
        raise ValueError(f"features are {width} wide, the classifier expects {classifier.input_dim}")


def batches(n: int) -> list[slice]:
    """The rows of each scoring batch, from the first row on: every scorer uses these, so scores are computed
    the same way whether a shard is scored whole or as its parts are filled (embed/scoring.py)."""
    return [slice(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]


@torch.no_grad()
def score_rows(classifier, features: Features, rows: slice) -> np.ndarray:
    """Softmax probabilities of `rows` (one batch). The columns are put side by side one batch at a time: a
    whole shard's concatenation would be a second copy of its features (4.5 GB at 340K frames) in memory.
    `classifier` must be in eval mode, fp32."""
    return classifier(torch.from_numpy(features.concatenated(rows))).numpy()


def predict_probs(classifier, features: Features) -> np.ndarray:
    """Softmax probabilities float32 [N, 2]: column 0 = P(others), column 1 = P(virus).

    Computed in fp32 like the original (softmax of fp32 logits), so writing them with `format_score` gives the
    original's text.
    """
    check_fits(classifier, features)
    classifier = classifier.float().eval()
    return join_scores([score_rows(classifier, features, rows) for rows in batches(len(features))])


def join_scores(scored: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(scored).astype(np.float32, copy=False) if scored else np.zeros((0, 2), np.float32)
