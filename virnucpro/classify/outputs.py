"""The original's two result files (ORIGINAL_SEMANTICS §6), byte for byte in layout.

prediction_results.txt (also our per-shard predictions TSV), tab separated:
    Sequence_ID  Prediction  score1  score2
  Prediction = "virus" if argmax is class 1 else "others" (torch.max: a tie goes to the first, "others").
  Scores are written as the original does: `str()` of each numpy float32 softmax value, i.e. the shortest
  decimal that reads back to the same float32 (e.g. 0.99812365, 1e-05).

prediction_results_highestscore.csv (tab separated despite the name):
    Modified_ID  Is_Virus
  One row per chunk (Sequence_ID minus its last two characters), Is_Virus = max(score2) >= max(score1) over the
  chunk's frames, written True/False. Rows are in SORTED Modified_ID order: the original uses
  `df.groupby("Modified_ID")` whose default sort=True orders the groups (plain string order).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_write_text

PREDICTION_HEADER = ("Sequence_ID", "Prediction", "score1", "score2")
HIGHESTSCORE_HEADER = ("Modified_ID", "Is_Virus")
LABELS = ("others", "virus")


def format_score(p) -> str:
    return str(np.float32(p))


def _check(ids: Sequence[str], probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != 2 or len(probs) != len(ids):
        raise ValueError(f"{len(ids)} ids but probabilities of shape {probs.shape}")
    return probs


def prediction_lines(ids: Sequence[str], probs: np.ndarray) -> list[str]:
    probs = _check(ids, probs)
    labels = [LABELS[c] for c in np.argmax(probs, axis=1).tolist()]  # first maximum on ties, like torch.max
    # str() of the float32 scalars that iterating a float32 column yields: format_score's text without building
    # a NumPy scalar from a Python float for each value (1.6x faster, measured on 340K frames).
    others, virus = map(str, probs[:, 0]), map(str, probs[:, 1])
    return [f"{i}\t{c}\t{p}\t{v}\n" for i, c, p, v in zip(ids, labels, others, virus)]


def highestscore_rows(ids: Sequence[str], probs: np.ndarray) -> list[tuple[str, bool]]:
    probs = _check(ids, probs)
    best: dict[str, list[float]] = {}
    # Python floats hold float32 values exactly, so comparing them gives the float32 answer (and is far cheaper
    # than comparing NumPy scalars one by one).
    for seq_id, (p_others, p_virus) in zip(ids, probs.tolist()):
        cur = best.setdefault(seq_id[:-2], [-np.inf, -np.inf])
        if p_others > cur[0]:
            cur[0] = p_others
        if p_virus > cur[1]:
            cur[1] = p_virus
    return [(chunk, bool(v[1] >= v[0])) for chunk, v in sorted(best.items())]


def write_prediction_results(path: str | os.PathLike, ids: Sequence[str], probs: np.ndarray) -> None:
    atomic_write_text(path, "\t".join(PREDICTION_HEADER) + "\n" + "".join(prediction_lines(ids, probs)))


def write_highestscore(path: str | os.PathLike, ids: Sequence[str], probs: np.ndarray) -> None:
    rows = highestscore_rows(ids, probs)
    atomic_write_text(path, "\t".join(HIGHESTSCORE_HEADER) + "\n" + "".join(f"{c}\t{v}\n" for c, v in rows))


def read_predictions(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a predictions TSV back: ids and float32 [N, 2] (the written text round-trips exactly)."""
    ids, probs = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split("\t")
            if tuple(header) != PREDICTION_HEADER:
                raise InputError(path, f"header is not {' '.join(PREDICTION_HEADER)}")
            for n, line in enumerate(fh, start=2):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 4 or parts[1] not in LABELS:
                    raise InputError(path, f"line {n}: expected Sequence_ID, virus/others, score1, score2")
                try:
                    probs.append((np.float32(parts[2]), np.float32(parts[3])))
                except ValueError:
                    raise InputError(path, f"line {n}: scores are not numbers") from None
                ids.append(parts[0])
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    return ids, np.array(probs, dtype=np.float32).reshape(-1, 2)
