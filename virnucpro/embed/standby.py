"""A task on standby for its GPU: models built, loader workers spawned and the compiled code warmed up while the
active task still computes, so the device goes from one task's last batch to the next one's first without the
next one's fixed cost in between (the locks are in embed/lease.py).

Memory: the active task sized its token budget from what was free when it started (engine `_initial_budget`: a
share of free memory, from a per-token estimate that already carries a 2x margin, capped at MAX_TOKEN_BUDGET), so
at least the rest of that free memory stays unused by it. A standby builds only when its models, with room for the
warm-up, fit both in what is free now and in STANDBY_SHARE of the card; otherwise it keeps its place in the queue
and waits for the device holding nothing on it. Once active it sizes its budgets again, from what is free then.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("virnucpro.embed")

STANDBY_ENV = "VIRNUCPRO_GPU_STANDBY"  # "0": tasks never stand by (each waits holding nothing, as before)
STANDBY_SHARE = 0.25  # of the card's memory a standby's model set may take
WARMUP_ROOM_BYTES = 2 * 1024**3  # CUDA context, warm-up activations, allocator slack
# Two short sequences per encoder: enough to trace the compiled functions with a dynamic token count (Dynamo
# specialises sizes 0 and 1) and to load the attention and GEMM kernels the first real batch would otherwise load.
_WARMUP = {"protein": ["MKTAYIAKQRQISFVKSHFSRQ", "MSDNELKQLLE"], "nucleotide": ["ACGTTGCAAGCTTGCAGGTACCA" * 3,
                                                                         "TTGACAGCTAGCTCAGTCCTAGG" * 2]}


def enabled() -> bool:
    return os.environ.get(STANDBY_ENV, "1") != "0"


def model_bytes(paths, dtype_size: int) -> int:
    """Upper bound on a model set's device memory: its files' size (fp16 or fp32 tensors), doubled for fp32."""
    total = 0
    for path in map(Path, paths):
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        total += sum(p.stat().st_size for p in files)
    return total * (2 if dtype_size >= 4 else 1)


def room_to_stand_by(need: int) -> tuple[bool, str]:
    """(whether a model set of `need` bytes may be built on the pinned device now, why)."""
    import torch

    if not torch.cuda.is_available():
        return True, "no CUDA device (CPU or pseudo-device): nothing to share"
    free, total = torch.cuda.mem_get_info(0)
    want = need + WARMUP_ROOM_BYTES
    gib = 1024**3
    if want > STANDBY_SHARE * total or want > free:
        return False, (f"needs {want / gib:.1f} GiB; {free / gib:.1f} GiB free of {total / gib:.1f} "
                       f"(at most {STANDBY_SHARE:.0%} of the card)")
    return True, f"{want / gib:.1f} GiB of {free / gib:.1f} GiB free"


def _mark_active(times: dict) -> None:
    """When the task got the device: a monotonic time for its own phases, a clock time to line tasks up."""
    times["active_at"] = time.perf_counter()
    times["active_at_epoch"] = time.time()


def prepare(leased, model_paths, dtype_size: int, times: dict) -> None:
    """Right after the lease: a standby decides whether it may build on the busy device; if not, it waits for the
    device here (first in line, holding nothing on it), as a task without a slot would."""
    times["standby_seconds"] = 0.0
    if not getattr(leased, "standby", False):
        _mark_active(times)
        return
    fits, why = room_to_stand_by(model_bytes(model_paths, dtype_size))
    if fits:
        log.info("standing by on GPU %s: building the models while it is busy (%s)", leased.physical_id, why)
        return
    log.info("GPU %s busy and too little room to stand by (%s): waiting for it", leased.physical_id, why)
    times["lease_wait_seconds"] = times.get("lease_wait_seconds", 0.0) + leased.wait_active()
    _mark_active(times)


def warm_up(engine) -> float:
    """A tiny batch through each encoder: compiles (or loads from the cache) and loads the kernels."""
    import torch

    from virnucpro.embed import packing

    start = time.perf_counter()
    for e, enc in enumerate(engine.encoders):
        tokens = enc.tokenize(_WARMUP[enc.field])
        for batch in packing.pack(tokens, max(engine.budgets[e], sum(len(t) for t in tokens)), enc.pool):
            arrays = (batch.tokens, batch.cu_seqlens, batch.pool_index, batch.pool_count)
            tok, cu, index, count = (torch.from_numpy(np.ascontiguousarray(a)).to(engine.device) for a in arrays)
            engine.forward_pool(enc, tok, cu, batch.max_seqlen, index, count)
    if engine.cuda:
        torch.cuda.synchronize(engine.device)
        torch.cuda.empty_cache()  # the warm-up's activations go back to the card for the active task
    return time.perf_counter() - start


def until_active(leased, engine, times: dict) -> None:
    """Before the first real batch: a standby warms up, waits for the device, then sizes its budgets from what
    is free now that the previous task has left. Records standby_seconds (ready and waiting)."""
    if not getattr(leased, "standby", False):
        return
    times["warmup_seconds"] = warm_up(engine)
    log.info("ready on standby (warm-up %.1f s): waiting for GPU %s", times["warmup_seconds"], leased.physical_id)
    waited = leased.wait_active()
    _mark_active(times)
    times["standby_seconds"] = waited
    times["lease_wait_seconds"] = times.get("lease_wait_seconds", 0.0) + waited
    engine.size_budgets()
    engine.telemetry.restart_clock()  # tokens/s over wall time measure the GPU's time, not the standby's
