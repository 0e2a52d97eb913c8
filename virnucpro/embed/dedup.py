"""Embed each distinct sequence of a shard once and copy its features to every frame that has it [issue 12].

Read sets hold exact duplicates (PCR and optical duplicates), and a duplicated read gives duplicated frames.
ESM-2's feature depends only on the protein and DNABERT-S's only on the nucleotides, so each encoder computes
the first frame of the shard that has a given sequence (its *source*) and every later frame with the same
sequence gets a copy of the source's row. The two encoders decide separately: two reads that differ only by
synonymous codons share a protein but not their nucleotides.

The choice depends only on the shard's frames, never on which checkpoint parts a re-run finds, so a resumed
run computes exactly the batches an uninterrupted one computes and writes the same bits. A source always lies
in the same part as its copy or in an earlier one, and parts are finished in order, so when a part is handed
over every row it copies from is already known: in the part itself or in `FeatureRows`.
"""

from __future__ import annotations

import itertools
import logging
import operator
from typing import Sequence

import numpy as np

from virnucpro.embed.shard import dnabert_tokens_of_length, esm_tokens_of_length
from virnucpro.io.features import Features

log = logging.getLogger("virnucpro.embed")

FIELDS = ("nucleotide", "protein")
# Tokens of a sequence of a given length, for the saved-work figures: exact for ESM-2; DNABERT-S's BPE is never
# run for a copy, so there it is shard.py's ~4 bases a token estimate.
_TOKENS = {"protein": esm_tokens_of_length, "nucleotide": dnabert_tokens_of_length}
_ESTIMATED = {"protein": False, "nucleotide": True}


class FeatureRows:
    """The shard's feature rows, filled part by part (from checkpoints or the engine) in one array per field, so
    the whole shard is held once rather than as parts plus their concatenation."""

    def __init__(self, n_frames: int):
        self.n = n_frames
        self.ids: list[str | None] = [None] * n_frames
        self.arrays: dict[str, np.ndarray] = {}
        self.filled = np.zeros(n_frames, dtype=bool)

    def put(self, start: int, feats: Features) -> None:
        end = start + len(feats)
        if not self.arrays:
            self.arrays = {f: np.empty((self.n, getattr(feats, f).shape[1]), np.float32) for f in FIELDS}
        for f in FIELDS:
            self.arrays[f][start:end] = getattr(feats, f)
        self.ids[start:end] = feats.ids
        self.filled[start:end] = True

    def features(self) -> Features:
        if not self.filled.all():
            raise RuntimeError(f"{int((~self.filled).sum())} frames of the shard were never embedded")
        return Features(list(self.ids), self.arrays["nucleotide"], self.arrays["protein"])


class ShardDedup:
    """Which frames each encoder computes, and the copies that fill the others.

    `source[field][i]` is the index of the first frame of the shard with frame i's sequence (i itself when it is
    the first).
    """

    def __init__(self, frames: Sequence):
        self.n = len(frames)
        self.source: dict[str, np.ndarray] = {}
        self.stats: dict[str, dict] = {}
        for field in FIELDS:
            seqs = list(map(operator.attrgetter(field), frames))
            first: dict[str, int] = {}
            # map() keeps the loops in C (400K frames: 2.1 s of CPU instead of 3.2 s on a slow 2-core VM)
            self.source[field] = np.fromiter(map(first.setdefault, seqs, itertools.count()), np.int64, self.n)
            lengths = np.fromiter(map(len, seqs), np.int64, self.n)
            self.stats[field] = self._stats(field, lengths, self.source[field], len(first))
        self.log_summary()

    @staticmethod
    def _stats(field: str, lengths: np.ndarray, src: np.ndarray, distinct: int) -> dict:
        n = len(lengths)
        tokens = _TOKENS[field](lengths)
        total, saved = int(tokens.sum()), int(tokens[src != np.arange(n)].sum())
        return {
            "frames": n,
            "distinct": distinct,
            "copied": n - distinct,
            "saved_fraction": round((n - distinct) / n, 6) if n else 0.0,
            "tokens": total,
            "tokens_saved": saved,
            "tokens_saved_fraction": round(saved / total, 6) if total else 0.0,
            "tokens_estimated": _ESTIMATED[field],
        }

    def compute_masks(self, start: int, end: int) -> dict[str, np.ndarray]:
        """Per field, the frames of [start, end) that the encoder computes (the sources)."""
        own = np.arange(start, end)
        return {f: self.source[f][start:end] == own for f in FIELDS}

    def copies_in(self, start: int, end: int) -> int:
        """Rows of [start, end) filled by copying, both encoders together (for progress accounting)."""
        own = np.arange(start, end)
        return int(sum((self.source[f][start:end] != own).sum() for f in FIELDS))

    def complete(self, start: int, feats: Features, rows: FeatureRows) -> Features:
        """Part features from the engine, whose copied rows are still zero → the part with every row filled."""
        end = start + len(feats)
        own = np.arange(start, end)
        for field in FIELDS:
            src = self.source[field][start:end]
            local = np.flatnonzero(src != own)
            if not len(local):
                continue
            out = getattr(feats, field)
            from_src = src[local]
            here = from_src >= start  # the source is in this part: computed by the engine just now
            out[local[here]] = out[from_src[here] - start]
            if (~here).any():  # an earlier part: already in the shard's rows (computed or from a checkpoint)
                earlier = from_src[~here]
                if not rows.filled[earlier].all():
                    raise RuntimeError("a duplicate's source part is not embedded yet")  # parts come in order
                out[local[~here]] = rows.arrays[field][earlier]
        return feats

    def log_summary(self) -> None:
        for field in FIELDS:
            s = self.stats[field]
            if s["copied"]:
                log.info("%s: %d of %d frames are duplicates, copied rather than embedded (%.1f%% of tokens)",
                         field, s["copied"], s["frames"], 100.0 * s["tokens_saved_fraction"])
