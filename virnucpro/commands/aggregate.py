"""`virnucpro aggregate`: merge a sample's shard predictions into its result files (docs/output.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from virnucpro import options
from virnucpro.commands.argtypes import add_chunking, non_negative_int


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample", required=True, metavar="ID", help="sample name: prefix of the per-sample files")
    p.add_argument("--predictions", required=True, nargs="+", type=Path, metavar="TSV",
                   help="per-frame predictions (classify's output, or an earlier prediction_results.txt), in "
                        "shard order; names holding shard_<n> are also sorted by n")
    p.add_argument("--shards", nargs="+", type=Path, metavar="TSV",
                   help="the shard TSVs the predictions were computed from: the predicted frame ids must be "
                        "exactly theirs, in order")
    p.add_argument("--records", required=True, type=Path, metavar="TSV",
                   help="preprocess's records.tsv for this sample (one row per input record)")
    p.add_argument("--input", required=True, type=Path, metavar="SEQS",
                   help="the sample's original FASTA/FASTQ (the viral records are copied from it)")
    p.add_argument("--threshold", type=_threshold, default=options.DEFAULT_THRESHOLD, metavar="T",
                   help="call a record viral when its virus_score >= T (default 0.5: a record is viral when "
                        "any of its chunks is True in prediction_results_highestscore.csv)")
    add_chunking(p, applies=False)
    p.add_argument("--region-gap", type=non_negative_int, default=options.DEFAULT_REGION_GAP, metavar="N",
                   help="bridge up to N scored chunks below the threshold between two viral chunks of one region "
                        "(chunks without a scored frame are always bridged there; default "
                        f"{options.DEFAULT_REGION_GAP}; 0: bridge none)")
    p.add_argument("--outdir", required=True, type=Path, metavar="DIR", help="where the result files go")


def run(args: argparse.Namespace) -> int:
    from virnucpro.report.aggregate import aggregate_sample

    aggregate_sample(args.sample, args.predictions, args.records, args.input, args.threshold, args.outdir,
                     chunk_length=args.chunk_length, shard_paths=args.shards, min_length=args.min_length,
                     region_gap=args.region_gap)
    return 0
