"""`virnucpro predict`: the whole computation on one machine, without Nextflow.

The same package functions as the pipeline, one after the other: preprocess_file → frames TSV → embed_shard
(engine and classifier, checkpoints off) → aggregate_sample, which writes the original's two result files and the
per-record table, viral FASTA and summary JSON. Intermediate files stay in OUTDIR/intermediate/.
"""

from __future__ import annotations

import logging
from pathlib import Path

from virnucpro import options

log = logging.getLogger("virnucpro.predict")


def add_arguments(p) -> None:
    p.add_argument("--input", required=True, type=Path, help="FASTA/FASTQ (plain or compressed)")
    p.add_argument("--chunk-length", required=True, type=int,
                   help=f"{' or '.join(map(str, options.CHUNK_LENGTHS))} (the classifier's chunk size)")
    p.add_argument("--esm-model", required=True, help="ESM-2 3B: fair-esm .pt file or HF model directory")
    p.add_argument("--dnabert-model", required=True, help="DNABERT-S HF model directory (with tokenizer.json)")
    p.add_argument("--classifier", required=True, type=Path, help="300_model.pth / 500_model.pth")
    p.add_argument("--outdir", required=True, type=Path, help="where the result files go")
    p.add_argument("--precision", choices=options.PRECISIONS, default=options.DEFAULT_PRECISION,
                   help=f"GPU compute precision (default {options.DEFAULT_PRECISION}, the pipeline's; fp32 is the "
                        "original's; the CPU always uses fp32)")
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE,
                   help="auto: a GPU if any, else the CPU")
    p.add_argument("--token-budget", type=int, default=None, help="tokens per packed batch (default: automatic)")
    p.add_argument("--threshold", type=float, default=options.DEFAULT_THRESHOLD,
                   help=f"virus score at which a record is called viral (default {options.DEFAULT_THRESHOLD})")
    p.add_argument("--sample", default=None, help="sample name for the per-record files (default: input file stem)")


def run(args) -> int:
    from virnucpro.embed.run import embed_shard
    from virnucpro.errors import InputError
    from virnucpro.io.frames import read_frame_pair, write_frames_tsv
    from virnucpro.models.check import check_models, print_problems
    from virnucpro.preprocess.run import preprocess_file
    from virnucpro.report.aggregate import aggregate_sample

    if not args.input.is_file():
        raise InputError(args.input, "file not found")
    # Every model problem, one line each, before minutes of embedding (the pipeline's PROVENANCE step does the same).
    check = check_models(args.esm_model, args.dnabert_model, args.classifier, args.chunk_length)
    if not check.ok:
        return print_problems(check)
    work = args.outdir / "intermediate"
    pre = work / "preprocess"
    preprocess_file(args.input, args.chunk_length, pre)
    frames_tsv = work / "frames.tsv"
    n = write_frames_tsv(frames_tsv, read_frame_pair(pre / "identified_nucleotide.fa",
                                                     pre / "identified_protein.faa"))
    log.info("%d frames to embed", n)
    predictions = work / "predictions.tsv"
    embed_shard(frames_tsv, None, esm_model=args.esm_model, dnabert_model=args.dnabert_model,
                device=args.device, precision=args.precision, token_budget=args.token_budget,
                summary_path=work / "embed_summary.json", classifier=args.classifier, predictions_path=predictions)
    sample = args.sample or _stem(args.input)
    aggregate_sample(sample, [predictions], pre / "records.tsv", args.input, args.threshold, args.outdir,
                     chunk_length=args.chunk_length, shard_paths=[frames_tsv])
    print(f"{n} frame(s) scored → {args.outdir / 'prediction_results.txt'}")
    return 0


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    return name.rsplit(".", 1)[0] if "." in name else name
