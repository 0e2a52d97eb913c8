"""Token-balanced contiguous shards of a sample's frames [GPU-02, LOAD-01].

Work per frame is proportional to its tokens, not to the number of frames, so shards are cut by tokens: frames
are taken in input order and a shard is closed when the next frame would push it past `shard_tokens`. Every
shard but the last therefore holds between `shard_tokens - (largest frame)` and `shard_tokens` tokens; a frame
larger than the budget gets a shard of its own. The cut depends only on the frames and the budget, so the same
input always gives the same shards, and concatenating the shards in order gives back the input order.

Shards outnumbering GPUs is the normal case: each embed task leases a GPU (embed/lease.py) and the extra tasks
wait for one, which balances the load dynamically.

Size. Without an explicit budget, `auto_shard_tokens` sizes a sample's shards from its total tokens and the
number of GPUs the embed tasks will share: about SHARDS_PER_GPU shards per GPU, so every GPU has work and the
tail is a fraction of a GPU's share; no shard smaller than MIN_SHARD_TOKENS, so the fixed cost an embed task
pays before it computes stays within MAX_FIXED_FRACTION of its GPU time; no shard of more than about
MAX_SHARD_FRAMES frames, whose features the task holds in host memory. Memory wins over the fixed cost. The
shards of one sample get equal budgets, so n shards are cut, not n plus a sliver. Checkpoints inside a shard
(every 10,000 frames) bound what a kill loses whatever the size. The numbers are in docs/scaling.md §1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.frames import SHARD_HEADER, Frame, FrameBlock, FrameStats, frame_blocks, shard_rows
from virnucpro.models.encoders import ENCODERS

log = logging.getLogger(__name__)

# Auto sizing. Throughput of one H100, both encoders, in this module's tokens (docs/BENCHMARKS.md): 1.9M 500 bp
# frames/h at ~295 tokens each and 6.0M 150 bp frames/h at ~91 each both come to ~150K tokens/s.
GPU_TOKENS_PER_S = 150_000
TASK_FIXED_SECONDS = 15.0  # an embed task's cost before its first batch: model load, CUDA start-up, compile
MAX_FIXED_FRACTION = 0.03
MIN_SHARD_TOKENS = int(TASK_FIXED_SECONDS / MAX_FIXED_FRACTION * GPU_TOKENS_PER_S)  # 75M: ~8 min of an H100
SHARDS_PER_GPU = 3
# An embed task holds its shard's features (768 + 2560 float32, 13 KB a frame) in memory: 400K frames, 5.3 GB.
MAX_SHARD_FRAMES = 400_000
SHARD_GLOB = "shard_*.tsv"
MANIFEST = "manifest.tsv"


def frame_tokens(frame: Frame) -> int:
    """The frame's tokens, every encoder together (models/encoders.py: exact for ESM-2, estimated for DNABERT-S)."""
    return sum(spec.tokens_of_length(len(getattr(frame, spec.field))) for spec in ENCODERS)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.tsv"


def length_tokens(nucleotide: np.ndarray, protein: np.ndarray) -> np.ndarray:
    """``frame_tokens`` of frames with these nucleotide and protein lengths."""
    lengths = {"nucleotide": nucleotide, "protein": protein}
    return sum(spec.tokens_of_length(lengths[spec.field]) for spec in ENCODERS)


def block_tokens(block: FrameBlock) -> np.ndarray:
    """``frame_tokens`` of every frame of a block."""
    return length_tokens(*(np.fromiter(map(len, seqs), np.int64, len(block.ids))
                           for seqs in (block.nucleotide, block.protein)))


def block_stats(blocks: Iterable[FrameBlock]) -> FrameStats:
    n = tokens = largest = 0
    for block in blocks:
        if block.ids:
            t = block_tokens(block)
            n, tokens, largest = n + len(t), tokens + int(t.sum()), max(largest, int(t.max()))
    return FrameStats(n, tokens, largest)


def frame_stats(frames: Iterable[Frame]) -> FrameStats:
    return block_stats(frame_blocks(frames))


def auto_shard_count(stats: FrameStats, gpus: int) -> int:
    """Shards for a sample: SHARDS_PER_GPU per GPU, fewer when they would fall under MIN_SHARD_TOKENS, more when
    they would exceed MAX_SHARD_FRAMES."""
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    wanted = SHARDS_PER_GPU * gpus
    most = max(1, stats.tokens // MIN_SHARD_TOKENS)  # fixed cost within MAX_FIXED_FRACTION
    least = max(1, -(-stats.frames // MAX_SHARD_FRAMES))  # host memory
    return max(least, min(wanted, most))


def auto_shard_tokens(stats: FrameStats, gpus: int) -> int:
    """The budget that cuts the sample into `auto_shard_count` shards of nearly equal tokens: every shard but the
    last is closed above `budget - largest`, i.e. above total/n, so n shards hold everything."""
    n = auto_shard_count(stats, gpus)
    return max(1, -(-stats.tokens // n) + stats.largest)


def gpus_for_sizing(device: str = "auto", gpus: str | None = None) -> tuple[int, str]:
    """(GPUs the embed tasks will share, how that was found), by the lease's own rules (embed/lease.py) as seen
    by this process; 1 on the CPU. A SLURM job sees only its own grant, so there the count must be given."""
    from virnucpro.embed.lease import _candidates, parse_gpu_list

    if device == "cpu":
        return 1, "--device cpu"
    ids, source = _candidates(parse_gpu_list(gpus) if gpus else None)
    if source == "slurm":
        return max(1, len(ids)), "this SLURM job's grant (set params.shard_gpus to the GPUs the run will get)"
    return max(1, len(ids)), source if ids else f"{source}: no GPU"


class _Shard:
    """The shard being written: its TSV open in the temporary directory, and what the manifest says of it."""

    def __init__(self, tmp: Path, index: int):
        self.name = shard_name(index)
        self.fh = open(tmp / self.name, "wb")
        self.fh.write(SHARD_HEADER.encode() + b"\n")
        self.frames = self.tokens = 0
        self.first = self.last = b""

    def add(self, block: FrameBlock, tokens: int) -> None:
        self.fh.write(shard_rows(block))
        self.first = self.first or block.ids[0]
        self.last = block.ids[-1]
        self.frames += len(block.ids)
        self.tokens += tokens

    def close(self, manifest) -> None:
        self.fh.close()
        manifest.write(f"{self.name}\t{self.frames}\t{self.tokens}\t{self.first.decode()}\t{self.last.decode()}\n")


def _write_shards(blocks: Iterable[FrameBlock], tmp: Path, shard_tokens: int, manifest
                  ) -> tuple[list[str], FrameStats]:
    """Cut the frames into shards, greedily in input order, and write them; returns their names and the frames'
    totals. A shard is closed when the next frame would push it past ``shard_tokens``; a frame larger than that
    gets one of its own. Within a block the frames that still fit are found by a binary search over the
    cumulative tokens."""
    shard = _Shard(tmp, 0)
    names = [shard.name]
    frames = total = largest = 0
    for block in blocks:
        tokens = block_tokens(block)
        cum = np.cumsum(tokens)
        if len(cum):
            frames, total, largest = frames + len(cum), total + int(cum[-1]), max(largest, int(tokens.max()))
        start = 0
        while start < len(cum):
            before = int(cum[start - 1]) if start else 0
            end = max(start, int(np.searchsorted(cum, before + shard_tokens - shard.tokens, side="right")))
            if end == start and not shard.frames:
                end = start + 1
            if end > start:
                shard.add(FrameBlock(*(part[start:end] for part in block)), int(cum[end - 1]) - before)
            if end < len(cum):  # frame `end` does not fit
                shard.close(manifest)
                shard = _Shard(tmp, len(names))
                names.append(shard.name)
            start = end
    shard.close(manifest)
    return names, FrameStats(frames, total, largest)


def split_frames(frames: Iterable[Frame], outdir: str | os.PathLike, shard_tokens: int) -> list[Path]:
    """``split_blocks`` for frames one at a time."""
    return split_blocks(frame_blocks(frames), outdir, shard_tokens)


def split_blocks(blocks: Iterable[FrameBlock], outdir: str | os.PathLike, shard_tokens: int,
                 expected: FrameStats | None = None) -> list[Path]:
    """Write `shard_00000.tsv`, … into `outdir` (atomically) plus `manifest.tsv`; return the shard paths.

    A sample without frames still gets one (header-only) shard, so every sample flows through every step. With
    ``expected`` (the totals the budget was sized from), frames with other totals raise StatsMismatch and write
    nothing: their shards would not be the ones a first pass over them sizes.
    """
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
    outdir = Path(outdir)
    with atomic_output_dir(outdir) as tmp:
        with open(tmp / MANIFEST, "w") as manifest:
            manifest.write("shard\tframes\ttokens\tfirst_frame\tlast_frame\n")
            names, found = _write_shards(blocks, tmp, shard_tokens, manifest)
        if expected is not None and found != expected:
            raise StatsMismatch(f"says {expected.frames:,} frames, {expected.tokens:,} tokens, largest "
                                f"{expected.largest:,}, but the frame files hold {found.frames:,}, {found.tokens:,}, "
                                f"{found.largest:,}")
    # A re-run into the same directory may have made more shards last time: those would be read as ours.
    for stale in set(p.name for p in outdir.glob(SHARD_GLOB)) - set(names):
        (outdir / stale).unlink()
    log.info("%d shard(s) of at most %d tokens in %s", len(names), shard_tokens, outdir)
    return [outdir / name for name in names]


class StatsMismatch(ValueError):
    """The frame totals given for sizing are not those of the frames."""
