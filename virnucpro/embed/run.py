"""Embed one shard: lease a GPU, load both models once, run the engine part by part with checkpoints, write npz.

The order matters: the GPU lease sets CUDA_VISIBLE_DEVICES, so it is taken before anything initialises CUDA;
the loader workers are spawned with CUDA hidden; only then are the models moved to the device.

Before the lease comes everything that needs neither a GPU nor the weights in memory: reading the frames, the
checkpoint key (model checksums from the run's model check, else hashed here), opening both checkpoints (their
names and shapes; the tensors stay memory-mapped, unread) and the tokenizer. A task queued for a GPU therefore
holds no model in host memory. After the lease the weights go from the file to the GPU tensor by tensor in the
compute dtype (no fp32 host copy), which is quick enough to do there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from virnucpro import options
from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_write_text

log = logging.getLogger("virnucpro.embed")

# Inductor keeps its FX-graph and AOTAutograd caches here and, by default, Triton's kernels under triton/<device>.
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
POOLING = "esm:residues<=1024,dnabert:all"


class EsmTokenize:
    """Proteins → `<cls>` + residue ids + `<eos>` (picklable: runs in the loader workers)."""

    def __call__(self, seqs):
        from virnucpro.models.esm2 import encode_protein

        from virnucpro.embed.packing import SequenceError

        out = []
        for seq in seqs:
            try:
                out.append(np.asarray(encode_protein(seq), dtype=np.int32))
            except ValueError as exc:
                raise SequenceError(f"protein {seq[:30]!r}: {exc}") from None
        return out


class DnabertTokenize:
    """Nucleotides → DNABERT-S BPE ids with [CLS]/[SEP], exactly the tokenizer's own output."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, seqs):
        return [np.asarray(e.ids, dtype=np.int32) for e in self.tokenizer.encode_batch(list(seqs))]


def default_workers(cuda: bool) -> int:
    if not cuda:
        return 0  # the CPU is busy with the models; tokenising in-process costs nothing extra there
    return max(1, min(4, (os.cpu_count() or 2) - 2))


def build_encoders(esm, dnabert, tokenizer, token_budget=None):
    from virnucpro.embed import packing
    from virnucpro.embed.engine import Encoder

    return [
        Encoder("protein", esm, EsmTokenize(), packing.POOL_RESIDUES, token_budget),
        Encoder("nucleotide", dnabert, DnabertTokenize(tokenizer), packing.POOL_ALL, token_budget),
    ]


def checkpoint_key(frames_path, esm_path, dnabert_path, precision: str, checkpoint_dir) -> dict:
    """Everything that changes the features: shard content, model checksums, precision, pooling rule."""
    from virnucpro.embed.checkpoint import shard_key

    return shard_key(frames_path, {"esm2": esm_path, "dnabert_s": dnabert_path},
                     {"precision": precision, "pooling": POOLING}, checkpoint_dir)


def model_digests(esm_path, dnabert_path, cache_dir, model_check=None) -> dict[str, str]:
    """The two models' checksums for the checkpoint key: from the run's model-check record when given (hashed
    once per run by `virnucpro provenance`), else hashed here through the hash cache in `cache_dir`."""
    from virnucpro.embed.checkpoint import checksum_from_record, model_checksum

    paths = {"esm2": (esm_path, "esm"), "dnabert_s": (dnabert_path, "dnabert")}
    if model_check is None:
        return {name: model_checksum(path, cache_dir) for name, (path, _) in paths.items()}
    try:
        record = json.loads(Path(model_check).read_text(encoding="utf-8"))
        models = record["models"]
        return {name: checksum_from_record(path, models[role], model_check) for name, (path, role) in paths.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(model_check, f"not a readable model-check record ({type(exc).__name__}: {exc})") from None


def use_compile_cache(directory) -> str | None:
    """Point torch.compile's on-disk caches at `directory`, shared by every task of a run, so only the first task
    pays the full compile. TORCHINDUCTOR_CACHE_DIR set by the user wins. Concurrent tasks are safe: Inductor and
    Triton write each cache entry to a temporary file and rename it into place, and entries are keyed by
    everything that changes the code (graph, torch version, device), so readers see whole entries only.
    Call it before torch._dynamo or torch._inductor is imported: importing them writes torch's default into
    the variable (embed_shard calls it before they are)."""
    if directory is not None and COMPILE_CACHE_ENV not in os.environ:
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.environ[COMPILE_CACHE_ENV] = os.path.abspath(directory)
    return os.environ.get(COMPILE_CACHE_ENV)


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def embed_shard(frames_path, out_path, *, esm_model, dnabert_model, device=options.DEFAULT_DEVICE,
                precision=options.DEFAULT_PRECISION, checkpoint_dir=None,
                checkpoint_every=options.DEFAULT_CHECKPOINT_EVERY, gpus=None, lease_dir=None, token_budget=None,
                summary_path=None, workers=None, compile=None, model_check=None, compile_cache=None,
                dedup=True) -> dict:
    from virnucpro.embed import lease as gpu_lease
    from virnucpro.embed.checkpoint import file_sha256
    from virnucpro.embed.dedup import ShardDedup
    from virnucpro.io.frames import read_frames_tsv
    from virnucpro.models.dnabert import load_tokenizer, open_dnabert
    from virnucpro.models.esm2 import open_esm2

    options.require_choice("precision", precision, options.PRECISIONS)
    options.require_choice("device", device, options.DEVICES)
    options.require_at_least("checkpoint_every", checkpoint_every, 1)
    options.require_at_least("token_budget", token_budget, 1)
    t_start = time.perf_counter()
    frames = list(read_frames_tsv(frames_path))
    log.info("%s: %d frames", frames_path, len(frames))
    times = {"model_checksum_seconds": 0.0, "lease_wait_seconds": 0.0}
    t = time.perf_counter()
    # Names and shapes only (a wrong file fails here, before any hashing or GPU); the tensors stay unread.
    opened = [open_esm2(esm_model), open_dnabert(dnabert_model), load_tokenizer(dnabert_model)]
    times["model_open_seconds"] = time.perf_counter() - t
    key_parts = None
    if checkpoint_dir:
        t = time.perf_counter()
        digests = model_digests(esm_model, dnabert_model, checkpoint_dir, model_check)
        times["model_checksum_seconds"] = time.perf_counter() - t
        key_parts = (file_sha256(frames_path), digests)
    cache = use_compile_cache(compile_cache)
    run = dict(frames=frames, frames_path=frames_path, out_path=out_path, opened=opened, key_parts=key_parts,
               precision=precision, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
               token_budget=token_budget, summary_path=summary_path, workers=workers, t_start=t_start,
               times=times, compile_cache=cache,
               # Each distinct sequence embedded once, copied to the rest; worked out before the lease (~2 s for
               # 400K frames) so the GPU does not wait for it.
               dups=ShardDedup(frames) if dedup else None)

    if device == "cpu":
        with gpu_lease.visible_gpus(""):  # the user asked for the CPU: never touch a GPU
            return _embed(leased=None, compile=False, **run)
    times["host_rss_at_lease_bytes"] = current_rss_bytes()
    t = time.perf_counter()
    with contextlib.ExitStack() as gpu:
        leased = gpu.enter_context(gpu_lease.acquire_gpu(lease_dir or gpu_lease.DEFAULT_LEASE_DIR, gpus))
        times["lease_wait_seconds"] = time.perf_counter() - t
        if leased is None and device == "cuda":
            raise InputError("--device", "cuda was asked for but no GPU is available to this task")
        # _embed hands the lease back once the last batch is computed (gpu.close); exiting here then does nothing.
        return _embed(leased=leased, compile=compile, release_gpu=gpu.close, **run)


def _load_models(opened: list, device, dtype):
    """Both encoders built from their opened checkpoints straight onto `device` in `dtype`. Empties `opened`: once
    the weights are on the GPU nothing refers to the file mapping any more, so its pages leave this process."""
    import torch

    from virnucpro.models.dnabert import build_dnabert
    from virnucpro.models.esm2 import build_esm2

    esm_ckpt, dnabert_ckpt, tokenizer = opened
    opened.clear()
    t = time.perf_counter()
    esm, dnabert = build_esm2(esm_ckpt, device, dtype), build_dnabert(dnabert_ckpt, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # host-to-device copies finish inside the timed load
    return esm, dnabert, tokenizer, time.perf_counter() - t


def _embed(*, frames, frames_path, out_path, leased, opened, key_parts, precision, checkpoint_dir, checkpoint_every,
           token_budget, summary_path, workers, t_start, times, compile_cache, dups, compile=None,
           release_gpu=None) -> dict:
    import torch

    from virnucpro.embed.checkpoint import PartStore, key_from_digests
    from virnucpro.embed.dedup import FeatureRows
    from virnucpro.embed.engine import EmbeddingEngine, esm2_split_forward
    from virnucpro.embed.packing import SequenceError
    from virnucpro.embed.telemetry import Telemetry
    from virnucpro.io.features import Features, save_features

    cuda = leased is not None and torch.cuda.is_available()
    if leased is not None and not cuda:
        log.warning("a GPU was leased but PyTorch sees no CUDA device: running on the CPU, slowly")
    if not cuda:
        log.warning("embedding on the CPU (no GPU): correct but slow")
    effective = precision if cuda else "fp32"
    if precision == "fp16" and not cuda:
        log.warning("fp16 needs a GPU: the CPU path computes in fp32")
    dtype = torch.float16 if effective == "fp16" else torch.float32
    workers = default_workers(cuda) if workers is None else workers

    # CUDA starts here, after the lease pinned CUDA_VISIBLE_DEVICES; the engine's loader workers are spawned
    # later with CUDA_VISIBLE_DEVICES="" and never see the GPU (SAFE-01/02).
    dev = torch.device("cuda:0" if cuda else "cpu")
    esm, dnabert, tokenizer, load_seconds = _load_models(opened, dev, dtype)
    test_models = bool(esm.is_test_model or dnabert.is_test_model)
    # torch.compile fuses ESM-2's elementwise work (~1.5x); the fp32 validation path stays eager.
    compile = (cuda and effective == "fp16") if compile is None else (compile and cuda)
    if compile:
        esm.forward_packed = esm2_split_forward(esm, compile=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    telemetry = Telemetry(total_frames=len(frames), progress_every_s=30.0)
    plan = PartStore.plan(len(frames), checkpoint_every)
    starts = {index: start for index, start, _ in plan}
    rows = FeatureRows(len(frames))
    telemetry.dedup = dups.stats if dups else None
    store = None
    write_seconds = 0.0
    if checkpoint_dir:
        # The checksums were taken before the lease; the precision is the one actually computed.
        key = key_from_digests(*key_parts, {"precision": effective, "pooling": POOLING})
        store = PartStore(checkpoint_dir, key).__enter__()
    try:
        todo = []
        for index, start, end in plan:
            ids = [f.id for f in frames[start:end]]
            feats = store.load_valid(index, ids) if store is not None else None
            if feats is not None:
                rows.put(start, feats)
                telemetry.add_frames_skipped(len(ids))
            else:
                todo.append((index, start, end))
        if len(todo) < len(plan):
            log.info("reusing %d of %d checkpoint parts", len(plan) - len(todo), len(plan))

        def on_part(index, feats):
            nonlocal write_seconds
            if dups is not None:
                feats = dups.complete(starts[index], feats, rows)
                telemetry.add_sequences_copied(dups.copies_in(starts[index], starts[index] + len(feats)))
            t = time.perf_counter()
            if store is not None:
                store.write(index, feats)
            rows.put(starts[index], feats)
            write_seconds += time.perf_counter() - t

        encoders = build_encoders(esm, dnabert, tokenizer, token_budget)
        with EmbeddingEngine(encoders, dev, workers=workers, telemetry=telemetry) as engine:
            t_compute = time.perf_counter()
            if todo:
                try:
                    engine.embed_parts([frames[s:e] for _, s, e in todo], on_part,
                                       part_indices=[i for i, _, _ in todo],
                                       compute=[dups.compute_masks(s, e) for _, s, e in todo] if dups else None)
                except SequenceError as exc:
                    raise InputError(frames_path, str(exc)) from None
            compute_seconds = time.perf_counter() - t_compute
            budgets = dict(zip([e.field for e in encoders], engine.budgets))
        telemetry.log_progress()
        widths = dnabert.hidden_size, esm.embed_dim
        compile_seconds = getattr(esm.forward_packed, "compile_seconds", lambda: 0.0)()
        device_name = torch.cuda.get_device_name(dev) if cuda else None
        gpu_peak = int(torch.cuda.max_memory_allocated(dev)) if cuda else None
        if release_gpu is not None:
            # The GPU's work is done: free it for the next task, which loads its models while this one writes.
            del engine, encoders, esm, dnabert
            if cuda:
                torch.cuda.empty_cache()
            release_gpu()
        if plan:
            final = rows.features()
        else:
            final = Features([], np.zeros((0, widths[0]), np.float32), np.zeros((0, widths[1]), np.float32))
        if final.ids != [f.id for f in frames]:
            raise RuntimeError("embedded rows do not match the shard's frames")  # never write a wrong file
        t = time.perf_counter()
        save_features(out_path, final)
        write_seconds += time.perf_counter() - t
        if store is not None:
            store.remove()
            store = None
    finally:
        if store is not None:
            store.release()

    summary = telemetry.summary()
    summary.update({
        "frames_file": str(frames_path),
        "output": str(out_path),
        "device": device_name or f"cpu ({platform.processor() or platform.machine()})",
        "gpu": getattr(leased, "physical_id", None) if cuda else None,
        "precision": effective,
        "test_models": test_models,
        "token_budget": budgets,
        "workers": workers,
        "compiled_esm": bool(compile),
        "compile_cache": compile_cache if compile else None,
        # Fixed cost and phases of this task (docs/output.md): opening + building the models, hashing them (0
        # when the run's model check supplied the checksums), waiting for a GPU, compiling (first calls of the
        # compiled functions), the part loop (compute, compile included), writing parts and the output.
        "model_load_seconds": round(times["model_open_seconds"] + load_seconds, 3),
        "model_checksum_seconds": round(times["model_checksum_seconds"], 3),
        "lease_wait_seconds": round(times["lease_wait_seconds"], 3),
        "compile_seconds": round(compile_seconds, 3),
        "compute_seconds": round(compute_seconds, 3),
        "write_seconds": round(write_seconds, 3),
        "peak_host_rss_bytes": peak_rss_bytes(),
        "host_rss_at_lease_bytes": times.get("host_rss_at_lease_bytes"),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "parts": len(plan),
        "parts_reused": len(plan) - len(todo),
        "gpu_memory_peak_bytes": gpu_peak,
        "torch": torch.__version__,
    })
    log.info("embed done: %d frames in %.1f s (%s)", len(frames), summary["total_seconds"],
             ", ".join(f"{k}: {v['tokens_per_s']} tok/s" for k, v in summary["models"].items()))
    if summary_path:
        atomic_write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
