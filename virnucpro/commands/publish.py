"""`virnucpro publish`: put a finished result folder into --outdir as one unit (virnucpro/io/publish.py).

The pipeline calls it once per sample (every file AGGREGATE, PREPROCESS and EMBED produced for the sample) and once
for the report; the destination then holds all of them or, after a failure, what it held before.
"""

from __future__ import annotations

import argparse


def _pair(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, source


def add_arguments(p: argparse.ArgumentParser) -> None:
    from virnucpro.io.publish import MODES

    p.add_argument("--dest", required=True, metavar="DIR", help="the folder to publish (replaced as a whole)")
    p.add_argument("--mode", default="copy", choices=MODES,
                   help="how files are placed (the pipeline's --publish_dir_mode; move copies)")
    p.add_argument("files", nargs="+", type=_pair, metavar="NAME=FILE",
                   help="each file of the folder: its name inside DIR (may hold '/') and where it is now")


def run(args: argparse.Namespace) -> int:
    from virnucpro.io.publish import publish_folder

    files = dict(args.files)
    if len(files) != len(args.files):
        raise SystemExit("virnucpro publish: a NAME is given twice")
    publish_folder(files, args.dest, args.mode)
    return 0
