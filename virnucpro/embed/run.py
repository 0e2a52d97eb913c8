"""Embed one shard: lease a GPU, load the encoders once, run the engine part by part with checkpoints, then
score the frames with the classifier and write the predictions (and, when asked, the features npz).

Three steps: `prepare` (before the lease), `resolve_settings` (device, effective precision, compile, workers:
once, after the lease and before the checkpoint key), `run_embed` (models onto the device, `resume_parts`, the
engine, the scores, the outputs). `embed_shard` chains them; an `EmbedJob` holds what was asked for.

The order matters: the GPU lease sets CUDA_VISIBLE_DEVICES, so it is taken before anything initialises CUDA;
the loader workers are spawned with CUDA hidden; only then are the models moved to the device.

Before the lease comes everything that needs neither a GPU nor the weights in memory: reading the frames, the
model checksums for the checkpoint key (from the run's model check, else hashed here), opening every encoder's
checkpoint (names and shapes; the tensors stay memory-mapped, unread) and its tokenizer. A task queued for a
GPU therefore holds no model in host memory. After the lease the weights go from the file to the GPU tensor by
tensor in the compute dtype (no fp32 host copy), which is quick enough to do there.

The classifier scores the features in the same process, batch by batch while later parts still embed
(embed/scoring.py): a shard's features (13 KB a frame, 4.5 GB for 340K frames) never go through a file unless the
user keeps them, and the run's last shard is scored and written within a second or two of its last batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from virnucpro import options
from virnucpro.errors import InputError, OptionError
from virnucpro.io.atomic import atomic_write_text
from virnucpro.models.encoders import model_paths

log = logging.getLogger("virnucpro.embed")

# Inductor keeps its FX-graph and AOTAutograd caches here and, by default, Triton's kernels under triton/<device>.
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def default_workers(cuda: bool) -> int:
    if not cuda:
        return 0  # the CPU is busy with the models; tokenising in-process costs nothing extra there
    return max(1, min(4, (os.cpu_count() or 2) - 2))


def build_encoders(models: Mapping, tokenizers: Mapping, token_budget=None) -> list:
    """The engine's encoders, in the registry's (the classifier's) order, for the models given by encoder name
    (a benchmark may give one alone)."""
    from virnucpro.embed.engine import Encoder
    from virnucpro.models.encoders import ENCODERS

    return [Encoder(spec.field, models[spec.name], tokenizers[spec.name], spec.pooling, token_budget, spec.name)
            for spec in ENCODERS if spec.name in models]


def checkpoint_settings(precision: str) -> dict:
    """The settings in the checkpoint key: the precision computed and the encoders' pooling rules."""
    from virnucpro.models.encoders import checkpoint_pooling

    return {"precision": precision, "pooling": checkpoint_pooling()}


def checkpoint_key(frames_path, paths: Mapping, precision: str, checkpoint_dir) -> dict:
    """Everything that changes the features: shard content, model checksums, precision, pooling rule."""
    from virnucpro.embed.checkpoint import shard_key
    from virnucpro.models.encoders import BY_NAME

    return shard_key(frames_path, {BY_NAME[name].key: path for name, path in paths.items()},
                     checkpoint_settings(precision), checkpoint_dir)


def model_digests(paths: Mapping, cache_dir) -> dict[str, str]:
    """The models' checksums for the checkpoint key, by their key names, through the hash cache in `cache_dir`:
    the run's hash cache, which PROVENANCE fills too, so each model file is read once per run."""
    from virnucpro.embed.checkpoint import model_checksum
    from virnucpro.models.encoders import BY_NAME

    return {BY_NAME[name].key: model_checksum(path, cache_dir) for name, path in paths.items()}


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


def check_outputs(out_path, classifier, predictions_path) -> None:
    """Something to write, and a classifier exactly when there is a predictions file to write its scores to."""
    if (classifier is None) != (predictions_path is None):
        raise OptionError("classifier", "--classifier and --predictions go together")
    if out_path is None and predictions_path is None:
        raise OptionError("out", "nothing to write: give --out (features) and/or --classifier with --predictions")


def embed_shard(frames_path, out_path, *, esm_model, dnabert_model, device=options.DEFAULT_DEVICE,
                precision=options.DEFAULT_PRECISION, checkpoint_dir=None,
                checkpoint_every=options.DEFAULT_CHECKPOINT_EVERY, gpus=None, lease_dir=None, token_budget=None,
                summary_path=None, workers=None, compile=None, hash_cache=None, compile_cache=None,
                dedup=True, classifier=None, predictions_path=None) -> dict:
    """`out_path`: the features npz, or None to keep no features; `classifier` + `predictions_path`: score the
    frames and write their predictions TSV (at least one of the two outputs is needed)."""
    from virnucpro.embed import lease as gpu_lease
    from virnucpro.embed import standby

    options.require_choice("precision", precision, options.PRECISIONS)
    options.require_choice("device", device, options.DEVICES)
    options.require_at_least("checkpoint_every", checkpoint_every, 1)
    options.require_at_least("token_budget", token_budget, 1)
    check_outputs(out_path, classifier, predictions_path)
    job = EmbedJob(frames_path, out_path, model_paths(esm_model, dnabert_model), precision=precision,
                   checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, token_budget=token_budget,
                   summary_path=summary_path, workers=workers, compile=compile, hash_cache=hash_cache,
                   compile_cache=compile_cache, dedup=dedup, classifier=classifier, predictions_path=predictions_path)
    prepared = prepare(job)

    if device == "cpu":
        with gpu_lease.visible_gpus(""):  # the user asked for the CPU: never touch a GPU
            return run_embed(job, prepared, resolve_settings(job, None))
    prepared.times["host_rss_at_lease_bytes"] = current_rss_bytes()
    t = time.perf_counter()
    with contextlib.ExitStack() as gpu:
        leased = gpu.enter_context(gpu_lease.acquire_gpu(lease_dir or gpu_lease.DEFAULT_LEASE_DIR, gpus,
                                                         standby=standby.enabled()))
        prepared.times["lease_wait_seconds"] = time.perf_counter() - t
        # A task on standby builds on the busy GPU and waits for it just before its first batch (embed/standby.py).
        standby.prepare(leased, job.model_paths.values(), 2 if precision == "fp16" else 4, prepared.times)
        if leased is None and device == "cuda":
            raise OptionError("device", "cuda was asked for but no GPU is available to this task")
        # run_embed hands the lease back once the last batch is computed (gpu.close); exiting here then does
        # nothing.
        return run_embed(job, prepared, resolve_settings(job, leased), leased=leased, release_gpu=gpu.close)


@dataclass
class EmbedJob:
    """One shard's embed task as asked for (embed_shard's arguments, checked)."""

    frames_path: str | os.PathLike
    out_path: str | os.PathLike | None  # the features npz; None: not kept
    model_paths: dict  # encoder name → model file (models/encoders.py)
    precision: str = options.DEFAULT_PRECISION  # as requested; the CPU computes in fp32 whatever this says
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int = options.DEFAULT_CHECKPOINT_EVERY
    token_budget: int | None = None
    summary_path: str | os.PathLike | None = None
    workers: int | None = None
    compile: bool | None = None  # None: on for the fp16 GPU path
    hash_cache: str | os.PathLike | None = None  # the run's model hash cache; None: the checkpoint dir's
    compile_cache: str | os.PathLike | None = None
    dedup: bool = True
    classifier: str | os.PathLike | None = None  # scores the frames into predictions_path
    predictions_path: str | os.PathLike | None = None


@dataclass
class Prepared:
    """What needs neither a GPU nor the weights in memory, done before the lease."""

    frames: list
    opened: dict  # encoder name → opened checkpoint (names and shapes; tensors unread)
    tokenizers: dict  # encoder name → picklable tokenize
    digests: tuple | None  # (shard sha256, model checksums) for the checkpoint key; None without checkpoints
    dups: object | None  # embed/dedup.py ShardDedup
    compile_cache: str | None
    times: dict
    t_start: float
    classifier: object | None = None  # models/classifier.py MLPClassifier, checked against the encoders' widths


@dataclass(frozen=True)
class EmbedSettings:
    """What the run computes with, resolved once the device is known and before the checkpoint key is built."""

    cuda: bool
    device: str  # "cuda:0" (the leased GPU) or "cpu"
    precision: str  # the one computed: the CPU always computes in fp32
    compile: bool  # torch.compile the encoders that offer it
    workers: int  # CPU loader workers
    gpu: str | None = None  # the leased GPU's physical id, for the summary


def prepare(job: EmbedJob) -> Prepared:
    from virnucpro.embed.checkpoint import file_sha256
    from virnucpro.embed.dedup import ShardDedup
    from virnucpro.io.frames import read_frames_tsv
    from virnucpro.models.encoders import LISTED

    t_start = time.perf_counter()
    frames = list(read_frames_tsv(job.frames_path))
    log.info("%s: %d frames", job.frames_path, len(frames))
    times = {"model_checksum_seconds": 0.0, "lease_wait_seconds": 0.0}
    t = time.perf_counter()
    # Names and shapes only (a wrong file fails here, before any hashing or GPU); the tensors stay unread.
    opened, tokenizers = {}, {}
    for spec in LISTED:
        opened[spec.name] = spec.open(job.model_paths[spec.name])
        tokenizers[spec.name] = spec.tokenizer(job.model_paths[spec.name])
    times["model_open_seconds"] = time.perf_counter() - t
    classifier = _open_classifier(job.classifier, opened) if job.classifier else None
    digests = None
    if job.checkpoint_dir:
        t = time.perf_counter()
        checksums = model_digests(job.model_paths, job.hash_cache or job.checkpoint_dir)
        times["model_checksum_seconds"] = time.perf_counter() - t
        digests = (file_sha256(job.frames_path), checksums)
    # Each distinct sequence embedded once, copied to the rest; worked out before the lease (~2 s for 400K frames)
    # so the GPU does not wait for it.
    dups = ShardDedup(frames) if job.dedup else None
    times["prepare_seconds"] = time.perf_counter() - t_start
    return Prepared(frames, opened, tokenizers, digests, dups, use_compile_cache(job.compile_cache), times, t_start,
                    classifier)


def _open_classifier(path, opened: Mapping):
    """The classifier, refused before any GPU work when its input is not the encoders' features side by side."""
    from virnucpro.models.classifier import load_classifier
    from virnucpro.models.encoders import ENCODERS

    classifier = load_classifier(path)
    widths = {spec.label: spec.width(opened[spec.name]) for spec in ENCODERS}
    if classifier.input_dim != sum(widths.values()):
        raise InputError(path, f"takes {classifier.input_dim} features, but the embedding models give "
                               + " + ".join(f"{w} ({label})" for label, w in widths.items())
                               + " (classifier and embedding models do not fit together)")
    return classifier


def resolve_settings(job: EmbedJob, leased) -> EmbedSettings:
    """Device, effective precision, compile and workers for a run holding `leased` (None: no GPU)."""
    import torch

    cuda = leased is not None and torch.cuda.is_available()
    if leased is not None and not cuda:
        log.warning("a GPU was leased but PyTorch sees no CUDA device: running on the CPU, slowly")
    if not cuda:
        log.warning("embedding on the CPU (no GPU): correct but slow")
    if job.precision == "fp16" and not cuda:
        log.warning("fp16 needs a GPU: the CPU path computes in fp32")
    precision = job.precision if cuda else "fp32"
    # torch.compile fuses ESM-2's elementwise work (~1.5x); the fp32 validation path stays eager.
    compile = (cuda and precision == "fp16") if job.compile is None else (job.compile and cuda)
    return EmbedSettings(cuda=cuda, device="cuda:0" if cuda else "cpu", precision=precision, compile=compile,
                         workers=default_workers(cuda) if job.workers is None else job.workers,
                         gpu=getattr(leased, "physical_id", None) if cuda else None)


@dataclass
class Resume:
    """The shard's checkpoint parts: all of them, and those still to compute (the others are loaded)."""

    parts: list  # (index, start, end) for every part
    todo: list  # the parts without a valid checkpoint

    @property
    def reused(self) -> int:
        return len(self.parts) - len(self.todo)


def resume_parts(store, frame_ids: list[str], every: int, rows) -> Resume:
    """Split the shard into parts of `every` frames; load each part `store` (a PartStore, or None: no
    checkpoints) holds valid for these frames into `rows` (a FeatureRows) and list the others as still to do."""
    from virnucpro.embed.checkpoint import PartStore

    plan = PartStore.plan(len(frame_ids), every)
    todo = []
    for index, start, end in plan:
        feats = store.load_valid(index, frame_ids[start:end]) if store is not None else None
        if feats is not None:
            rows.put(start, feats)
        else:
            todo.append((index, start, end))
    if len(todo) < len(plan):
        log.info("reusing %d of %d checkpoint parts", len(plan) - len(todo), len(plan))
    return Resume(plan, todo)


def _gpu_marks(times: dict, first_batch_at: float | None) -> dict:
    active = times.get("active_at")
    to_first = None if active is None or first_batch_at is None else round(first_batch_at - active, 3)
    first_epoch = None if to_first is None else round(times["active_at_epoch"] + to_first, 3)
    return {"lease_to_first_batch_seconds": to_first, "active_at_epoch": times.get("active_at_epoch"),
            "first_batch_at_epoch": first_epoch, "released_at_epoch": times.get("released_at_epoch")}


def _load_models(opened: dict, device, dtype) -> tuple[dict, float]:
    """Every encoder built from its opened checkpoint straight onto `device` in `dtype`. Empties `opened`: once
    the weights are on the GPU nothing refers to the file mapping any more, so its pages leave this process."""
    import torch

    from virnucpro.models.encoders import BY_NAME

    t = time.perf_counter()
    models = {}
    for name in list(opened):
        models[name] = BY_NAME[name].build(opened.pop(name), device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # host-to-device copies finish inside the timed load
    return models, time.perf_counter() - t


def run_embed(job: EmbedJob, prepared: Prepared, settings: EmbedSettings, leased=None, release_gpu=None) -> dict:
    """Load the models onto the settings' device, embed the parts still to do part by part (checkpointing each),
    hand the GPU back, score the frames, write the predictions, the features file (if kept) and the summary."""
    import torch

    from virnucpro.classify.outputs import write_prediction_results
    from virnucpro.embed import standby
    from virnucpro.embed.checkpoint import BackgroundParts, PartStore, key_from_digests
    from virnucpro.embed.dedup import FeatureRows
    from virnucpro.embed.engine import EmbeddingEngine
    from virnucpro.embed.packing import SequenceError
    from virnucpro.embed.scoring import RunningScores, spare_threads
    from virnucpro.embed.telemetry import Telemetry
    from virnucpro.io.features import Features, save_features
    from virnucpro.models.encoders import BY_NAME

    frames, dups, times = prepared.frames, prepared.dups, prepared.times
    dtype = torch.float16 if settings.precision == "fp16" else torch.float32
    # CUDA starts here, after the lease pinned CUDA_VISIBLE_DEVICES; the engine's loader workers are spawned
    # later with CUDA_VISIBLE_DEVICES="" and never see the GPU (SAFE-01/02).
    dev = torch.device(settings.device)
    models, load_seconds = _load_models(prepared.opened, dev, dtype)
    test_models = any(bool(m.is_test_model) for m in models.values())
    if settings.compile:
        for name, model in models.items():
            if BY_NAME[name].compiled is not None:
                model.forward_packed = BY_NAME[name].compiled(model)
    if settings.cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    telemetry = Telemetry(total_frames=len(frames), progress_every_s=30.0)
    rows = FeatureRows(len(frames))
    if dups is not None:
        rows.keep = dups.sources()
    # On the GPU path the frames are scored while later parts embed, with the cores the GPU's feeders leave; when
    # the features are not kept, scored rows give their memory back.
    scores = None if prepared.classifier is None else RunningScores(
        prepared.classifier, rows, min(torch.get_num_threads(), spare_threads(settings.workers)) if settings.cuda
        else torch.get_num_threads(), overlap=settings.cuda, release=job.out_path is None)
    telemetry.dedup = dups.stats if dups else None
    store = parts = None
    write_seconds = 0.0
    if job.checkpoint_dir:
        # The checksums were taken before the lease; the precision is the one actually computed.
        store = PartStore(job.checkpoint_dir,
                          key_from_digests(*prepared.digests, checkpoint_settings(settings.precision))).__enter__()
        parts = BackgroundParts(store)
    try:
        ids = [f.id for f in frames]
        resume = resume_parts(store, ids, job.checkpoint_every, rows)
        if scores is not None:
            scores.filled()
        telemetry.add_frames_skipped(sum(end - start for _, start, end in resume.parts) -
                                     sum(end - start for _, start, end in resume.todo))
        starts = {index: start for index, start, _ in resume.parts}
        todo = resume.todo

        def on_part(index, feats):
            if dups is not None:
                feats = dups.complete(starts[index], feats, rows)
                telemetry.add_sequences_copied(dups.copies_in(starts[index], starts[index] + len(feats)))
            if parts is not None:
                parts.write(index, feats)
            rows.put(starts[index], feats)
            if scores is not None:
                scores.filled()

        encoders = build_encoders(models, prepared.tokenizers, job.token_budget)
        with EmbeddingEngine(encoders, dev, workers=settings.workers, telemetry=telemetry) as engine:
            standby.until_active(leased, engine, times)  # a standby: warm up, then wait for the GPU
            t_compute = time.perf_counter()
            if todo:
                try:
                    engine.embed_parts([frames[s:e] for _, s, e in todo], on_part,
                                       part_indices=[i for i, _, _ in todo],
                                       compute=[dups.compute_masks(s, e) for _, s, e in todo] if dups else None)
                except SequenceError as exc:
                    raise InputError(job.frames_path, str(exc)) from None
            compute_seconds = time.perf_counter() - t_compute
            budgets = dict(zip([e.name for e in encoders], engine.budgets))
        telemetry.log_progress()
        widths = {e.name: engine.widths[k] for k, e in enumerate(encoders)}
        compile_seconds = sum(getattr(m.forward_packed, "compile_seconds", lambda: 0.0)() for m in models.values())
        device_name = torch.cuda.get_device_name(dev) if settings.cuda else None
        gpu_peak = int(torch.cuda.max_memory_allocated(dev)) if settings.cuda else None
        if release_gpu is not None:
            # The GPU's work is done: free it for the next task while this one scores its last batches and writes.
            del engine, encoders, models
            if settings.cuda:
                torch.cuda.empty_cache()
            release_gpu()
            times["released_at_epoch"] = time.time()
        if not rows.filled.all() or rows.ids != ids:
            raise RuntimeError("embedded rows do not match the shard's frames")  # never write a wrong file
        t = time.perf_counter()
        if scores is not None:
            write_prediction_results(job.predictions_path, ids, scores.finish())
        classify_tail = time.perf_counter() - t
        t = time.perf_counter()
        if job.out_path is not None:
            save_features(job.out_path, rows.features() if resume.parts else Features.empty(widths))
        write_seconds += time.perf_counter() - t
        if store is not None:
            # The shard's outputs are whole: parts not yet written are not needed, and their directory goes.
            parts.close(cancel=True)
            write_seconds += parts.seconds
            parts = None
            store.remove()
            store = None
    finally:
        if scores is not None:
            scores.close()
        if parts is not None:  # an error is on its way out; the parts under way are finished for a re-run
            if (error := parts.close()) is not None:
                log.warning("a checkpoint part could not be written either: %s", error)
        if store is not None:
            store.release()

    summary = telemetry.summary()
    summary.update({
        "frames_file": str(job.frames_path),
        "output": None if job.out_path is None else str(job.out_path),
        "device": device_name or f"cpu ({platform.processor() or platform.machine()})",
        "gpu": settings.gpu,
        "precision": settings.precision,
        "test_models": test_models,
        "token_budget": budgets,
        "workers": settings.workers,
        "compiled_esm": settings.compile,
        "compile_cache": prepared.compile_cache if settings.compile else None,
        # Fixed cost and phases of this task (docs/output.md): everything before the lease (frames, dedup, opening
        # the models, their checksums), opening + building the models, hashing them (0
        # when the run's model check supplied the checksums), waiting for a GPU, compiling (first calls of the
        # compiled functions), the part loop (compute, compile included), writing parts and the output.
        "prepare_seconds": round(times["prepare_seconds"], 3),
        "model_load_seconds": round(times["model_open_seconds"] + load_seconds, 3),
        "model_checksum_seconds": round(times["model_checksum_seconds"], 3),
        "lease_wait_seconds": round(times["lease_wait_seconds"], 3),
        "compile_seconds": round(compile_seconds, 3),
        "compute_seconds": round(compute_seconds, 3),
        "write_seconds": round(write_seconds, 3),
        # Scoring: its thread's seconds (on the GPU path mostly while later parts embed), then what was left after
        # the last batch: the last batches' scores and the predictions file.
        "classify_seconds": None if scores is None else round(scores.seconds, 3),
        "classify_tail_seconds": None if scores is None else round(classify_tail, 3),
        "predictions": None if job.predictions_path is None else str(job.predictions_path),
        "peak_host_rss_bytes": peak_rss_bytes(),
        "features_released_bytes": rows.released_bytes,  # scored rows' memory given back (no features kept)
        "host_rss_at_lease_bytes": times.get("host_rss_at_lease_bytes"),
        "total_seconds": round(time.perf_counter() - prepared.t_start, 3),
        # Standby (embed/standby.py): seconds ready on the busy GPU waiting for it; from holding the GPU to the
        # first batch's features on the host; wall-clock marks the benchmark lines up across tasks.
        "standby_seconds": round(times.get("standby_seconds", 0.0), 3),
        **_gpu_marks(times, telemetry.first_batch_at),
        "parts": len(resume.parts),
        "parts_reused": resume.reused,
        "gpu_memory_peak_bytes": gpu_peak,
        "torch": torch.__version__,
    })
    log.info("embed done: %d frames in %.1f s (%s)", len(frames), summary["total_seconds"],
             ", ".join(f"{k}: {v['tokens_per_s']} tok/s" for k, v in summary["models"].items()))
    if job.summary_path:
        atomic_write_text(job.summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
