"""`virnucpro provenance`: check the run's models, then record which files they are (sha256, size, path).

The pipeline's PROVENANCE task runs this once per run, beside the first tasks: it first runs the model checks of
virnucpro.models.check (one error line per problem, exit 2, no JSON written: the run stops), then writes
<outdir>/pipeline_info/model_provenance.json, which the report shows. Hashes go through the embed checkpoint's hash
cache (virnucpro.embed.checkpoint), the same `--hash-cache` directory the run's EMBED tasks use for their checkpoint
keys, so a 6 GB ESM-2 file is read once per (path, size, mtime) and run, and the per-model sha256 is the same digest
the checkpoint keys use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from virnucpro import options

# Role in the run -> (argument name, what the report calls it).
MODELS = {
    "esm": ("esm_model", "ESM-2 (protein)"),
    "dnabert": ("dnabert_model", "DNABERT-S (nucleotide)"),
    "classifier": ("classifier", "VirNucPro classifier"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--esm-model", required=True, type=Path, metavar="P",
                   help="ESM-2 weights: fair-esm .pt file or Hugging Face directory")
    p.add_argument("--dnabert-model", required=True, type=Path, metavar="D", help="DNABERT-S directory")
    p.add_argument("--classifier", required=True, type=Path, metavar="C", help="classifier .pth")
    p.add_argument("--precision", required=True, choices=options.PRECISIONS, help="embedding precision of the run")
    p.add_argument("--chunk-length", required=True, type=int, choices=options.CHUNK_LENGTHS, metavar="L",
                   help="chunk length of the run (300 or 500)")
    p.add_argument("--hash-cache", type=Path, metavar="DIR",
                   help="keep file hashes here (the run's `virnucpro embed --hash-cache`) so big files are hashed "
                        "once; default: a throwaway directory")
    p.add_argument("--out", required=True, type=Path, metavar="JSON", help="where the JSON goes")


def _is_test_model(path: Path) -> bool:
    """make-test-models' marker file, or (for a Hugging Face directory) its flag in config.json."""
    from virnucpro.models import loading

    if loading.is_test_model(path):
        return True
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        try:
            return bool(json.loads(config.read_text(encoding="utf-8")).get(loading.TEST_MODEL_FLAG))
        except (OSError, ValueError, AttributeError):
            return False
    return False


def describe_model(path: Path, cache_dir: Path) -> dict:
    """sha256 (the checkpoint keys' digest), total size, resolved path and, per file inside, the same."""
    from virnucpro.embed.checkpoint import cached_sha256, model_checksum
    from virnucpro.errors import InputError

    given = Path(path)
    if not given.exists():
        raise InputError(given, "model path does not exist")
    resolved = Path(os.path.realpath(given))
    digest = model_checksum(resolved, cache_dir)
    if resolved.is_file():
        members = [resolved]
    else:
        # The files model_checksum hashes: every non-hidden file, sorted by relative name.
        members = sorted(p for p in resolved.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not members:
            raise InputError(given, "model directory holds no files")
    files = [{
        "name": member.name if resolved.is_file() else member.relative_to(resolved).as_posix(),
        "path": os.path.realpath(member),
        "size": member.stat().st_size,
        "mtime_ns": member.stat().st_mtime_ns,  # with path and size, what the hash cache knows the file by
        "sha256": cached_sha256(member, cache_dir),
    } for member in members]
    return {
        "path": str(resolved),
        "kind": "file" if resolved.is_file() else "directory",
        "sha256": digest,
        "size": sum(f["size"] for f in files),
        "test_model": _is_test_model(resolved),
        "files": files,
    }


def provenance(models: dict[str, Path], precision: str, chunk_length: int, cache_dir: Path) -> dict:
    from virnucpro import __version__

    return {
        "virnucpro_version": __version__,
        # Asked for, not necessarily used: a task on the CPU computes in fp32 (its embed.json says what it used).
        "precision_requested": precision,
        "chunk_length": chunk_length,
        "models": {role: {"name": MODELS[role][1], **describe_model(path, cache_dir)}
                   for role, path in models.items()},
    }


def hash_in_background(paths, cache_dir: Path) -> list[threading.Thread]:
    """Fill the hash cache for `paths`, one thread per model, while the caller does other work. sha256 and file
    reads run outside the GIL, so this overlaps the model checks (mostly importing torch and opening the models):
    seconds each for a 6 GB ESM-2 file. Errors are left for describe_model to find and report."""
    from virnucpro.embed.checkpoint import model_checksum

    def warm(path):
        with contextlib.suppress(Exception):
            model_checksum(Path(os.path.realpath(path)), cache_dir)

    threads = [threading.Thread(target=warm, args=(path,), daemon=True, name="virnucpro-hash") for path in paths]
    for thread in threads:
        thread.start()
    return threads


def run(args: argparse.Namespace) -> int:
    from virnucpro.io.atomic import atomic_write_text
    from virnucpro.models.check import check_models, print_problems

    models = {role: getattr(args, attr) for role, (attr, _) in MODELS.items()}
    with contextlib.ExitStack() as scratch:
        cache_dir = args.hash_cache
        if cache_dir is None:
            cache_dir = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="virnucpro-hash-")))
        hashing = hash_in_background(models.values(), cache_dir)
        check = check_models(args.esm_model, args.dnabert_model, args.classifier, args.chunk_length)
        if not check.ok:
            return print_problems(check)
        for thread in hashing:
            thread.join()
        record = provenance(models, args.precision, args.chunk_length, cache_dir)
    record["checks"] = check.facts
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    tests = [m["name"] for m in record["models"].values() if m["test_model"]]
    if tests:
        print(f"virnucpro: note: test model(s) with random weights: {', '.join(tests)}", file=sys.stderr)
    return 0
