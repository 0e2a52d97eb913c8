"""Per-frame feature files: the hand-off between the embed, classify and aggregate steps.

One ``.npz`` per shard (or checkpoint part) holding
  ids         unicode array [N]        frame ids, in input order
  columns     unicode array [C]        the feature columns' names, in the classifier's input order
  <column>    float32 [N, width]       one per encoder (models/encoders.py), e.g. nucleotide [N, 768] (DNABERT-S
                                       mean of the last hidden state) and protein [N, 2560] (ESM-2 mean of the
                                       final representation over residues)
Widths come from the models; nothing here assumes them. A file without `columns` (written before it was
recorded) holds nucleotide and protein, in that order. Loading never unpickles (allow_pickle=False).
Writes are atomic: a temp file in the same directory, fsync, rename.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open

# The columns, in order, of a file that does not record them.
UNRECORDED_COLUMNS = ("nucleotide", "protein")
_RESERVED = ("ids", "columns")


@dataclass
class Features:
    ids: list[str]
    columns: dict[str, np.ndarray]  # name → float32 [N, width], in the classifier's input order

    def __post_init__(self):
        n = len(self.ids)
        rows = {name: a.shape[0] for name, a in self.columns.items()}
        if any(r != n for r in rows.values()):
            raise ValueError(f"feature rows disagree: {n} ids, "
                             + ", ".join(f"{r} {name}" for name, r in rows.items()))
        if set(self.columns) & set(_RESERVED):
            raise ValueError(f"a feature column may not be called {' or '.join(_RESERVED)}")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def concatenated(self, rows: slice = slice(None)) -> np.ndarray:
        """The classifier's input: the columns side by side in their recorded order, float32 [N, sum of widths];
        `rows` takes a slice of them only (scoring a shard batch by batch never copies it whole)."""
        return np.concatenate([a[rows] for a in self.columns.values()], axis=1).astype(np.float32, copy=False)

    @staticmethod
    def empty(widths: Mapping[str, int]) -> "Features":
        return Features([], {name: np.zeros((0, w), np.float32) for name, w in widths.items()})

    @staticmethod
    def concat(parts: list["Features"]) -> "Features":
        if not parts:
            return Features.empty({})
        names = parts[0].names
        if any(p.names != names for p in parts):
            raise ValueError("feature parts hold different columns")
        return Features([i for p in parts for i in p.ids],
                        {name: np.concatenate([p[name] for p in parts]) for name in names})


def save_features(path: str | os.PathLike, feats: Features) -> None:
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            ids=np.array(feats.ids, dtype=np.str_),
            columns=np.array(feats.names, dtype=np.str_),
            **{name: np.ascontiguousarray(a, dtype=np.float32) for name, a in feats.columns.items()},
        )


def load_features(path: str | os.PathLike) -> Features:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(c) for c in z["columns"]] if "columns" in z.files else list(UNRECORDED_COLUMNS)
            return Features([str(i) for i in z["ids"]], {name: z[name] for name in names})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a readable feature file ({exc})") from exc
