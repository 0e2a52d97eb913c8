"""A finished EMBED task's outputs, remembered so that the same task started again reuses them.

When the Nextflow JVM is killed, a local EMBED task it started keeps running as an orphan and may finish its
shard; Nextflow never learns that, and on `-resume` starts the task again in a new work directory, where it would
embed the whole shard again (its checkpoint parts were deleted when the orphan finished). So a task that finishes
writes a small record under ``<checkpoint dir>/finished/`` naming its outputs (path, size, sha256), last, after
the outputs are complete. A later task with the same inputs finds the record, checks the files are still exactly
those bytes, and copies them instead of computing; anything missing or different and it computes as usual.

The record's name is a digest of what makes the task: the shard's content, each model's (the classifier's too)
resolved path, size and modification time, the options that change the numbers (precision, device) and the code
version. Cheap to compute (no model hashing), and a changed model file changes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from virnucpro import __version__
from virnucpro.io.atomic import atomic_open, atomic_write_text

log = logging.getLogger(__name__)

_BLOCK = 8 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _model_stat(path) -> list:
    """Resolved path, size and mtime of a model file, or of every file of a model directory."""
    root = Path(os.path.realpath(path))
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def task_digest(frames_path, models, settings: dict) -> str:
    """`models`: the task's model paths in a fixed order (None for one it does not use)."""
    identity = {
        "frames_sha256": _sha256(Path(frames_path)),
        "models": [None if m is None else _model_stat(m) for m in models],
        "settings": settings,
        "virnucpro": __version__,
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def record_path(checkpoint_dir, digest: str) -> Path:
    return Path(checkpoint_dir) / "finished" / f"{digest}.json"


def remember(checkpoint_dir, digest: str, outputs: dict[str, str]) -> None:
    """Record the finished outputs (role -> path); written after they are complete."""
    entry = {}
    for role, path in outputs.items():
        real = Path(os.path.realpath(path))
        entry[role] = {"path": str(real), "bytes": real.stat().st_size, "sha256": _sha256(real)}
    target = record_path(checkpoint_dir, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(entry, indent=2, sort_keys=True) + "\n")


def reuse(checkpoint_dir, digest: str, outputs: dict[str, str]) -> bool:
    """Copy a finished earlier attempt's outputs to ``outputs`` (role -> path) if its record names exactly these
    roles and every file is still the recorded bytes. Returns whether it did."""
    record = record_path(checkpoint_dir, digest)
    try:
        entry = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    if set(entry) != set(outputs):
        return False
    for role, saved in entry.items():
        source = Path(saved["path"])
        try:
            if source.stat().st_size != saved["bytes"] or _sha256(source) != saved["sha256"]:
                log.info("%s changed since it was recorded: computing again", source)
                return False
        except OSError:
            return False  # the earlier work dir is gone
    for role, saved in entry.items():
        with open(saved["path"], "rb") as src, atomic_open(outputs[role], "wb") as dst:
            shutil.copyfileobj(src, dst, _BLOCK)
    log.info("reusing the finished outputs of an earlier attempt of this task (%s)", record)
    return True
