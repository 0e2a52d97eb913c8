"""`virnucpro make-test-models`: tiny random-weight models in the real file formats (for tests and dry runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outdir", required=True, type=Path, help="directory to write the models into")


def run(args: argparse.Namespace) -> int:
    from virnucpro.models.tiny import write_test_models

    paths = write_test_models(args.outdir)
    for name in ("esm_pt", "esm_hf", "dnabert", "classifier"):
        print(f"{name}\t{paths[name]}")
    return 0
