"""Memory and start time of the engine's loader workers (CPU; no GPU needed).

    .venv/bin/python benchmarks/worker_memory.py --dnabert tests/models/dnabert_s_tiny [--import virnucpro.embed.engine]

Spawns the LoaderPool the engine uses, with the real tokenize callables, and reads each worker's Rss and Pss
(/proc/<pid>/smaps_rollup: Pss counts a page shared by n processes as 1/n) right after the spawn and again after
one pack task per encoder. `--import MODULE` makes every worker import MODULE first: `virnucpro.embed.engine`
reproduces the workers as they were when the worker functions lived in the engine (torch and CUDA libraries).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time


def _preload(module: str | None) -> None:
    if module:
        importlib.import_module(module)


def _memory(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                fields[parts[0][:-1].lower() + "_mb"] = round(int(parts[1]) / 1024, 1)
    return fields


def _modules(_=None) -> dict:
    import os

    return {"pid": os.getpid(), "torch": "torch" in sys.modules}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dnabert", required=True, help="a DNABERT-S directory (its tokenizer is used)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--import", dest="preload", default=None, help="module each worker imports first")
    args = ap.parse_args(argv)

    from virnucpro.embed import packing
    from virnucpro.models.encoders import DnabertTokenize, EsmTokenize
    from virnucpro.embed.workers import LoaderPool
    from virnucpro.models.dnabert import load_tokenizer

    tokenizers = [EsmTokenize(), DnabertTokenize(load_tokenizer(args.dnabert))]
    t = time.perf_counter()
    pool = LoaderPool(tokenizers, args.workers)
    pool._pool.map(_preload, [args.preload] * args.workers, chunksize=1)
    pids = [proc.pid for proc in pool._pool._pool]
    spawn_s = time.perf_counter() - t
    after_spawn = [_memory(pid) for pid in pids]
    seqs = {0: ["MKTAYIAKQRQISFVKSHFSRQ" * 3] * 500, 1: ["ACGTTGCAAGCTTGCAGGTACCAGT" * 12] * 500}
    for _ in range(2):
        for e, pool_rule in ((0, packing.POOL_RESIDUES), (1, packing.POOL_ALL)):
            for r in [pool.submit(e, 0, seqs[e], 8192, pool_rule) for _ in range(args.workers * 2)]:
                r.get()
    torch_in = sorted({pool._pool.apply_async(_modules).get()["torch"] for _ in range(4 * args.workers)})
    after_work = [_memory(pid) for pid in pids]
    pool.close()
    print(json.dumps({"workers": len(pids), "import": args.preload, "spawn_seconds": round(spawn_s, 2),
                      "after_spawn": after_spawn, "after_work": after_work, "torch_imported": torch_in}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
