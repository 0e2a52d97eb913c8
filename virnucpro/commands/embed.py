"""`virnucpro embed`: one shard of frames → its predictions TSV (with --classifier) and/or its features npz
(DNABERT-S and ESM-2 mean embeddings)."""

from __future__ import annotations

from virnucpro import options


def add_arguments(p) -> None:
    p.add_argument("--frames", required=True, help="shard TSV (frame_id, nucleotide, protein)")
    p.add_argument("--esm-model", required=True, help="ESM-2 3B: fair-esm .pt file or HF model directory")
    p.add_argument("--dnabert-model", required=True, help="DNABERT-S HF model directory (with tokenizer.json)")
    p.add_argument("--out", default=None, help="features .npz to write (default: none kept)")
    p.add_argument("--classifier", default=None, help="300_model.pth / 500_model.pth: score the frames")
    p.add_argument("--predictions", default=None,
                   help="predictions TSV to write with --classifier (the columns of prediction_results.txt, "
                        "input order)")
    p.add_argument("--precision", choices=options.PRECISIONS, default=options.DEFAULT_PRECISION,
                   help="GPU compute precision; fp32 is the validation mode (the CPU always uses fp32)")
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE,
                   help="auto: a leased GPU if any, else the CPU")
    p.add_argument("--checkpoint-dir", default=None,
                   help="keep checkpoint parts here (outside the task directory) so a re-run resumes")
    p.add_argument("--checkpoint-every", type=int, default=options.DEFAULT_CHECKPOINT_EVERY,
                   help=f"frames per checkpoint part (default {options.DEFAULT_CHECKPOINT_EVERY})")
    p.add_argument("--gpus", default=None, help="physical GPU ids this task may lease, e.g. 0,1")
    p.add_argument("--lease-dir", default=None,
                   help=f"directory of the per-GPU lease lock files (default {options.DEFAULT_LEASE_DIR})")
    p.add_argument("--token-budget", type=int, default=None,
                   help="tokens per packed batch (default: derived from free GPU memory)")
    p.add_argument("--summary", default=None, help="write the run's throughput summary JSON here")
    p.add_argument("--workers", type=int, default=None, help="CPU loader workers (default: by device)")
    p.add_argument("--no-compile", action="store_true",
                   help="run ESM-2 eagerly on the GPU (default: torch.compile the fp16 path)")
    p.add_argument("--hash-cache", default=None, metavar="DIR",
                   help="keep the model files' checksums (for the checkpoint key) here, shared with the run's "
                        "other tasks and `virnucpro provenance --hash-cache`, so each file is read once "
                        "(default: the checkpoint dir)")
    p.add_argument("--compile-cache", default=None,
                   help="torch.compile cache directory shared by the run's tasks (TORCHINDUCTOR_CACHE_DIR wins)")


def run(args) -> int:
    from virnucpro.embed.failures import raise_on_sigterm, report_failure
    from virnucpro.embed.lease import parse_gpu_list
    from virnucpro.embed.run import check_outputs, embed_shard
    from virnucpro.errors import VirnucproError

    check_outputs(args.out, args.classifier, args.predictions)  # before a finished attempt is looked for
    gpus = parse_gpu_list(args.gpus) if args.gpus else None
    raise_on_sigterm()
    finished = _finished_task(args)
    if finished and finished.reuse():
        return 0
    try:
        embed_shard(
            args.frames, args.out, esm_model=args.esm_model, dnabert_model=args.dnabert_model, device=args.device,
            precision=args.precision, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
            gpus=gpus, lease_dir=args.lease_dir, token_budget=args.token_budget, summary_path=args.summary,
            workers=args.workers, compile=False if args.no_compile else None, hash_cache=args.hash_cache,
            compile_cache=args.compile_cache, classifier=args.classifier, predictions_path=args.predictions,
        )
    except VirnucproError as exc:
        report_failure(exc)
        raise  # the CLI prints its one-line message and exits with its code
    except BaseException as exc:  # CUDA out of memory or faults, SIGTERM, bugs: one classified line, its exit code
        return report_failure(exc).exit_code
    if finished:
        finished.remember()
    return 0


class _FinishedTask:
    """This task's outputs as virnucpro.embed.finished remembers them across attempts (checkpoint dir only)."""

    def __init__(self, args):
        from virnucpro.embed import finished

        self.module = finished
        self.dir = args.checkpoint_dir
        wanted = {"features": args.out, "predictions": args.predictions, "summary": args.summary}
        self.outputs = {role: path for role, path in wanted.items() if path}
        self.digest = finished.task_digest(args.frames, [args.esm_model, args.dnabert_model, args.classifier],
                                           {"precision": args.precision, "device": args.device})

    def reuse(self) -> bool:
        return self.module.reuse(self.dir, self.digest, self.outputs)

    def remember(self) -> None:
        self.module.remember(self.dir, self.digest, self.outputs)


def _finished_task(args):
    """None without a checkpoint dir, or when the inputs cannot be read (embed_shard then says why)."""
    if not args.checkpoint_dir:
        return None
    try:
        return _FinishedTask(args)
    except OSError:
        return None
