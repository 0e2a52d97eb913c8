"""`virnucpro check-models`: are the three model files readable as what they claim, and do they fit together?

The same checks `virnucpro provenance` (the pipeline's first step) and `virnucpro predict` run before any
embedding; this command only checks (no hashing, nothing written). See virnucpro.models.check.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--esm-model", required=True, type=Path, help="ESM-2: fair-esm .pt file or HF model directory")
    p.add_argument("--dnabert-model", required=True, type=Path, help="DNABERT-S HF model directory")
    p.add_argument("--classifier", required=True, type=Path, help="classifier .pth")
    p.add_argument("--chunk-length", type=int, default=None,
                   help="the run's chunk length, compared with the one the classifier's file name states")


def run(args: argparse.Namespace) -> int:
    from virnucpro.models.check import check_models, print_problems

    check = check_models(args.esm_model, args.dnabert_model, args.classifier, args.chunk_length)
    if check.ok:
        print("models ok: " + ", ".join(f"{k} {v}" for k, v in check.facts.items() if v is not None))
    return print_problems(check)
