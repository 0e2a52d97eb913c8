"""Several shards queued through the GPU lease on the GPUs of one machine: are they serialised, do outputs match?

Starts N `virnucpro embed` processes at once, exactly as N concurrent EMBED tasks would run them (same lease dir,
same arguments), then checks from their logs that no two held the same GPU at the same time, and compares every
shard's features with a run of the same shard alone. Uses the tiny real-format test models: what is measured is
the placement, not the model speed.

    PYTHONPATH=. python3 benchmarks/lease_one_gpu.py --shards 4 --frames 3000 --out $OUT
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from virnucpro.io.features import load_features  # noqa: E402
from virnucpro.io.frames import Frame, write_frames_tsv  # noqa: E402

CODONS = {  # one stop-free codon per amino acid is enough for synthetic frames
    "A": "GCT", "C": "TGT", "D": "GAT", "E": "GAA", "F": "TTT", "G": "GGT", "H": "CAT", "I": "ATT", "K": "AAA",
    "L": "CTG", "M": "ATG", "N": "AAT", "P": "CCT", "Q": "CAA", "R": "CGT", "S": "TCT", "T": "ACT", "V": "GTT",
    "W": "TGG", "Y": "TAT",
}


def synthetic_frames(n: int, seed: int) -> list[Frame]:
    rng = random.Random(seed)
    letters = sorted(CODONS)
    frames = []
    for i in range(n):
        protein = "".join(rng.choice(letters) for _ in range(rng.randint(150, 166)))
        frames.append(Frame(f"r{seed}_{i}_chunk_1F1", "".join(CODONS[a] for a in protein) + "A", protein))
    return frames


def embed_cmd(shard: Path, out: Path, models: Path, lease_dir: Path, gpus: str, device: str) -> list[str]:
    return [str(ROOT / "bin" / "virnucpro"), "embed", "--frames", str(shard), "--out", str(out),
            "--esm-model", str(models / "esm2_tiny.pt"), "--dnabert-model", str(models / "dnabert_s_tiny"),
            "--precision", "fp16", "--device", device, "--gpus", gpus, "--lease-dir", str(lease_dir),
            "--summary", str(out.with_suffix(".json"))]


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def lease_interval(log_text: str) -> tuple[float, float, str]:
    """(lease taken, work done, GPU id) from one embed process's log: both lines are logged while the lease is
    held, so intervals of two processes on one GPU must not overlap."""
    start = end = gpu = None
    for line in log_text.splitlines():
        m = LOG_TIME.match(line)
        if not m:
            continue
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "leased GPU" in line:
            start, gpu = t, line.split("leased GPU ")[1].split()[0]
        elif "embed done" in line:
            end = t
    if start is None or end is None:
        raise RuntimeError("no 'leased GPU' / 'embed done' lines in the log:\n" + log_text[-2000:])
    return start, end, gpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--frames", type=int, default=3000, help="frames per shard")
    ap.add_argument("--gpus", default="0", help="physical GPUs the tasks may lease, e.g. 0 or 0,1")
    ap.add_argument("--device", default="cuda", help="auto: a CPU dry run with VIRNUCPRO_NUM_GPUS pseudo-GPUs")
    ap.add_argument("--out", default="lease_out")
    args = ap.parse_args()
    out = Path(args.out)
    work = out / "work"
    models = work / "models"
    subprocess.run([str(ROOT / "bin" / "virnucpro"), "make-test-models", "--outdir", str(models)], check=True)
    shards = []
    for i in range(args.shards):
        shards.append(work / f"shard_{i:05d}.tsv")
        write_frames_tsv(shards[-1], synthetic_frames(args.frames, i))

    # Each shard alone, one after the other: the reference outputs.
    for shard in shards:
        subprocess.run(embed_cmd(shard, work / f"alone_{shard.stem}.npz", models, work / "lease_alone", args.gpus, args.device),
                       check=True, capture_output=True)

    # All shards at once through one lease directory.
    t0 = time.time()
    procs = []
    for shard in shards:
        log = open(work / f"{shard.stem}.log", "w")
        procs.append((shard, log, subprocess.Popen(
            embed_cmd(shard, work / f"together_{shard.stem}.npz", models, work / "lease", args.gpus, args.device),
            stdout=log, stderr=subprocess.STDOUT)))
    intervals = []
    pending = list(procs)
    while pending:
        for item in list(pending):
            shard, log, proc = item
            if proc.poll() is not None:
                log.close()
                if proc.returncode != 0:
                    raise SystemExit(f"{shard.name}: exit {proc.returncode}\n{(work / f'{shard.stem}.log').read_text()}")
                intervals.append((shard.name,) + lease_interval((work / f"{shard.stem}.log").read_text()))
                pending.remove(item)
        time.sleep(0.02)
    wall = time.time() - t0

    overlaps = []
    for i, (a, a0, a1, ga) in enumerate(intervals):
        for b, b0, b1, gb in intervals[i + 1:]:
            if ga == gb and a0 < b1 and b0 < a1:
                overlaps.append((a, b, ga))
    max_diff = 0.0
    for shard in shards:
        alone = load_features(work / f"alone_{shard.stem}.npz")
        together = load_features(work / f"together_{shard.stem}.npz")
        assert alone.ids == together.ids, shard
        for field in ("nucleotide", "protein"):
            ref = alone[field]
            diff = np.abs(together[field] - ref).max() / max(np.abs(ref).max(), 1e-12)
            max_diff = max(max_diff, float(diff))
    report = {
        "shards": args.shards, "frames_per_shard": args.frames, "gpus": args.gpus, "wall_seconds": round(wall, 2),
        "lease_intervals": [{"shard": s, "gpu": g, "start": round(t0s - t0, 3), "end": round(t1s - t0, 3)}
                            for s, t0s, t1s, g in sorted(intervals, key=lambda x: x[1])],
        "overlapping_leases_on_one_gpu": overlaps,
        "max_relative_difference_together_vs_alone": max_diff,
        "lease_wait_note": "start = log time of 'leased GPU', end = log time of 'embed done' (both inside the lease)",
    }
    (out / "lease_one_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    # Pooling sums with atomics on the GPU, so two runs of one shard may differ in the last bits.
    ok = not overlaps and max_diff < 1e-3
    print("RESULT:", f"serialised, outputs match (max relative difference {max_diff:.1e})" if ok else "PROBLEM")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
