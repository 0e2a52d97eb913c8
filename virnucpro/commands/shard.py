"""`virnucpro shard`: cut a sample's frames into token-balanced shards for the embed tasks."""

from __future__ import annotations

import argparse
from pathlib import Path

from virnucpro.errors import InputError

HELP = "Split a sample's frames into token-balanced shards."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from virnucpro.embed.shard import DEFAULT_SHARD_TOKENS

    p.add_argument("--nucleotide", required=True, type=Path, help="frames' nucleotides (identified_nucleotide.fa)")
    p.add_argument("--protein", required=True, type=Path, help="frames' proteins (identified_protein.faa)")
    p.add_argument("--outdir", required=True, type=Path, help="where shard_00000.tsv … and manifest.tsv go")
    p.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, metavar="N",
                   help=f"tokens per shard, ESM-2 plus DNABERT-S (default {DEFAULT_SHARD_TOKENS:,}; "
                        "smaller: more parallel tasks and finer -resume, larger: less per-task model loading)")


def run(args: argparse.Namespace) -> int:
    from virnucpro.embed.shard import split_frames
    from virnucpro.io.frames import read_frame_pair

    if args.shard_tokens < 1:
        raise InputError("--shard-tokens", f"must be a positive number of tokens, got {args.shard_tokens}")
    shards = split_frames(read_frame_pair(args.nucleotide, args.protein), args.outdir, args.shard_tokens)
    print(f"{len(shards)} shard(s) in {args.outdir}")
    return 0
