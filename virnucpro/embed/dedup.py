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
import mmap
import operator
from typing import Sequence

import numpy as np

from virnucpro.io.features import Features
from virnucpro.models.encoders import BY_NAME, COLUMNS

log = logging.getLogger("virnucpro.embed")



class FeatureRows:
    """The shard's feature rows, filled part by part (from checkpoints or the engine) in one array per column, so
    the whole shard is held once rather than as parts plus their concatenation.

    Each column lives on its own anonymous memory mapping, so rows nobody needs any more (scored, and the
    features not kept) can be given back to the system (`release`): a task then holds a few batches of features
    instead of the whole shard's (4.5 GB at 340K frames). Rows in `keep` (per column, the sources duplicates are
    copied from) are never released."""

    def __init__(self, n_frames: int):
        self.n = n_frames
        self.ids: list[str | None] = [None] * n_frames
        self.arrays: dict[str, np.ndarray] = {}
        self.filled = np.zeros(n_frames, dtype=bool)
        self.keep: dict[str, np.ndarray] | None = None  # column → bool [n]: rows `release` leaves alone
        self.released_bytes = 0
        self._maps: dict[str, mmap.mmap] = {}

    def put(self, start: int, feats: Features) -> None:
        end = start + len(feats)
        if not self.arrays:
            for name, a in feats.columns.items():
                self.arrays[name] = self._allocate(name, a.shape[1])
        for name, a in self.arrays.items():
            a[start:end] = feats[name]
        self.ids[start:end] = feats.ids
        self.filled[start:end] = True

    def _allocate(self, name: str, width: int) -> np.ndarray:
        nbytes = self.n * width * 4
        if not nbytes:
            return np.zeros((self.n, width), np.float32)
        # Private: MADV_DONTNEED then frees the pages (a shared mapping would keep them, and their contents).
        self._maps[name] = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        return np.frombuffer(self._maps[name], np.float32).reshape(self.n, width)

    def release(self, rows: slice) -> None:
        """Give back the memory of `rows` (filled, and not needed again): every whole page inside their byte range
        that holds no row of `keep`. Those rows then read as zeros."""
        if not hasattr(mmap, "MADV_DONTNEED"):
            return  # not on this system: the rows stay
        page = mmap.PAGESIZE
        for name, mm in self._maps.items():
            row_bytes = self.arrays[name].shape[1] * 4
            first, last = -(-rows.start * row_bytes // page), rows.stop * row_bytes // page  # whole pages inside
            if first >= last:
                continue
            held = np.zeros(last - first + 1, np.int64)  # pages touching a kept row: +1 at its first, -1 after
            if self.keep is not None:
                kept = np.flatnonzero(self.keep[name][rows]) + rows.start
                np.add.at(held, np.clip(kept * row_bytes // page, first, last) - first, 1)
                np.add.at(held, np.clip(-(-(kept + 1) * row_bytes // page), first, last) - first, -1)
            free = np.cumsum(held)[:-1] == 0
            edges = np.flatnonzero(np.diff(np.concatenate(([0], free.view(np.int8), [0]))))
            for a, b in zip(edges[::2], edges[1::2]):
                mm.madvise(mmap.MADV_DONTNEED, (first + int(a)) * page, int(b - a) * page)
                self.released_bytes += int(b - a) * page

    def require_filled(self) -> None:
        if not self.filled.all():
            raise RuntimeError(f"{int((~self.filled).sum())} frames of the shard were never embedded")

    def features(self) -> Features:
        self.require_filled()
        return Features(list(self.ids), dict(self.arrays))


class ShardDedup:
    """Which frames each encoder computes, and the copies that fill the others.

    `source[name][i]` is the index of the first frame of the shard with frame i's sequence for encoder `name`
    (i itself when it is the first).
    """

    def __init__(self, frames: Sequence):
        self.n = len(frames)
        self.source: dict[str, np.ndarray] = {}
        self.stats: dict[str, dict] = {}
        for name in COLUMNS:
            seqs = list(map(operator.attrgetter(BY_NAME[name].field), frames))
            first: dict[str, int] = {}
            # map() keeps the loops in C (400K frames: 2.1 s of CPU instead of 3.2 s on a slow 2-core VM)
            self.source[name] = np.fromiter(map(first.setdefault, seqs, itertools.count()), np.int64, self.n)
            lengths = np.fromiter(map(len, seqs), np.int64, self.n)
            self.stats[name] = self._stats(name, lengths, self.source[name], len(first))
        self.log_summary()

    @staticmethod
    def _stats(name: str, lengths: np.ndarray, src: np.ndarray, distinct: int) -> dict:
        # Tokens for the saved-work figures: the shard step's count (an estimate where the tokenizer is never run
        # for a copy, DNABERT-S's BPE).
        n = len(lengths)
        tokens = BY_NAME[name].tokens_of_length(lengths)
        total, saved = int(tokens.sum()), int(tokens[src != np.arange(n)].sum())
        return {
            "frames": n,
            "distinct": distinct,
            "copied": n - distinct,
            "saved_fraction": round((n - distinct) / n, 6) if n else 0.0,
            "tokens": total,
            "tokens_saved": saved,
            "tokens_saved_fraction": round(saved / total, 6) if total else 0.0,
            "tokens_estimated": BY_NAME[name].tokens_estimated,
        }

    def compute_masks(self, start: int, end: int) -> dict[str, np.ndarray]:
        """Per encoder, the frames of [start, end) that it computes (the sources)."""
        own = np.arange(start, end)
        return {name: src[start:end] == own for name, src in self.source.items()}

    def sources(self) -> dict[str, np.ndarray]:
        """Per encoder, bool [n]: the frames some later frame copies its row from."""
        out = {}
        for name, src in self.source.items():
            mask = np.zeros(self.n, dtype=bool)
            mask[src[src != np.arange(self.n)]] = True
            out[name] = mask
        return out

    def copies_in(self, start: int, end: int) -> int:
        """Rows of [start, end) filled by copying, both encoders together (for progress accounting)."""
        own = np.arange(start, end)
        return int(sum((src[start:end] != own).sum() for src in self.source.values()))

    def complete(self, start: int, feats: Features, rows: FeatureRows) -> Features:
        """Part features from the engine, whose copied rows are still zero → the part with every row filled."""
        end = start + len(feats)
        own = np.arange(start, end)
        for name, source in self.source.items():
            src = source[start:end]
            local = np.flatnonzero(src != own)
            if not len(local):
                continue
            out = feats[name]
            from_src = src[local]
            here = from_src >= start  # the source is in this part: computed by the engine just now
            out[local[here]] = out[from_src[here] - start]
            if (~here).any():  # an earlier part: already in the shard's rows (computed or from a checkpoint)
                earlier = from_src[~here]
                if not rows.filled[earlier].all():
                    raise RuntimeError("a duplicate's source part is not embedded yet")  # parts come in order
                out[local[~here]] = rows.arrays[name][earlier]
        return feats

    def log_summary(self) -> None:
        for name, s in self.stats.items():
            if s["copied"]:
                log.info("%s: %d of %d frames are duplicates, copied rather than embedded (%.1f%% of tokens)",
                         name, s["copied"], s["frames"], 100.0 * s["tokens_saved_fraction"])
