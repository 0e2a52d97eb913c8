"""virnucpro.models.attention against explicit per-sequence softmax attention (CPU, fp32)."""

import math

import pytest
import torch

from virnucpro.models import attention


def per_sequence(q, k, v, cu, slopes=None, scale=None):
    out = torch.empty_like(q)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qs, ks, vs = q[s:e], k[s:e], v[s:e]
        scores = torch.einsum("ihd,jhd->hij", qs, ks) * (scale or 1 / math.sqrt(q.shape[-1]))
        if slopes is not None:
            pos = torch.arange(e - s)
            scores = scores - slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()
        out[s:e] = torch.einsum("hij,jhd->ihd", scores.softmax(-1), vs)
    return out


def packed(lengths, heads=3, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
    q, k, v = (torch.randn(int(cu[-1]), heads, dim, generator=g) for _ in range(3))
    return q, k, v, cu, max(lengths)


@pytest.mark.parametrize("lengths", [[5], [3, 9, 1, 7], [12, 12]])
def test_varlen_fallback_is_per_sequence_attention(lengths):
    q, k, v, cu, m = packed(lengths)
    torch.testing.assert_close(attention.varlen_attention(q, k, v, cu, m, scale=0.3),
                               per_sequence(q, k, v, cu, scale=0.3), rtol=1e-5, atol=1e-6)


def test_alibi_is_per_sequence_attention_with_distances_inside_each_sequence():
    q, k, v, cu, m = packed([4, 11, 2, 8], heads=12)
    slopes = torch.tensor(attention.alibi_slopes(12))
    torch.testing.assert_close(attention.alibi_attention(q, k, v, cu, m, slopes),
                               per_sequence(q, k, v, cu, slopes), rtol=1e-5, atol=1e-6)


def test_per_batch_cache_is_rebuilt_for_a_new_batch_and_new_slopes():
    slopes = torch.tensor(attention.alibi_slopes(3))
    q, k, v, cu, m = packed([6, 2, 6], seed=1)
    attention.alibi_attention(q, k, v, cu, m, slopes)  # fills the cache
    q2, k2, v2, cu2, m2 = packed([2, 6, 6], seed=2)  # same total and max length, other boundaries
    torch.testing.assert_close(attention.alibi_attention(q2, k2, v2, cu2, m2, slopes),
                               per_sequence(q2, k2, v2, cu2, slopes), rtol=1e-5, atol=1e-6)
    other = slopes * 3
    torch.testing.assert_close(attention.alibi_attention(q2, k2, v2, cu2, m2, other),
                               per_sequence(q2, k2, v2, cu2, other), rtol=1e-5, atol=1e-6)


def test_alibi_slopes_follow_mosaicbert():
    assert attention.alibi_slopes(8) == [2.0 ** -(i + 1) for i in range(8)]
    twelve = attention.alibi_slopes(12)
    expected = [2.0 ** -(i + 1) for i in range(8)] + [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]
    assert twelve == pytest.approx(expected)
