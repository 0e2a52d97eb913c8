"""`virnucpro shard`: cut a sample's frames into token-balanced shards for the embed tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

from virnucpro import options
from virnucpro.errors import OptionError


def _positive_or_auto(text: str) -> int | None:
    if text == options.SHARD_TOKENS_AUTO:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nucleotide", required=True, type=Path, help="frames' nucleotides (identified_nucleotide.fa)")
    p.add_argument("--protein", required=True, type=Path, help="frames' proteins (identified_protein.faa)")
    p.add_argument("--outdir", required=True, type=Path, help="where shard_00000.tsv … and manifest.tsv go")
    p.add_argument("--shard-tokens", type=_positive_or_auto, default=None, metavar="N|auto",
                   help="tokens per shard, ESM-2 plus DNABERT-S (default auto: from the sample's tokens and the "
                        "GPUs, docs/scaling.md; smaller: more parallel tasks, larger: less per-task overhead)")
    p.add_argument("--num-gpus", type=_positive_or_auto, default=None, metavar="N|auto",
                   help="GPUs the embed tasks will share, for auto sizing (default auto: as the GPU lease sees "
                        "them from here; 1 on the CPU or in a SLURM job without GPUs)")
    p.add_argument("--gpus", metavar="IDS", help="the embed step's --gpus (e.g. 0,1), counted when --num-gpus is auto")
    p.add_argument("--frame-stats", type=Path, metavar="TSV",
                   help="the frames' totals, as preprocess writes them (frame_stats.tsv): auto sizing takes them "
                        "instead of a first pass over the frames (checked against the frames as they are cut)")
    p.add_argument("--device", default=options.DEFAULT_DEVICE, choices=options.DEVICES,
                   help="the embed step's --device: cpu counts as one GPU")


def run(args: argparse.Namespace) -> int:
    from virnucpro.embed.shard import StatsMismatch, auto_shard_tokens, block_stats, gpus_for_sizing, split_blocks
    from virnucpro.errors import InputError
    from virnucpro.io.frames import read_frame_blocks, read_frame_stats

    if args.shard_tokens is not None and args.shard_tokens < 1:
        raise OptionError("shard_tokens", f"must be a positive number of tokens, got {args.shard_tokens}")
    if args.num_gpus is not None and args.num_gpus < 1:
        raise OptionError("num_gpus", f"must be at least 1, got {args.num_gpus}")
    budget, how, expected = args.shard_tokens, options.flag("shard_tokens"), None
    if budget is None:
        if args.num_gpus:
            gpus, source = args.num_gpus, options.flag("num_gpus")
        else:
            gpus, source = gpus_for_sizing(args.device, args.gpus)
        if args.frame_stats:
            stats = expected = read_frame_stats(args.frame_stats)
        else:
            stats = block_stats(read_frame_blocks(args.nucleotide, args.protein))  # a first pass: totals only
        budget = auto_shard_tokens(stats, gpus)
        how = (f"auto: {stats.frames:,} frames, {stats.tokens:,} tokens, {gpus} GPU(s) from {source}")
    try:
        shards = split_blocks(read_frame_blocks(args.nucleotide, args.protein), args.outdir, budget, expected)
    except StatsMismatch as exc:
        raise InputError(args.frame_stats, f"{exc} (not the frame_stats.tsv of these frame files)") from None
    print(f"{len(shards)} shard(s) of at most {budget:,} tokens in {args.outdir} ({how})")
    return 0
