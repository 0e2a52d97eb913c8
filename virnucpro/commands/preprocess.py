"""`virnucpro preprocess`: chunk one sequence file and keep the stop-free frames of every chunk."""

from __future__ import annotations

import argparse

from virnucpro import options
from virnucpro.commands.argtypes import add_chunking


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, metavar="IN",
                   help="FASTA or FASTQ, plain, gzip, bzip2 or xz (detected from the content)")
    add_chunking(p, applies=True)
    p.add_argument("--outdir", required=True, metavar="DIR",
                   help="writes chunked.fa, identified_nucleotide.fa, identified_protein.faa, records.tsv")
    p.add_argument("--sample", metavar="ID", help="sample name, used in log messages")
    p.add_argument("--allow-empty", action="store_true",
                   help="a file without records (0 bytes) gives empty outputs and a warning, not an error (the "
                        "pipeline's samplesheet runs: one empty sample must not stop the others)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes that chunk and identify frames (default 1: the one reading the input; N > 1: N "
                        "worker processes beside it); the outputs do not depend on it")


def run(args: argparse.Namespace) -> int:
    import logging

    from virnucpro.preprocess.run import preprocess_file

    options.require_at_least("workers", args.workers, 1)
    if args.chunk_length not in options.CHUNK_LENGTHS:
        logging.getLogger(__name__).warning(
            "chunk length %d matches no published model (trained lengths: %s)",
            args.chunk_length, ", ".join(map(str, options.CHUNK_LENGTHS)),
        )
    preprocess_file(args.input, args.chunk_length, args.outdir, sample=args.sample, min_length=args.min_length,
                    allow_empty=args.allow_empty, workers=args.workers)
    return 0
