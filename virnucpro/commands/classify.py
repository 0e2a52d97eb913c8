"""`virnucpro classify`: score one shard's features with the VirNucPro classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from virnucpro.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, type=Path, help="features file from `virnucpro embed` (.npz)")
    p.add_argument("--classifier", required=True, type=Path, help="300_model.pth / 500_model.pth (or a state dict)")
    p.add_argument("--out", required=True, type=Path,
                   help="predictions TSV (the columns of prediction_results.txt, input order)")


def run(args: argparse.Namespace) -> int:
    from virnucpro.classify.outputs import write_prediction_results
    from virnucpro.classify.predict import predict_probs
    from virnucpro.io.features import load_features
    from virnucpro.models.classifier import load_classifier

    classifier = load_classifier(args.classifier)
    features = load_features(args.features)
    try:
        probs = predict_probs(classifier, features)
    except ValueError as exc:
        raise InputError(args.features, f"{exc} (models of different sizes?)") from None
    write_prediction_results(args.out, features.ids, probs)
    print(f"{len(features)} frame(s) scored → {args.out}")
    return 0
