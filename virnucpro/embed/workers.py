"""The engine's CPU loader workers: tokenise and pack, nothing else. Torch-free on purpose: a spawned worker
imports this module (to unpickle its functions) and what the tokenize callables need, not torch and the CUDA
libraries, so it starts faster and holds a fraction of the memory (docs/scaling.md has the figures).

Workers are started with the spawn method while CUDA_VISIBLE_DEVICES="" and assert, before any work, that they
see no GPU [SAFE-01/02/04]. Module-level functions so the spawn start method can pickle them.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from virnucpro.embed import packing
from virnucpro.embed.lease import visible_gpus

_worker_tokenizers: list | None = None


def _worker_init(tokenizers: list) -> None:
    global _worker_tokenizers
    # SAFE-01/04: a worker must never hold a CUDA context; refuse to start if a GPU is visible.
    if os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        raise RuntimeError("loader worker started with a visible GPU (CUDA_VISIBLE_DEVICES not empty)")
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_available():
        raise RuntimeError("loader worker can see CUDA")
    _worker_tokenizers = tokenizers


def _pack_task(encoder_index: int, row_offset: int, sequences: list[str], budget: int, pool: str):
    tokens = _worker_tokenizers[encoder_index](sequences)
    return packing.pack(tokens, budget, pool, row_offset=row_offset)


def _worker_probe() -> dict:
    torch_mod = sys.modules.get("torch")
    return {
        "pid": os.getpid(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_imported": torch_mod is not None,
        "cuda_available": bool(torch_mod is not None and torch_mod.cuda.is_available()),
        "cuda_initialized": bool(torch_mod is not None and torch_mod.cuda.is_initialized()),
    }


class _InProcessResult:
    def __init__(self, value):
        self._value = value

    def get(self, timeout=None):
        return self._value


class LoaderPool:
    """Spawned CPU workers with CUDA hidden; `workers=0` tokenises in the calling process (tests, tiny runs)."""

    def __init__(self, tokenizers: list, workers: int):
        self.workers = workers
        self._tokenizers = tokenizers
        self._pool = None
        if workers > 0:
            ctx = multiprocessing.get_context("spawn")  # SAFE-02: never fork a process that may hold CUDA
            with visible_gpus(""):  # inherited by the children at spawn time
                self._pool = ctx.Pool(workers, initializer=_worker_init, initargs=(tokenizers,))

    def submit(self, *args):
        if self._pool is None:
            global _worker_tokenizers
            _worker_tokenizers = self._tokenizers
            return _InProcessResult(_pack_task(*args))
        return self._pool.apply_async(_pack_task, args)

    def probe(self) -> list[dict]:
        if self._pool is None:
            return []
        return [self._pool.apply_async(_worker_probe).get(timeout=120) for _ in range(self.workers)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
