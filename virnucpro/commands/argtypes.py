"""Argument types shared by the commands: one message for one kind of bad value."""

from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value



def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of bases, got {text}")
    return value


def add_chunking(p: argparse.ArgumentParser, *, applies: bool) -> None:
    """--chunk-length and --min-length: preprocess applies them; aggregate checks the records table against them,
    so there both are optional (the chunk length is then inferred)."""
    from virnucpro import options

    if applies:
        p.add_argument("--chunk-length", required=True, type=positive_int, metavar="L",
                       help="chunk length in bp: 300 or 500 match the published models (300_model.pth, "
                            "500_model.pth); other positive values are accepted for experiments")
    else:
        p.add_argument("--chunk-length", type=positive_int, metavar="L",
                       help="chunk length used by preprocess (checked against the records table; default: "
                            "inferred)")
    p.add_argument("--min-length", type=non_negative_int, default=options.DEFAULT_MIN_LENGTH, metavar="BP",
                   help="records shorter than BP bases are not chunked: records.tsv lists them as too_short "
                        "(default 0: keep every record)" if applies else
                        "the --min-length preprocess was run with (checked against the records table's "
                        "too_short rows; default 0)")
