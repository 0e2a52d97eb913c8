#!/usr/bin/env python3
"""The AGGREGATE (and CLASSIFY) tail of a GPU run, timed on the CPU with no embedding.

    python3 benchmarks/aggregate_speed.py make-inputs --n 1000000 --work /tmp/agg
    python3 benchmarks/aggregate_speed.py time --work /tmp/agg --outdir /tmp/agg/after [--code /work/main]
        [--compare /tmp/agg/before] [--profile /tmp/agg/aggregate.prof]
    python3 benchmarks/aggregate_speed.py classify --work /tmp/agg [--code DIR]

`make-inputs` writes what the pipeline hands AGGREGATE for a 1-sample read run: the synthetic 150-bp reads of
benchmarks/pipeline_gpu.py, `virnucpro preprocess` (chunk length 300) and `virnucpro shard` (auto sizing for one
GPU: 4 shards at 1M reads) on them, then one predictions TSV per shard with seeded random scores written by
classify's own writer (so the format is exactly CLASSIFY's). `classify` also writes one shard's features file
(random, 3328 wide) and a 3328->512->2 classifier of the published layout, and times `virnucpro classify` on it.

`time` runs `bin/virnucpro aggregate` of the checkout --code (default: this one) under /usr/bin/time -v and prints
its wall time and peak RSS; --compare checks every output file byte for byte against an earlier run's.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE = "reads"
CHUNK_LENGTH = 300
SEED = 12
FEATURE_WIDTH = 3328  # DNABERT-S 768 + ESM-2 3B 2560


def _run(cmd: list[str]) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def make_inputs(args) -> None:
    from virnucpro.classify.outputs import write_prediction_results
    from virnucpro.io.frames import read_frames_tsv

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    virnucpro = ROOT / "bin" / "virnucpro"
    # Steps whose output is already there are skipped (delete --work to start over).
    if not (work / "reads.fa").exists():
        _run([sys.executable, ROOT / "benchmarks" / "pipeline_gpu.py", "inputs", "--workload", "reads", "--n",
              args.n, "--out", work / "reads.fa"])
    if not (work / "preprocess" / "records.tsv").exists():
        _run([virnucpro, "preprocess", "--input", work / "reads.fa", "--sample", SAMPLE, "--outdir", work / "preprocess",
              "--chunk-length", CHUNK_LENGTH, "--allow-empty", "--min-length", 0])
    if not (work / "shards" / "manifest.tsv").exists():
        _run([virnucpro, "shard", "--nucleotide", work / "preprocess" / "identified_nucleotide.fa", "--protein",
              work / "preprocess" / "identified_protein.faa", "--outdir", work / "shards", "--shard-tokens", "auto",
              "--device", "cpu"])
    rng = np.random.default_rng(SEED)
    (work / "predictions").mkdir(exist_ok=True)
    for shard in sorted((work / "shards").glob("shard_*.tsv")):
        ids = [f.id for f in read_frames_tsv(shard)]
        # Softmax of random logits in float32, as the classifier gives them; a spread wide enough for both calls.
        logits = rng.normal(0.0, 3.0, (len(ids), 2)).astype(np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        out = work / "predictions" / f"{SAMPLE}.{shard.stem}.predictions.tsv"
        write_prediction_results(out, ids, probs)
        print(f"{len(ids)} frames -> {out}")


def _time_v(cmd: list, log: Path, env: dict | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` under /usr/bin/time -v; return (wall seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        subprocess.run(["/usr/bin/time", "-v"] + [str(c) for c in cmd], check=True, stderr=fh, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log.read_text()).group(1))
    return wall, rss_kb / 1024


def time_aggregate(args) -> None:
    work, code = args.work, args.code
    predictions = sorted((work / "predictions").glob("*.predictions.tsv"))
    shards = sorted((work / "shards").glob("shard_*.tsv"))
    # bin/virnucpro is a shell launcher; under cProfile the package is run the way it runs it.
    launcher = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "virnucpro"] if args.profile \
        else [code / "bin" / "virnucpro"]
    cmd = launcher + ["aggregate", "--sample", SAMPLE, "--predictions", *predictions,
                    "--shards", *shards, "--records", work / "preprocess" / "records.tsv", "--input",
                    work / "reads.fa", "--chunk-length", CHUNK_LENGTH, "--threshold", 0.5, "--min-length", 0,
                    "--region-gap", 1, "--outdir", args.outdir]
    # Run in the checkout: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH, so from
    # another checkout that checkout's package would run.
    wall, rss = _time_v(cmd, work / "aggregate.time.log", env={**os.environ, "PYTHONPATH": str(code)}, cwd=code)
    print(f"aggregate ({code}): wall {wall:.1f} s, peak RSS {rss:.0f} MiB")
    if args.compare:
        names = sorted(p.name for p in args.compare.iterdir())
        assert names == sorted(p.name for p in args.outdir.iterdir()), "different output files"
        differ = [n for n in names if not filecmp.cmp(args.compare / n, args.outdir / n, shallow=False)]
        print("all outputs byte-identical" if not differ else f"DIFFER: {', '.join(differ)}")
        if differ:
            sys.exit(1)


def time_classify(args) -> None:
    import torch

    from virnucpro.io.features import Features, save_features
    from virnucpro.io.frames import read_frames_tsv
    from virnucpro.models.encoders import COLUMNS

    work = args.work
    features_path, model_path = work / "classify" / "shard.features.npz", work / "classify" / "classifier.pth"
    if not features_path.exists():
        features_path.parent.mkdir(parents=True, exist_ok=True)
        ids = [f.id for f in read_frames_tsv(sorted((work / "shards").glob("shard_*.tsv"))[0])]
        rng = np.random.default_rng(SEED)
        widths = {"nucleotide": 768, "protein": FEATURE_WIDTH - 768}  # DNABERT-S, ESM-2 3B
        save_features(features_path, Features(ids, {name: rng.standard_normal((len(ids), widths[name]),
                                                                              dtype=np.float32)
                                                    for name in COLUMNS}))
        from virnucpro.models.classifier import MLPClassifier

        torch.manual_seed(SEED)
        torch.save(MLPClassifier(FEATURE_WIDTH).state_dict(), model_path)
    cmd = [args.code / "bin" / "virnucpro", "classify", "--features", features_path,  # a shell launcher
           "--classifier", model_path, "--out", args.outdir / "shard.predictions.tsv"]
    args.outdir.mkdir(parents=True, exist_ok=True)
    wall, rss = _time_v(cmd, work / "classify.time.log", env={**os.environ, "PYTHONPATH": str(args.code)},
                        cwd=args.code)
    print(f"classify ({args.code}): wall {wall:.1f} s, peak RSS {rss:.0f} MiB")


def _absolute(path: str) -> Path:
    return Path(path).resolve()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-inputs")
    m.add_argument("--n", type=int, default=1_000_000)
    m.add_argument("--work", type=_absolute, required=True)
    for name in ("time", "classify"):
        t = sub.add_parser(name)
        t.add_argument("--work", type=_absolute, required=True)
        t.add_argument("--outdir", type=_absolute, required=True)
        t.add_argument("--code", type=_absolute, default=ROOT, help="checkout whose bin/virnucpro runs")
        if name == "time":
            t.add_argument("--compare", type=_absolute, help="outputs of an earlier run to compare with")
            t.add_argument("--profile", type=_absolute, help="write a cProfile of the run here")
    args = ap.parse_args(argv)
    {"make-inputs": make_inputs, "time": time_aggregate, "classify": time_classify}[args.cmd](args)


if __name__ == "__main__":
    main()
