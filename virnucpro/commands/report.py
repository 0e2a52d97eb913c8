"""`virnucpro report`: the run's HTML report and MultiQC custom content, from the per-sample summaries."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--summaries", required=True, nargs="+", type=Path, metavar="JSON",
                   help="<sample>.summary.json files written by `virnucpro aggregate`")
    p.add_argument("--embed-summaries", nargs="*", default=[], type=Path, metavar="JSON",
                   help="<sample>.<shard>.embed.json files written by `virnucpro embed --summary` (throughput)")
    p.add_argument("--provenance", nargs="*", default=[], type=Path, metavar="FILE",
                   help="text files shown verbatim in the report (software versions, model checksums)")
    p.add_argument("--docs", type=Path, metavar="MD",
                   help="docs/output.md: copied beside the report as output.md, which the report links to")
    p.add_argument("--outdir", required=True, type=Path, metavar="DIR",
                   help="writes virnucpro_report.html and *_mqc.tsv files for MultiQC")


def run(args: argparse.Namespace) -> int:
    from virnucpro.report.html import write_report

    written = write_report(args.summaries, args.embed_summaries, args.outdir, args.provenance, docs=args.docs)
    print("\n".join(str(p) for p in written))
    return 0
