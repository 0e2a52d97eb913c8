"""Per-frame feature files: the hand-off between the embed, classify and aggregate steps.

One ``.npz`` per shard (or checkpoint part) holding
  ids         unicode array [N]        frame ids, in input order
  nucleotide  float32 [N, 768]         DNABERT-S mean of the last hidden state (all tokens)
  protein     float32 [N, 2560]        ESM-2 mean of the final representation (residues only)
Widths come from the models; nothing here assumes them. Loading never unpickles (allow_pickle=False).
Writes are atomic: a temp file in the same directory, fsync, rename.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open


@dataclass
class Features:
    ids: list[str]
    nucleotide: np.ndarray
    protein: np.ndarray

    def __post_init__(self):
        n = len(self.ids)
        if self.nucleotide.shape[0] != n or self.protein.shape[0] != n:
            raise ValueError(
                f"feature rows disagree: {n} ids, {self.nucleotide.shape[0]} nucleotide, "
                f"{self.protein.shape[0]} protein"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def concatenated(self) -> np.ndarray:
        """The classifier's input: nucleotide then protein, float32 [N, 768 + 2560]."""
        return np.concatenate([self.nucleotide, self.protein], axis=1).astype(np.float32, copy=False)

    @staticmethod
    def concat(parts: list["Features"]) -> "Features":
        if not parts:
            return Features([], np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
        return Features(
            [i for p in parts for i in p.ids],
            np.concatenate([p.nucleotide for p in parts]),
            np.concatenate([p.protein for p in parts]),
        )


def save_features(path: str | os.PathLike, feats: Features) -> None:
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            ids=np.array(feats.ids, dtype=np.str_),
            nucleotide=np.ascontiguousarray(feats.nucleotide, dtype=np.float32),
            protein=np.ascontiguousarray(feats.protein, dtype=np.float32),
        )


def load_features(path: str | os.PathLike) -> Features:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Features([str(i) for i in z["ids"]], z["nucleotide"], z["protein"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a readable feature file ({exc})") from exc
