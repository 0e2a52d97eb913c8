"""Cutting a sequence into chunks of the expected length L, exactly as the original (ORIGINAL_SEMANTICS §1).

k = ceil(n / L) chunks. When n > L the chunks overlap: the surplus R = k*L - n is spread over the k-1 joins
with q = R // k per join (the original divides by k, not k-1) plus one extra base for the first m = R - (k-1)*q
joins. Because q is too small, the last chunk usually comes out shorter than L; the golden files confirm it.
"""

from __future__ import annotations


def chunk_starts(n: int, length: int) -> list[int]:
    """Start offsets of the chunks of a sequence of ``n`` bases (n > 0); chunk j is [start, start + length)
    clipped at n. Worked examples at L=500: n=508 -> [0, 253]; n=2625 -> [0, 437, 874, 1311, 1748, 2185]."""
    if n <= 0:
        raise ValueError("an empty sequence has no chunks")
    if length <= 0:
        raise ValueError("chunk length must be positive")
    if n <= length:
        return [0]
    k = -(-n // length)
    surplus = k * length - n
    q = surplus // k
    m = surplus - (k - 1) * q  # joins 1..m move back by q+1, the rest by q (all of them when m >= k-1)
    starts = [0]
    for j in range(1, k):
        starts.append(starts[-1] + length - (q + 1 if j <= m else q))
    return starts

