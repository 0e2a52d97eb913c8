"""Length-sorted greedy packing of tokenised sequences into flat rows of at most `budget` tokens [PACK-02/06].

A packed batch is one flat token row: the sequences laid end to end, no padding, with int32 `cu_seqlens`
marking where each starts. The attention kernels use `cu_seqlens` so no token ever attends across a boundary.
The batch also carries what the GPU needs to pool without a Python loop: for every token the pooling segment
it belongs to (`pool_index`; the extra segment B collects tokens that are not averaged, such as ESM's <cls>/<eos>)
and, per sequence, how many tokens are averaged (`pool_count`).

Everything here is plain NumPy: it runs in the CPU loader workers, which never import CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# The pooling rules (defined with the encoders that use them).
from virnucpro.models.encoders import ESM_POOL_MAX_RESIDUES, POOL_ALL, POOL_RESIDUES  # noqa: F401


class SequenceError(ValueError):
    """A sequence the tokenizer or the pooling rule cannot take (one message argument: crosses processes)."""


@dataclass
class PackedBatch:
    tokens: np.ndarray  # int32 [T]   token ids, sequences end to end
    cu_seqlens: np.ndarray  # int32 [B+1] start offsets, cu_seqlens[-1] == T
    max_seqlen: int  # longest sequence in the batch (the kernels need it on the host)
    rows: np.ndarray  # int64 [B]   row of each sequence in its part, in batch order
    pool_index: np.ndarray  # int64 [T]   pooling segment of each token; B = not pooled
    pool_count: np.ndarray  # float32 [B] tokens averaged per sequence

    @property
    def num_sequences(self) -> int:
        return len(self.rows)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)


def pack_order(lengths: Sequence[int] | np.ndarray, budget: int) -> list[np.ndarray]:
    """Group sequence indices into batches of at most `budget` tokens, longest first.

    Sorting by length (stable, so ties keep input order and the result is deterministic) puts sequences of similar
    length together, which keeps `max_seqlen` tight; greedy next-fit then fills each row up to the budget. A
    sequence longer than the budget gets a batch of its own [PACK-06]. Every index appears exactly once.
    """
    if budget < 1:
        raise ValueError(f"token budget must be positive, got {budget}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start, used = 0, 0
    for pos, idx in enumerate(order):
        n = int(lengths[idx])
        if used and used + n > budget:
            batches.append(order[start:pos])
            start, used = pos, 0
        used += n
    if len(order) > start:
        batches.append(order[start:])
    return batches


def _pool_layout(lengths: np.ndarray, pool: str) -> tuple[np.ndarray, np.ndarray]:
    """(pool_index [T], pool_count [B]) for sequences of `lengths` tokens laid end to end."""
    b = len(lengths)
    seq_of_token = np.repeat(np.arange(b, dtype=np.int64), lengths)
    if pool == POOL_ALL:
        return seq_of_token, lengths.astype(np.float32)
    if pool == POOL_RESIDUES:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        position = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
        residues = np.minimum(lengths - 2, ESM_POOL_MAX_RESIDUES)  # <cls> + residues + <eos>
        pooled = (position >= 1) & (position <= np.repeat(residues, lengths))
        return np.where(pooled, seq_of_token, b), np.maximum(residues, 1).astype(np.float32)
    raise ValueError(f"unknown pooling rule {pool!r}")


def build_batch(token_lists: Sequence[np.ndarray], indices: np.ndarray, row_offset: int, pool: str) -> PackedBatch:
    """One flat batch from the sequences `indices` (positions in `token_lists`), rows numbered from row_offset."""
    chosen = [token_lists[i] for i in indices]
    lengths = np.fromiter((len(t) for t in chosen), dtype=np.int64, count=len(chosen))
    cu = np.zeros(len(chosen) + 1, dtype=np.int32)
    np.cumsum(lengths, out=cu[1:])
    pool_index, pool_count = _pool_layout(lengths, pool)
    return PackedBatch(
        tokens=np.concatenate(chosen).astype(np.int32, copy=False),
        cu_seqlens=cu,
        max_seqlen=int(lengths.max()),
        rows=np.asarray(indices, dtype=np.int64) + row_offset,
        pool_index=pool_index,
        pool_count=pool_count,
    )


def split_batch(batch: PackedBatch, budget: int, pool: str) -> list[PackedBatch]:
    """Re-pack one batch into batches of at most `budget` tokens (after the budget shrank on an OOM)."""
    token_lists = np.split(batch.tokens, batch.cu_seqlens[1:-1])
    out = []
    for idx in pack_order([len(t) for t in token_lists], budget):
        sub = build_batch(token_lists, idx, 0, pool)
        sub.rows = batch.rows[idx]
        out.append(sub)
    return out


def pack(token_lists: Sequence[np.ndarray], budget: int, pool: str, row_offset: int = 0) -> list[PackedBatch]:
    """Tokenised sequences → packed batches of at most `budget` tokens (one sequence alone when it is longer)."""
    for i, t in enumerate(token_lists):
        if len(t) == 0 or (pool == POOL_RESIDUES and len(t) < 3):
            raise SequenceError(f"sequence {row_offset + i + 1} of its part has no tokens to pool")
    lengths = [len(t) for t in token_lists]
    return [build_batch(token_lists, idx, row_offset, pool) for idx in pack_order(lengths, budget)]
