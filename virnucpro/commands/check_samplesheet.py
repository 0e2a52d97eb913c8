"""`virnucpro check-samplesheet`: validate a samplesheet against assets/schema_input.json and list its samples."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, metavar="SHEET.csv",
                   help="CSV with a header: sample, then fasta, fastq or fastq_1[,fastq_2], plus any metadata "
                        "columns; relative paths are relative to the samplesheet's folder, URIs are kept")
    p.add_argument("--out", metavar="VALID.json",
                   help="write the checked samples here as JSON: sample, files (absolute paths or URIs), format, "
                        "meta (the metadata columns)")
    p.add_argument("--schema", metavar="JSON", help="schema to check against (default: assets/schema_input.json)")


def run(args: argparse.Namespace) -> int:
    from virnucpro.io.samplesheet import SCHEMA_PATH, load_schema, read_samplesheet, write_valid_samplesheet

    samples = read_samplesheet(args.input, load_schema(args.schema or SCHEMA_PATH))
    if args.out:
        write_valid_samplesheet(samples, args.out)
    print(f"{args.input}: {len(samples)} sample(s) OK: {', '.join(s.sample for s in samples)}")
    return 0
