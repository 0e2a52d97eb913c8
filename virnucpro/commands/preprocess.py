"""`virnucpro preprocess`: chunk one sequence file and keep the stop-free frames of every chunk."""

from __future__ import annotations

import argparse

from virnucpro import options
from virnucpro.commands.argtypes import non_negative_int


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of bases, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, metavar="IN",
                   help="FASTA or FASTQ, plain, gzip, bzip2 or xz (detected from the content)")
    p.add_argument("--chunk-length", required=True, type=_positive_int, metavar="L",
                   help="chunk length in bp: 300 or 500 match the published models (300_model.pth, "
                        "500_model.pth); other positive values are accepted for experiments")
    p.add_argument("--outdir", required=True, metavar="DIR",
                   help="writes chunked.fa, identified_nucleotide.fa, identified_protein.faa, records.tsv")
    p.add_argument("--min-length", type=non_negative_int, default=options.DEFAULT_MIN_LENGTH, metavar="BP",
                   help="records shorter than BP bases are not chunked: records.tsv lists them as too_short "
                        "(default 0: keep every record)")
    p.add_argument("--sample", metavar="ID", help="sample name, used in log messages")
    p.add_argument("--allow-empty", action="store_true",
                   help="a file without records (0 bytes) gives empty outputs and a warning, not an error (the "
                        "pipeline's samplesheet runs: one empty sample must not stop the others)")


def run(args: argparse.Namespace) -> int:
    import logging

    from virnucpro.preprocess.run import preprocess_file

    if args.chunk_length not in options.CHUNK_LENGTHS:
        logging.getLogger(__name__).warning(
            "chunk length %d matches no published model (trained lengths: %s)",
            args.chunk_length, ", ".join(map(str, options.CHUNK_LENGTHS)),
        )
    preprocess_file(args.input, args.chunk_length, args.outdir, sample=args.sample, min_length=args.min_length,
                    allow_empty=args.allow_empty)
    return 0
