"""Token-balanced contiguous shards of a sample's frames [GPU-02, LOAD-01].

Work per frame is proportional to its tokens, not to the number of frames, so shards are cut by tokens: frames
are taken in input order and a shard is closed when the next frame would push it past `shard_tokens`. Every
shard but the last therefore holds between `shard_tokens - (largest frame)` and `shard_tokens` tokens; a frame
larger than the budget gets a shard of its own. The cut depends only on the frames and the budget, so the same
input always gives the same shards, and concatenating the shards in order gives back the input order.

Shards outnumbering GPUs is the normal case: each embed task leases a GPU (embed/lease.py) and the extra tasks
wait for one, which balances the load dynamically.

Default size: 16M tokens, about 54K frames of a 500 bp chunk (~295 tokens each) or 90K of a 300 bp chunk. At the
measured ~70K ESM-2 3B tokens/s per H100/H200 (LANDSCAPE.md) such a shard runs ~3-4 minutes, so loading the two
models (tens of seconds per task) costs ~10%, while the in-shard checkpoints (every 10,000 frames, ~40 s of work)
bound what a kill loses. A 6M-frame sample makes ~110 shards: 14 per GPU on 8 GPUs, a short tail.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

from virnucpro.io.frames import Frame, write_frames_tsv
from virnucpro.io.atomic import atomic_output_dir

log = logging.getLogger(__name__)

DEFAULT_SHARD_TOKENS = 16_000_000
SHARD_GLOB = "shard_*.tsv"
MANIFEST = "manifest.tsv"


def esm_tokens(protein: str) -> int:
    return len(protein) + 2  # <cls> residues <eos>; VirNucPro's proteins are never truncated


def dnabert_tokens(nucleotide: str) -> int:
    # DNABERT-S's BPE averages ~4 bases per token on genomic DNA, plus [CLS] and [SEP]. An estimate is enough
    # to balance shards and keeps torch/tokenizers out of this step.
    return len(nucleotide) // 4 + 2


def frame_tokens(frame: Frame) -> int:
    return esm_tokens(frame.protein) + dnabert_tokens(frame.nucleotide)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.tsv"


def _cut(frames: Iterable[Frame], shard_tokens: int) -> Iterator[tuple[list[Frame], int]]:
    """(frames, tokens) of each shard, in order; at least one, possibly empty."""
    current: list[Frame] = []
    tokens = 0
    for frame in frames:
        n = frame_tokens(frame)
        if current and tokens + n > shard_tokens:
            yield current, tokens
            current, tokens = [], 0
        current.append(frame)
        tokens += n
    yield current, tokens


def split_frames(frames: Iterable[Frame], outdir: str | os.PathLike, shard_tokens: int) -> list[Path]:
    """Write `shard_00000.tsv`, … into `outdir` (atomically) plus `manifest.tsv`; return the shard paths.

    A sample without frames still gets one (header-only) shard, so every sample flows through every step.
    """
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
    outdir = Path(outdir)
    names: list[str] = []
    with atomic_output_dir(outdir) as tmp:
        with open(tmp / MANIFEST, "w") as manifest:
            manifest.write("shard\tframes\ttokens\tfirst_frame\tlast_frame\n")
            for index, (shard, tokens) in enumerate(_cut(frames, shard_tokens)):
                names.append(shard_name(index))
                write_frames_tsv(tmp / names[-1], shard)
                first, last = (shard[0].id, shard[-1].id) if shard else ("", "")
                manifest.write(f"{names[-1]}\t{len(shard)}\t{tokens}\t{first}\t{last}\n")
    # A re-run into the same directory may have made more shards last time: those would be read as ours.
    for stale in set(p.name for p in outdir.glob(SHARD_GLOB)) - set(names):
        (outdir / stale).unlink()
    log.info("%d shard(s) of at most %d tokens in %s", len(names), shard_tokens, outdir)
    return [outdir / name for name in names]
