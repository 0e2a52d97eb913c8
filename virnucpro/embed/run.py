"""Embed one shard: lease a GPU, load both models once, run the engine part by part with checkpoints, write npz.

The order matters: the GPU lease sets CUDA_VISIBLE_DEVICES, so it is taken before anything initialises CUDA;
the loader workers are spawned with CUDA hidden; only then are the models moved to the device.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time

import numpy as np

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_write_text

log = logging.getLogger("virnucpro.embed")

PRECISIONS = ("fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")


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


def _cast_parameters(model, device, dtype):
    """Parameters to `dtype`, then to the device (so the fp32 copy never sits on the GPU); buffers (rotary
    inv_freq, ALiBi slopes) stay fp32 for exact positions."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(dtype)
    return model.to(device).eval()


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
                     {"precision": precision, "pooling": "esm:residues<=1024,dnabert:all"}, checkpoint_dir)


def embed_shard(frames_path, out_path, *, esm_model, dnabert_model, device="auto", precision="fp16",
                checkpoint_dir=None, checkpoint_every=10000, gpus=None, lease_dir=None, token_budget=None,
                summary_path=None, workers=None, compile=None, dedup=True) -> dict:
    from virnucpro.embed import lease as gpu_lease
    from virnucpro.io.frames import read_frames_tsv

    if precision not in PRECISIONS:
        raise InputError("--precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device not in DEVICES:
        raise InputError("--device", f"must be one of {', '.join(DEVICES)}, got {device!r}")
    if checkpoint_every < 1:
        raise InputError("--checkpoint-every", f"must be at least 1, got {checkpoint_every}")
    if token_budget is not None and token_budget < 1:
        raise InputError("--token-budget", f"must be at least 1, got {token_budget}")
    t_start = time.perf_counter()
    frames = list(read_frames_tsv(frames_path))
    log.info("%s: %d frames", frames_path, len(frames))
    # Everything that needs no GPU happens before the lease: while this task reads weights from disk and hashes
    # them for its checkpoint key, another task keeps the GPU busy.
    models = _load_models(esm_model, dnabert_model)
    key = checkpoint_key(frames_path, esm_model, dnabert_model, precision, checkpoint_dir) if checkpoint_dir else None

    if device == "cpu":
        with gpu_lease.visible_gpus(""):  # the user asked for the CPU: never touch a GPU
            return _embed(frames, frames_path, out_path, None, models, key, esm_model, dnabert_model, precision,
                          checkpoint_dir, checkpoint_every, token_budget, summary_path, workers, t_start, False,
                          dedup=dedup)
    with gpu_lease.acquire_gpu(lease_dir or gpu_lease.DEFAULT_LEASE_DIR, gpus) as leased:
        if leased is None and device == "cuda":
            raise InputError("--device", "cuda was asked for but no GPU is available to this task")
        return _embed(frames, frames_path, out_path, leased, models, key, esm_model, dnabert_model, precision,
                      checkpoint_dir, checkpoint_every, token_budget, summary_path, workers, t_start, compile,
                      dedup=dedup)


def _load_models(esm_path, dnabert_path):
    """Both encoders and the tokenizer, in fp32 on the CPU (CUDA untouched), and the seconds it took."""
    from virnucpro.models.dnabert import load_dnabert, load_tokenizer
    from virnucpro.models.esm2 import load_esm2

    t_load = time.perf_counter()
    esm, dnabert, tokenizer = load_esm2(esm_path), load_dnabert(dnabert_path), load_tokenizer(dnabert_path)
    return esm, dnabert, tokenizer, time.perf_counter() - t_load


def _embed(frames, frames_path, out_path, leased, models, key, esm_path, dnabert_path, precision, checkpoint_dir,
           checkpoint_every, token_budget, summary_path, workers, t_start, compile=None, dedup=True) -> dict:
    import torch

    from virnucpro.embed.checkpoint import PartStore
    from virnucpro.embed.dedup import FeatureRows, ShardDedup
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
    t_load = time.perf_counter()
    esm, dnabert, tokenizer, read_seconds = models
    test_models = bool(esm.is_test_model or dnabert.is_test_model)
    dev = torch.device("cuda:0" if cuda else "cpu")
    esm = _cast_parameters(esm, dev, dtype)
    dnabert = _cast_parameters(dnabert, dev, dtype)
    load_seconds = read_seconds + time.perf_counter() - t_load
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
    dups = ShardDedup(frames) if dedup else None  # each distinct sequence embedded once, copied to the rest
    telemetry.dedup = dups.stats if dups else None
    store = None
    if checkpoint_dir:
        if effective != precision:  # the key was made before the lease, for the precision asked for
            key = checkpoint_key(frames_path, esm_path, dnabert_path, effective, checkpoint_dir)
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
            if dups is not None:
                feats = dups.complete(starts[index], feats, rows)
                telemetry.add_sequences_copied(dups.copies_in(starts[index], starts[index] + len(feats)))
            if store is not None:
                store.write(index, feats)
            rows.put(starts[index], feats)

        encoders = build_encoders(esm, dnabert, tokenizer, token_budget)
        with EmbeddingEngine(encoders, dev, workers=workers, telemetry=telemetry) as engine:
            if todo:
                try:
                    engine.embed_parts([frames[s:e] for _, s, e in todo], on_part,
                                       part_indices=[i for i, _, _ in todo],
                                       compute=[dups.compute_masks(s, e) for _, s, e in todo] if dups else None)
                except SequenceError as exc:
                    raise InputError(frames_path, str(exc)) from None
            budgets = dict(zip([e.field for e in encoders], engine.budgets))
        telemetry.log_progress()
        if plan:
            final = rows.features()
        else:
            final = Features([], np.zeros((0, dnabert.hidden_size), np.float32),
                             np.zeros((0, esm.embed_dim), np.float32))
        if final.ids != [f.id for f in frames]:
            raise RuntimeError("embedded rows do not match the shard's frames")  # never write a wrong file
        save_features(out_path, final)
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
        "device": torch.cuda.get_device_name(dev) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "gpu": getattr(leased, "physical_id", None) if cuda else None,
        "precision": effective,
        "test_models": test_models,
        "token_budget": budgets,
        "workers": workers,
        "compiled_esm": bool(compile),
        "model_load_seconds": round(load_seconds, 3),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "parts": len(plan),
        "parts_reused": len(plan) - len(todo),
        "gpu_memory_peak_bytes": int(torch.cuda.max_memory_allocated(dev)) if cuda else None,
        "torch": torch.__version__,
    })
    log.info("embed done: %d frames in %.1f s (%s)", len(frames), summary["total_seconds"],
             ", ".join(f"{k}: {v['tokens_per_s']} tok/s" for k, v in summary["models"].items()))
    if summary_path:
        atomic_write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
