"""Throughput accounting for the embed step [PERF-05]: per model and per run, plus progress lines in the log.

Figures:
  tokens/s, sequences/s      real tokens (special tokens included) and sequences over GPU or wall time
  packing efficiency         real tokens / token slots the kernels processed (slots include any padding)
  budget fill                real tokens / (token budget × batches): how full the packed rows were
  loader wait                seconds the GPU loop waited for the CPU loader workers
  GPU memory peak            torch.cuda.max_memory_allocated, when on a GPU
  dedup                      per encoder, frames whose sequence an earlier frame of the shard already has,
                             copied instead of embedded, and the share of frames and tokens that saved
Per-batch device time comes from CUDA events read by the writer thread, so the hot path never synchronises.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("virnucpro.embed")


@dataclass
class ModelStats:
    batches: int = 0
    sequences: int = 0
    tokens: int = 0
    slots: int = 0
    budget_slots: int = 0
    device_seconds: float = 0.0  # summed per-batch kernel time (CUDA events) or compute wall time on the CPU
    oom_retries: int = 0

    def as_dict(self) -> dict:
        secs = self.device_seconds
        return {
            "batches": self.batches,
            "sequences": self.sequences,
            "tokens": self.tokens,
            "device_seconds": round(secs, 4),
            "tokens_per_s": round(self.tokens / secs, 1) if secs else None,
            "sequences_per_s": round(self.sequences / secs, 2) if secs else None,
            "packing_efficiency": round(self.tokens / self.slots, 4) if self.slots else None,
            "budget_fill": round(self.tokens / self.budget_slots, 4) if self.budget_slots else None,
            "oom_retries": self.oom_retries,
        }


@dataclass
class Telemetry:
    total_frames: int = 0
    num_models: int = 1
    progress_every_s: float = 30.0
    models: dict[str, ModelStats] = field(default_factory=dict)
    dedup: dict | None = None  # per encoder: frames, distinct, copied, saved fractions (ShardDedup.stats)
    loader_wait_s: float = 0.0
    first_batch_at: float | None = None  # perf_counter when the first batch's features reached the host
    frames_done: int = 0
    _sequences_done: int = 0
    _start: float = field(default_factory=time.perf_counter)
    _last_log: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, name: str) -> ModelStats:
        return self.models.setdefault(name, ModelStats())

    def add_batch(self, name: str, sequences: int, tokens: int, slots: int, budget: int, seconds: float) -> None:
        """Called by the writer thread once a batch's pooled features are on the host."""
        with self._lock:
            s = self.model(name)
            s.batches += 1
            s.sequences += sequences
            s.tokens += tokens
            s.slots += slots
            s.budget_slots += max(budget, tokens)
            s.device_seconds += seconds
            self._sequences_done += sequences
            self.frames_done = self._sequences_done // max(self.num_models, 1)
            now = time.perf_counter()
            if self.first_batch_at is None:
                self.first_batch_at = now
            if now - self._last_log >= self.progress_every_s:
                self._last_log = now
                self.log_progress(now)

    def add_frames_skipped(self, frames: int) -> None:
        """Frames whose features came from a valid checkpoint part."""
        with self._lock:
            self._sequences_done += frames * self.num_models
            self.frames_done = self._sequences_done // max(self.num_models, 1)

    def add_sequences_copied(self, sequences: int) -> None:
        """Rows filled with a duplicate's features instead of being embedded (embed/dedup.py)."""
        with self._lock:
            self._sequences_done += sequences
            self.frames_done = self._sequences_done // max(self.num_models, 1)

    def log_progress(self, now: float | None = None) -> None:
        now = now or time.perf_counter()
        elapsed = now - self._start
        rate = self.frames_done / elapsed if elapsed > 0 else 0.0
        left = self.total_frames - self.frames_done
        eta = left / rate if rate > 0 else float("nan")
        log.info("embed progress: %d/%d frames (%.1f%%), %.1f frames/s, ETA %.0f s",
                 self.frames_done, self.total_frames, 100.0 * self.frames_done / max(self.total_frames, 1),
                 rate, eta)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def restart_clock(self) -> None:
        """Wall figures count from now (a task on standby: from getting the GPU, not from building)."""
        self._start = self._last_log = time.perf_counter()

    def summary(self) -> dict:
        wall = self.elapsed()
        tokens = sum(m.tokens for m in self.models.values())
        slots = sum(m.slots for m in self.models.values())
        return {
            "frames": self.total_frames,
            "wall_seconds": round(wall, 3),
            "frames_per_s": round(self.total_frames / wall, 2) if wall else None,
            "tokens_per_s": round(tokens / wall, 1) if wall else None,
            "packing_efficiency": round(tokens / slots, 4) if slots else None,
            "loader_wait_seconds": round(self.loader_wait_s, 3),
            "models": {name: m.as_dict() for name, m in self.models.items()},
            "dedup": self.dedup,
        }
