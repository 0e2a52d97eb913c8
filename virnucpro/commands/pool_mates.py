"""`virnucpro pool-mates`: the two mate files of a paired-read sample as one FASTA (virnucpro.io.mates)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fastq-1", required=True, metavar="R1", help="first mates (FASTQ or FASTA, plain or compressed)")
    p.add_argument("--fastq-2", required=True, metavar="R2", help="second mates, in the same order as R1")
    p.add_argument("--out", required=True, metavar="FASTA", help="where the pooled reads go (FASTA)")
    p.add_argument("--sample", metavar="ID", help="sample name, used in log messages")


def run(args: argparse.Namespace) -> int:
    from virnucpro.io.mates import pool_mates

    n = pool_mates(args.fastq_1, args.fastq_2, args.out)
    print(f"{args.sample or args.out}: {n} reads ({n // 2} pairs) pooled into {args.out}")
    return 0
