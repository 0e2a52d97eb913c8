#!/usr/bin/env python3
"""Host memory of an EMBED task's feature rows: a shard's rows filled part by part at a chosen pace (the GPU's,
~2K 150-bp frames/s on an H200) and scored as they fill (embed/scoring.py), with and without giving scored rows
back. Random features of the real widths (768 + 2560), the full-size classifier.

    benchmarks/scoring_memory.py --classifier M/300_model.pth --frames 340000 --part-seconds 1.5 [--release]
"""

import argparse
import resource
import time

import numpy as np

from virnucpro.embed.dedup import FeatureRows
from virnucpro.embed.scoring import RunningScores
from virnucpro.io.features import Features
from virnucpro.models.classifier import load_classifier

EVERY = 10_000  # frames a checkpoint part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--frames", type=int, default=340_000)
    ap.add_argument("--part-seconds", type=float, default=1.5, help="pause after each part of 10,000 frames")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--release", action="store_true", help="give scored rows back (the pipeline's default)")
    args = ap.parse_args()

    g = np.random.default_rng(0)
    block = {"nucleotide": g.standard_normal((EVERY, 768), dtype=np.float32),
             "protein": g.standard_normal((EVERY, 2560), dtype=np.float32)}
    rows = FeatureRows(args.frames)
    scores = RunningScores(load_classifier(args.classifier), rows, threads=args.threads, release=args.release)
    t = time.perf_counter()
    for start in range(0, args.frames, EVERY):
        end = min(start + EVERY, args.frames)
        rows.put(start, Features([f"f{i}" for i in range(start, end)], {k: v[:end - start] for k, v in block.items()}))
        scores.filled()
        if end < args.frames:
            time.sleep(args.part_seconds)
    t_last = time.perf_counter()
    scores.finish()
    print(f"{args.frames} frames, release={args.release}: {t_last - t:.1f} s filling, {time.perf_counter() - t_last:.2f} s "
          f"after the last part, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB, "
          f"released {rows.released_bytes / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
