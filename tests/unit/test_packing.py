import numpy as np
import pytest

from virnucpro.embed import packing


def _random_tokens(rng, n, lo=3, hi=60):
    return [rng.integers(4, 24, size=int(rng.integers(lo, hi))).astype(np.int32) for _ in range(n)]


@pytest.mark.parametrize("budget", [1, 7, 64, 200, 10_000])
def test_every_sequence_exactly_once_and_budget_respected(budget):
    rng = np.random.default_rng(budget)
    lengths = rng.integers(1, 120, size=500)
    batches = packing.pack_order(lengths, budget)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for idx in batches:
        total = int(lengths[idx].sum())
        # Over the budget only as a batch of one: a sequence longer than the budget runs alone [PACK-06].
        assert total <= budget or len(idx) == 1


def test_packing_is_deterministic_and_sorted_longest_first():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=300)
    a = packing.pack_order(lengths, 100)
    b = packing.pack_order(lengths.copy(), 100)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    flat = np.concatenate(a)
    assert np.all(np.diff(lengths[flat]) <= 0)
    # Ties keep input order (stable sort).
    for length in np.unique(lengths):
        same = flat[lengths[flat] == length]
        assert np.all(np.diff(same) > 0)


def test_greedy_fills_rows():
    batches = packing.pack_order([5, 5, 5, 5, 5], 10)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_packed_batch_layout_residue_pooling():
    toks = [np.array([0, 5, 6, 7, 2], np.int32), np.array([0, 8, 2], np.int32)]
    (batch,) = packing.pack(toks, 100, packing.POOL_RESIDUES, row_offset=10)
    assert batch.cu_seqlens.dtype == np.int32
    assert batch.cu_seqlens.tolist() == [0, 5, 8]
    assert batch.max_seqlen == 5
    assert batch.rows.tolist() == [10, 11]
    # <cls> and <eos> go to the spare segment B=2; residues to their own sequence.
    assert batch.pool_index.tolist() == [2, 0, 0, 0, 2, 2, 1, 2]
    assert batch.pool_count.tolist() == [3.0, 1.0]


def test_residue_pooling_caps_at_1024_residues():
    toks = [np.zeros(1100 + 2, np.int32)]
    (batch,) = packing.pack(toks, 4096, packing.POOL_RESIDUES)
    assert batch.pool_count.tolist() == [1024.0]
    pooled = np.flatnonzero(batch.pool_index == 0)
    assert pooled[0] == 1 and pooled[-1] == 1024 and len(pooled) == 1024


def test_all_token_pooling_and_tokens_roundtrip():
    rng = np.random.default_rng(3)
    toks = _random_tokens(rng, 40)
    batches = packing.pack(toks, 150, packing.POOL_ALL)
    for b in batches:
        assert b.pool_count.tolist() == np.diff(b.cu_seqlens).tolist()
        for j, row in enumerate(b.rows):
            s, e = b.cu_seqlens[j], b.cu_seqlens[j + 1]
            assert np.array_equal(b.tokens[s:e], toks[row])
            assert np.all(b.pool_index[s:e] == j)


def test_split_batch_keeps_rows_and_tokens():
    rng = np.random.default_rng(4)
    toks = _random_tokens(rng, 30)
    (big,) = packing.pack(toks, 10_000, packing.POOL_RESIDUES, row_offset=100)
    subs = packing.split_batch(big, 90, packing.POOL_RESIDUES)
    assert len(subs) > 1
    assert sorted(np.concatenate([s.rows for s in subs]).tolist()) == list(range(100, 130))
    for s in subs:
        assert s.num_tokens <= 90 or s.num_sequences == 1
        for j, row in enumerate(s.rows):
            assert np.array_equal(s.tokens[s.cu_seqlens[j]:s.cu_seqlens[j + 1]], toks[row - 100])


def test_empty_protein_is_refused():
    with pytest.raises(ValueError):
        packing.pack([np.array([0, 2], np.int32)], 10, packing.POOL_RESIDUES)
