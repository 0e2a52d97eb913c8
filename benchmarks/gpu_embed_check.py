"""The production commands on a GPU with the tiny real-format models: `virnucpro embed` (fp16 compiled, fp32,
lease) and `virnucpro predict`, checked against the CPU fp32 reference. Not a unit test: it needs a GPU.

    PYTHONPATH=. python3 benchmarks/gpu_embed_check.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cli(*args) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "virnucpro", *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    return p.returncode, p.stderr[-3000:], time.perf_counter() - t0


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu = b.mean(0)
    cos = ((a - mu) * (b - mu)).sum(1) / np.linalg.norm(a - mu, axis=1) / np.linalg.norm(b - mu, axis=1)
    return float(cos.min()), float(np.abs(a - b).max() / np.abs(b).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from virnucpro.embed.reference import reference_features
    from virnucpro.io.features import load_features
    from virnucpro.io.frames import Frame, write_frames_tsv
    from virnucpro.models.dnabert import load_dnabert, load_tokenizer
    from virnucpro.models.esm2 import load_esm2
    from virnucpro.models.tiny import write_test_models

    R = {}
    tmp = Path(tempfile.mkdtemp())
    models = write_test_models(tmp / "models")
    rng = random.Random(3)
    frames = []
    for i in range(300):
        aa = rng.choice([rng.randint(1, 60), rng.randint(140, 166), rng.randint(45, 50)])
        frames.append(Frame(f"r{i}_chunk_1F{1 + i % 3}", "".join(rng.choice("ACGT") for _ in range(3 * aa + 1)),
                            "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(aa))))
    shard = tmp / "shard.tsv"
    write_frames_tsv(shard, frames)
    ref = reference_features(frames, load_esm2(models.esm_pt), load_dnabert(models.dnabert),
                             load_tokenizer(models.dnabert))

    runs = {
        "fp16_compiled": ["--precision", "fp16", "--device", "cuda"],
        "fp16_eager": ["--precision", "fp16", "--device", "cuda", "--no-compile"],
        "fp32": ["--precision", "fp32", "--device", "cuda", "--token-budget", "2000"],
        "auto_lease": ["--device", "auto", "--lease-dir", str(tmp / "leases"), "--gpus", "0",
                       "--checkpoint-dir", str(tmp / "ckpt"), "--checkpoint-every", "64"],
    }
    for name, extra in runs.items():
        npz, summ = tmp / f"{name}.npz", tmp / f"{name}.json"
        rc, err, secs = cli("embed", "--frames", shard, "--esm-model", models.esm_pt, "--dnabert-model",
                            models.dnabert, "--out", npz, "--summary", summ, *extra)
        res = {"rc": rc, "seconds": round(secs, 1)}
        if rc == 0:
            f = load_features(npz)
            s = json.loads(summ.read_text())
            res.update(ids_ok=f.ids == ref.ids, device=s["device"], gpu=s["gpu"], precision=s["precision"],
                       compiled=s["compiled_esm"], peak_gib=round((s["gpu_memory_peak_bytes"] or 0) / 2**30, 3),
                       parts=s["parts"], test_models=s["test_models"])
            res["esm_min_centred_cos"], res["esm_max_rel"] = cosines(f["protein"], ref["protein"])
            res["dna_min_centred_cos"], res["dna_max_rel"] = cosines(f["nucleotide"], ref["nucleotide"])
        else:
            res["stderr"] = err
        R[f"embed_{name}"] = res
        print(name, json.dumps(res), flush=True)

    fasta = tmp / "in.fa"
    # Contigs built from sense codons, so forward frame 1 of every chunk is stop-free and kept (random DNA
    # rarely has a stop-free 300 bp frame).
    sense = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in ("TAA", "TAG", "TGA")]
    with open(fasta, "w") as fh:
        for i, n in enumerate([650, 300, 120, 900, 2000]):
            fh.write(f">contig{i}\n{''.join(rng.choice(sense) for _ in range(n // 3))}\n")
    outs = {}
    for device in ("cpu", "cuda"):
        od = tmp / f"predict_{device}"
        rc, err, secs = cli("predict", "--input", fasta, "--chunk-length", 300, "--esm-model", models.esm_hf,
                            "--dnabert-model", models.dnabert, "--classifier", models.classifier, "--outdir", od,
                            "--device", device, "--precision", "fp32")
        outs[device] = od
        R[f"predict_{device}"] = {"rc": rc, "seconds": round(secs, 1), **({} if rc == 0 else {"stderr": err})}
        print("predict", device, R[f"predict_{device}"], flush=True)
    if all(R[f"predict_{d}"]["rc"] == 0 for d in ("cpu", "cuda")):  # noqa: SIM102
        from virnucpro.classify.outputs import read_predictions

        ids_c, p_c = read_predictions(outs["cpu"] / "prediction_results.txt")
        ids_g, p_g = read_predictions(outs["cuda"] / "prediction_results.txt")
        R["predict_cpu_vs_cuda"] = {
            "frames": len(ids_c), "ids_equal": ids_c == ids_g,
            "max_score_diff": float(np.abs(p_c - p_g).max()) if len(ids_c) else None,
            "calls_equal": bool((p_c.argmax(1) == p_g.argmax(1)).all()),
            "highestscore_equal": (outs["cpu"] / "prediction_results_highestscore.csv").read_text()
            == (outs["cuda"] / "prediction_results_highestscore.csv").read_text(),
        }
        print("predict cpu vs cuda:", R["predict_cpu_vs_cuda"], flush=True)
    (out / "gpu_check.json").write_text(json.dumps(R, indent=2) + "\n")


if __name__ == "__main__":
    main()
