"""The embedding runner: CPU loader workers → pinned host memory → GPU → pooled features, overlapped.

    loader workers (spawn, CUDA hidden)   main thread (owns CUDA)                 writer thread
    tokenise + pack one chunk of a part → pin, copy on the copy stream,          wait for the batch's event,
                                          forward on the compute stream,      →  scatter rows into the part,
                                          segment-mean pooling on the GPU,       telemetry, hand finished
                                          async copy of the means to pinned      parts to the caller
                                          host memory + an event

Design points [ARCH-01..08, SAFE-01..05, PACK-02/03/06]:
- Sequences are packed into one flat token row per batch (see packing.py); models run `forward_packed(tokens,
  cu_seqlens, max_seqlen) -> hidden [T, E]`, so there is no padding and no cross-sequence attention.
- Workers are started with the spawn method while CUDA_VISIBLE_DEVICES="" and assert, before any work, that they
  see no GPU: they only parse and tokenise. Only the main process pins memory and touches CUDA.
- Pooling is two kernels per batch (index_add_ into per-sequence sums, divide by counts): no per-sequence Python
  loop and no `.item()`; `max_seqlen` comes from the host-side packing.
- At most `in_flight` (IN_FLIGHT) batches wait for the writer (a bounded queue): when it falls behind, the main
  loop blocks (backpressure) instead of queueing unbounded GPU work or host memory.
- A CUDA out-of-memory error halves the token budget, re-packs the batch and retries in process; a single
  sequence that still does not fit raises RetryableError (exit 75).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from torch.nn.attention import SDPBackend, sdpa_kernel

from virnucpro.embed import packing
from virnucpro.embed.telemetry import Telemetry
from virnucpro.embed.workers import LoaderPool
from virnucpro.errors import RetryableError
from virnucpro.io.features import Features

log = logging.getLogger("virnucpro.embed")

DEFAULT_CPU_TOKEN_BUDGET = 8192
MIN_TOKEN_BUDGET = 1024
MAX_TOKEN_BUDGET = 65536  # larger rows barely help throughput (reference/LANDSCAPE.md §6.3) and cost latency
TASK_SEQUENCES = 4096  # sequences per loader task: packing happens within a task's sequences
# Batches queued for the writer before the main loop waits. Each holds only its pooled rows (pinned, B × width),
# so a deeper queue is cheap; it has to cover the writer's work at the end of each part (copies for duplicates,
# the shard's rows) while DNABERT-S batches of a few tens of milliseconds keep coming.
IN_FLIGHT = 8
_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass
class Encoder:
    """One embedding model as the engine drives it (built from its models/encoders.py entry by embed/run.py)."""

    field: str  # Frame attribute embedded
    model: torch.nn.Module  # has forward_packed(tokens [T], cu_seqlens int32 [B+1], max_seqlen) -> [T, E]
    tokenize: Callable[[Sequence[str]], list[np.ndarray]]  # picklable; runs in the loader workers
    pool: str  # a pooling rule of packing.py
    token_budget: int | None = None  # None: derived from free GPU memory
    name: str = ""  # Features column filled and telemetry name; default: the field

    def __post_init__(self):
        self.name = self.name or self.field


# ---------------------------------------------------------------------------------------------------------
# Writer thread: assembles pooled rows into parts, in part order.


class _PartBuffer:
    def __init__(self, ids: list[str], widths: list[int], skipped: Mapping[int, np.ndarray] | None = None):
        self.ids = ids
        self.arrays = [np.empty((len(ids), w), dtype=np.float32) for w in widths]
        self.filled = [np.zeros(len(ids), dtype=bool) for _ in widths]
        for e, rows in (skipped or {}).items():  # rows the caller fills (copies): zero until it does
            self.arrays[e][rows] = 0.0
            self.filled[e][rows] = True


class _Writer(threading.Thread):
    def __init__(self, engine: "EmbeddingEngine", on_part: Callable[[int, Features], None], in_flight: int):
        super().__init__(name="virnucpro-embed-writer", daemon=True)
        self.engine = engine
        self.on_part = on_part
        self.queue: queue.Queue = queue.Queue(maxsize=in_flight)
        self.error: BaseException | None = None
        self.parts: dict[int, _PartBuffer] = {}

    def put(self, item) -> None:
        # Blocking put is the backpressure; wake up now and then to notice a dead writer.
        while True:
            if self.error is not None:
                raise self.error  # its own type and text, as at the end of embed_parts: what failed tells the user
            try:
                self.queue.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                kind = item[0]
                if kind == "stop":
                    return
                if kind == "part":
                    _, index, buffer = item
                    self.parts[index] = buffer
                elif kind == "batch":
                    self._batch(*item[1:])
                elif kind == "done":
                    self._finish(item[1])
        except BaseException as exc:  # surfaced to the main thread by put()/finish()
            self.error = exc
            while True:  # keep draining so the main thread never blocks on a full queue
                try:
                    if self.queue.get(timeout=0.1)[0] == "stop":
                        return
                except queue.Empty:
                    continue

    def _batch(self, part, enc_index, name, rows, host, done_event, start_event, stats):
        if done_event is not None:
            done_event.synchronize()
            seconds = start_event.elapsed_time(done_event) / 1000.0
        else:
            seconds = stats["seconds"]
        values = host.numpy() if isinstance(host, torch.Tensor) else host
        buf = self.parts[part]
        buf.arrays[enc_index][rows] = values
        buf.filled[enc_index][rows] = True
        self.engine.telemetry.add_batch(name, len(rows), stats["tokens"], stats["slots"], stats["budget"], seconds)

    def _finish(self, part: int) -> None:
        buf = self.parts.pop(part)
        for enc, filled in zip(self.engine.encoders, buf.filled):
            if not filled.all():  # every frame must be accounted for, never a silent hole
                raise RuntimeError(f"part {part}: {int((~filled).sum())} {enc.name} rows were never embedded")
        self.on_part(part, Features(buf.ids, {enc.name: arr for enc, arr in zip(self.engine.encoders, buf.arrays)}))


# ---------------------------------------------------------------------------------------------------------


def output_width(model: torch.nn.Module) -> int:
    """Width of a model's final hidden state: the size of its last LayerNorm (both encoders end in one)."""
    width = getattr(model, "embed_dim", None) or getattr(model, "hidden_size", None)
    if width:
        return int(width)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    if not norms:
        raise ValueError("cannot tell the model's output width")
    return int(norms[-1].normalized_shape[0])


def bytes_per_token(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Rough activation memory per packed token during one layer's forward (inference: nothing is kept).

    The widest Linear output (ESM-2: fc1, 4E; DNABERT-S: gated_layers, 8E) and a few hidden-width copies (residual,
    LayerNorm, q/k/v, attention out) dominate; the fp32 pooling copy adds 4 bytes per hidden unit. Doubled as a
    margin for allocator fragmentation and the padded attention path.
    """
    widest = max((m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)), default=0)
    hidden = output_width(model)
    elt = torch.empty((), dtype=dtype).element_size()
    return 2 * (elt * (2 * widest + 8 * hidden) + 4 * hidden)


class EmbeddingEngine:
    """Embeds frames part by part with every encoder. Models must already sit on `device` in their dtype."""

    def __init__(self, encoders: Sequence[Encoder], device: torch.device | str, *, workers: int = 2,
                 in_flight: int = IN_FLIGHT, telemetry: Telemetry | None = None, memory_fraction: float = 0.6):
        names = [e.name for e in encoders]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"need at least one encoder and distinct names, got {names}")
        self.encoders = list(encoders)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.in_flight = in_flight
        self.telemetry = telemetry or Telemetry()
        self.telemetry.num_models = len(self.encoders)
        self.widths = [output_width(e.model) for e in self.encoders]
        self.memory_fraction = memory_fraction
        self.size_budgets()
        self.loader = LoaderPool([e.tokenize for e in self.encoders], workers)
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(self.device)
            self.compute_stream = torch.cuda.current_stream(self.device)

    def close(self) -> None:
        self.loader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- budget --------------------------------------------------------------------------------------------
    def size_budgets(self) -> None:
        """Token budgets from the memory free now (again by a standby once the previous task left the GPU)."""
        self.budgets = [self._initial_budget(e, self.memory_fraction) for e in self.encoders]
        for e, b in zip(self.encoders, self.budgets):
            log.info("%s encoder: token budget %d per batch", e.name, b)

    def _initial_budget(self, enc: Encoder, memory_fraction: float) -> int:
        if enc.token_budget:
            return int(enc.token_budget)
        if not self.cuda:
            return DEFAULT_CPU_TOKEN_BUDGET
        free, _ = torch.cuda.mem_get_info(self.device)
        per_token = bytes_per_token(enc.model, next(enc.model.parameters()).dtype)
        # Both models share the card; each budget may use `memory_fraction` of what is free, since they never
        # run at the same time.
        budget = int(free * memory_fraction) // per_token
        return max(MIN_TOKEN_BUDGET, min(MAX_TOKEN_BUDGET, budget))

    # -- main loop -----------------------------------------------------------------------------------------
    def embed_parts(self, parts: Sequence[Sequence[Any]], on_part: Callable[[int, Features], None],
                    part_indices: Sequence[int] | None = None,
                    compute: Sequence[Mapping[str, np.ndarray] | None] | None = None) -> None:
        """Embed each part (a sequence of frames with .id and each encoder's field); `on_part(index, Features)` is
        called from the writer thread for each finished part, in order. Returns once every part is handed over.

        `compute[k][name]`, a bool mask over part k's frames, limits encoder `name` to the rows marked True; the
        other rows of its column are left for the caller to fill in `on_part` (embed/dedup.py copies them)."""
        part_indices = list(part_indices) if part_indices is not None else list(range(len(parts)))
        compute = list(compute) if compute is not None else [None] * len(parts)
        tasks = []  # (part index, encoder index, rows, sequences); a part's tasks end with a marker
        for index, frames, masks in zip(part_indices, parts, compute):
            skipped = {}
            tasks.append(("part", index, [f.id for f in frames], skipped))
            for e, enc in enumerate(self.encoders):
                mask = (masks or {}).get(enc.name)
                rows = np.arange(len(frames)) if mask is None else np.flatnonzero(mask)
                if mask is not None:
                    skipped[e] = ~np.asarray(mask, dtype=bool)
                seqs = [getattr(frames[r], enc.field) for r in rows]
                for off in range(0, len(seqs), TASK_SEQUENCES):
                    chunk = slice(off, off + TASK_SEQUENCES)
                    tasks.append(("pack", index, e, rows[chunk], seqs[chunk]))
            tasks.append(("done", index))

        writer = _Writer(self, on_part, self.in_flight)
        writer.start()
        pending: deque = deque()
        window = max(2, 2 * self.loader.workers)
        task_iter = iter(tasks)

        def refill():
            while len([p for p in pending if p[0] == "pack"]) < window:
                task = next(task_iter, None)
                if task is None:
                    return
                if task[0] == "pack":
                    _, index, e, rows, seqs = task
                    handle = self.loader.submit(e, int(rows[0]) if len(rows) else 0, seqs, self.budgets[e],
                                                self.encoders[e].pool)
                    pending.append(("pack", index, e, rows, handle))
                else:
                    pending.append(task)

        try:
            refill()
            while pending:
                item = pending.popleft()
                if item[0] == "part":
                    _, index, ids, skipped = item
                    writer.put(("part", index, _PartBuffer(ids, self.widths, skipped)))
                elif item[0] == "done":
                    writer.put(("done", item[1]))
                else:
                    _, index, e, rows, handle = item
                    t0 = time.perf_counter()
                    batches = handle.get()
                    self.telemetry.loader_wait_s += time.perf_counter() - t0
                    refill()
                    first = int(rows[0]) if len(rows) else 0
                    for batch in batches:
                        batch.rows = rows[batch.rows - first]  # positions among the computed rows -> part rows
                        self._run_batch(writer, index, e, batch)
                refill()
            writer.put(("stop",))
            writer.join()
            if writer.error is not None:
                raise writer.error
        except BaseException:
            if writer.is_alive():
                try:
                    writer.queue.put_nowait(("stop",))
                except queue.Full:
                    pass
            raise

    def _run_batch(self, writer: _Writer, part: int, e: int, batch: packing.PackedBatch) -> None:
        enc = self.encoders[e]
        if batch.num_tokens > self.budgets[e] and batch.num_sequences > 1:
            for sub in packing.split_batch(batch, self.budgets[e], enc.pool):
                self._run_batch(writer, part, e, sub)
            return
        try:
            self._launch(writer, part, e, batch)
        except torch.OutOfMemoryError:
            # Drop everything this batch allocated before retrying smaller [PACK-03].
            torch.cuda.empty_cache() if self.cuda else None
            self.telemetry.model(enc.name).oom_retries += 1
            if batch.num_sequences == 1:
                raise RetryableError(f"GPU out of memory on a single {enc.name} sequence of "
                                     f"{batch.num_tokens} tokens, even alone") from None
            self.budgets[e] = max(1, min(self.budgets[e], batch.num_tokens) // 2)
            log.warning("GPU out of memory on a %s batch of %d tokens: token budget now %d, retrying",
                        enc.name, batch.num_tokens, self.budgets[e])
            for sub in packing.split_batch(batch, self.budgets[e], enc.pool):
                self._run_batch(writer, part, e, sub)

    def _launch(self, writer: _Writer, part: int, e: int, batch: packing.PackedBatch) -> None:
        enc = self.encoders[e]
        stats = {"tokens": batch.num_tokens, "slots": batch.num_tokens, "budget": self.budgets[e]}
        host_arrays = (batch.tokens, batch.cu_seqlens, batch.pool_index, batch.pool_count)
        if not self.cuda:
            t0 = time.perf_counter()
            tokens, cu, pool_index, pool_count = (torch.from_numpy(a) for a in host_arrays)
            means = self.forward_pool(enc, tokens, cu, batch.max_seqlen, pool_index, pool_count)
            stats["seconds"] = time.perf_counter() - t0
            writer.put(("batch", part, e, enc.name, batch.rows, means.numpy(), None, None, stats))
            return
        # Host → device on the copy stream, overlapping the previous batch's compute (ARCH-04/05).
        with torch.cuda.stream(self.copy_stream):
            device_arrays = [torch.from_numpy(a).pin_memory().to(self.device, non_blocking=True)
                             for a in host_arrays]
        self.compute_stream.wait_stream(self.copy_stream)
        for t in device_arrays:
            t.record_stream(self.compute_stream)  # the caching allocator must not reuse them too early
        tokens, cu, pool_index, pool_count = device_arrays
        start = torch.cuda.Event(enable_timing=True)
        done = torch.cuda.Event(enable_timing=True)
        start.record(self.compute_stream)
        means = self.forward_pool(enc, tokens, cu, batch.max_seqlen, pool_index, pool_count)
        host = torch.empty(means.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(means, non_blocking=True)
        done.record(self.compute_stream)
        writer.put(("batch", part, e, enc.name, batch.rows, host, done, start, stats))

    @staticmethod
    def forward_pool(enc: Encoder, tokens, cu, max_seqlen, pool_index, pool_count) -> torch.Tensor:
        """One packed batch through `enc`'s model, mean-pooled per sequence in fp32 (the warm-up uses it too)."""
        # No cuDNN for padded SDPA (DNABERT-S's ALiBi path): it builds a new plan, ~40 ms, for every new
        # (batch, length) shape, and packed batches rarely repeat a shape. Measured in benchmarks/embed_benchmark.py.
        with torch.inference_mode(), sdpa_kernel(_SDPA_BACKENDS):
            hidden = enc.model.forward_packed(tokens.long(), cu, max_seqlen)  # [T, E]
            b = pool_count.shape[0]
            # Segment sums in fp32 whatever the compute dtype; segment b collects tokens that are not pooled.
            sums = torch.zeros(b + 1, hidden.shape[1], dtype=torch.float32, device=hidden.device)
            sums.index_add_(0, pool_index, hidden.float())
            return sums[:b] / pool_count[:, None]
