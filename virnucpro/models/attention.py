"""Attention over packed sequences: one flat `(T, H, D)` row, int32 `cu_seqlens`, no cross-sequence attention.

Two entry points, each with a fast GPU kernel and an exact fallback that runs anywhere (CPU tests, fp32
validation mode on the GPU):

- `varlen_attention` (ESM-2): PyTorch's bundled FlashAttention-2 varlen kernel (`torch.nn.attention.varlen`) for
  fp16/bf16 on CUDA; otherwise padded SDPA with a key-padding mask.
- `alibi_attention` (DNABERT-S): the varlen kernel takes no bias, so ALiBi runs as padded SDPA with one additive
  `(B, H, L, L)` bias (ALiBi distances inside each sequence plus -inf on padding keys). The bias and the
  pad/unpad indices are built once per batch and reused by every layer: they are cached against the identity of
  the `cu_seqlens` tensor, which a packed forward passes unchanged to all its layers.

Padding happens only around attention (MosaicBERT's own layout); linear layers always see the flat row.
`scale` is applied to the scores (None: 1/sqrt(D)). Pass `scale=1.0` when q is pre-scaled (ESM-2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:  # torch >= 2.10
    from torch.nn.attention.varlen import varlen_attn as _varlen_attn
except ImportError:  # pragma: no cover - older torch: the padded path still works
    _varlen_attn = None


@dataclass
class _PadLayout:
    cu_seqlens: torch.Tensor  # the tensor this layout was built for (identity is the cache key)
    flat_index: torch.Tensor  # int64 [T]: position of each packed token in the (B*L) padded layout
    key_valid: torch.Tensor  # bool [B, L]
    batch: int
    length: int
    alibi_bias: torch.Tensor | None = None  # [B, H, L, L] in the attention dtype, built on first ALiBi call
    alibi_for: tuple | None = None  # (slopes tensor, dtype) the bias was built for; the reference keeps it alive


_layout_cache: _PadLayout | None = None


def _pad_layout(cu_seqlens: torch.Tensor, max_seqlen: int, total: int) -> _PadLayout:
    global _layout_cache
    cached = _layout_cache
    if cached is not None and cached.cu_seqlens is cu_seqlens and cached.length == max_seqlen:
        return cached
    device = cu_seqlens.device
    cu = cu_seqlens.to(torch.int64)
    batch = cu.numel() - 1
    token = torch.arange(total, device=device)
    # searchsorted instead of repeat_interleave(lengths): no device-to-host sync for the output size.
    seq = torch.searchsorted(cu[1:], token, right=True)
    position = token - cu[seq]
    lengths = cu[1:] - cu[:-1]
    layout = _PadLayout(
        cu_seqlens=cu_seqlens,
        flat_index=seq * max_seqlen + position,
        key_valid=torch.arange(max_seqlen, device=device)[None, :] < lengths[:, None],
        batch=batch,
        length=max_seqlen,
    )
    _layout_cache = layout
    return layout


def _to_padded(x: torch.Tensor, layout: _PadLayout) -> torch.Tensor:
    """(T, H, D) → (B, H, L, D), zeros in the padding."""
    _, h, d = x.shape
    padded = x.new_zeros(layout.batch * layout.length, h, d)
    padded.index_copy_(0, layout.flat_index, x)
    return padded.view(layout.batch, layout.length, h, d).transpose(1, 2)


def _from_padded(y: torch.Tensor, layout: _PadLayout) -> torch.Tensor:
    """(B, H, L, D) → (T, H, D), dropping the padding."""
    b, h, l, d = y.shape
    return y.transpose(1, 2).reshape(b * l, h, d).index_select(0, layout.flat_index)


def padded_attention(q, k, v, cu_seqlens, max_seqlen: int, *, scale=None, bias=None, layout=None):
    layout = layout or _pad_layout(cu_seqlens, max_seqlen, q.shape[0])
    qp, kp, vp = (_to_padded(t, layout) for t in (q, k, v))
    if bias is None:
        mask = layout.key_valid[:, None, None, :]  # bool, True = attend
    else:
        mask = bias
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, scale=scale)
    return _from_padded(out, layout)


def varlen_attention(q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, *, scale: float | None = None):
    """softmax(q·kᵀ·scale)·v inside each packed sequence. q, k, v: (T, H, D); cu_seqlens: int32 [B+1]."""
    if _varlen_attn is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        return _varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, scale=scale)
    return padded_attention(q, k, v, cu_seqlens, max_seqlen, scale=scale)


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi head slopes, MosaicBERT's rule for any head count (reference/MODELS.md §2.3)."""

    def power_of_two(n: int) -> list[float]:
        s = 2.0 ** (-8.0 / n)
        return [s * s**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    p = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(p) + power_of_two(2 * p)[0::2][: num_heads - p]


def alibi_attention(q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, slopes: torch.Tensor, *,
                    scale: float | None = None):
    """softmax(q·kᵀ·scale - slope_h·|i-j|)·v inside each packed sequence (DNABERT-S / MosaicBERT).

    `slopes`: float [H]. Positions i, j count from each sequence's own first token.
    """
    layout = _pad_layout(cu_seqlens, max_seqlen, q.shape[0])
    built_for = layout.alibi_for
    if layout.alibi_bias is None or built_for[0] is not slopes or built_for[1] != q.dtype:
        pos = torch.arange(layout.length, device=q.device)
        distance = (pos[None, :] - pos[:, None]).abs().to(torch.float32)  # [L, L]
        alibi = -slopes.to(torch.float32)[:, None, None] * distance  # [H, L, L]
        pad = torch.zeros(layout.key_valid.shape, dtype=torch.float32, device=q.device)
        pad.masked_fill_(~layout.key_valid, float("-inf"))
        layout.alibi_bias = (alibi[None] + pad[:, None, None, :]).to(q.dtype)  # [B, H, L, L]
        layout.alibi_for = (slopes, q.dtype)
    return padded_attention(q, k, v, cu_seqlens, max_seqlen, scale=scale, bias=layout.alibi_bias, layout=layout)


# ---------------------------------------------------------------------------------------------------------
# FlexAttention with a document mask and an ALiBi score_mod: the compiled alternative for DNABERT-S. It must run
# under torch.compile, and every new packed length compiles again unless the row is padded to a fixed size, so
# it is measured in benchmarks/embed_benchmark.py rather than used by default.

_flex_compiled = None


def flex_alibi_attention(q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, slopes: torch.Tensor, *,
                         scale: float | None = None, block_mask=None):
    """Same function as `alibi_attention` (q, k, v: (T, H, D)); CUDA only. Returns (out, block_mask) so the
    caller can reuse the mask for every layer of one batch."""
    global _flex_compiled
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _flex_compiled is None:
        _flex_compiled = torch.compile(flex_attention, dynamic=False)
    total = q.shape[0]
    cu = cu_seqlens.to(torch.int64)
    doc = torch.searchsorted(cu[1:], torch.arange(total, device=q.device), right=True)
    if block_mask is None:
        def same_doc(b, h, qi, ki):
            return doc[qi] == doc[ki]

        block_mask = create_block_mask(same_doc, None, None, total, total, device=q.device)
    slopes32 = slopes.to(torch.float32)

    def alibi(score, b, h, qi, ki):
        # Global indices are fine: the mask keeps q and kv inside one sequence, so |qi - ki| is the distance.
        return score - slopes32[h] * (qi - ki).abs().to(torch.float32)

    out = _flex_compiled(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                         score_mod=alibi, block_mask=block_mask, scale=scale)
    return out[0].transpose(0, 1), block_mask
