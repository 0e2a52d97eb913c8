"""Checkpoint parts inside a shard, kept outside the Nextflow task directory so a re-run finds them.

A failed or killed Nextflow task always re-runs in a new work directory, so parts live under a checkpoint root
given as a plain string (`--checkpoint-dir`), in one directory per shard *and* per everything that changes the
numbers:

    <root>/<sha256(canonical JSON of key)[:16]>/
        key.json                the key, for people
        writer.lock             flock held by the one task writing this directory
        part_00000.npz          features of frames [0, every)           (virnucpro.io.features format)
        part_00000.done         JSON: rows, bytes, sha256, first/last id; written last, so it marks a whole part

The key holds the shard's content hash, the model checksums and every setting that changes results (precision,
model ids, code version). A part is reused only if its marker exists and agrees with the file (bytes, sha256),
the file loads without pickle, and its ids are exactly the frames the plan expects; anything else is deleted and
recomputed, never skipped.

Two tasks never write the same part: the writer holds an exclusive flock on `writer.lock` for the whole shard.
A second task on the same shard (an orphan of a killed Nextflow still running, or a duplicate run) *waits* for
the lock, then reuses every part the first one finished; past `wait_seconds` it raises RetryableError (exit 75).

Model checksums are remembered in `<cache dir>/.hash-cache/` (cached_sha256), one JSON entry per model file with a
lock file beside it; the pipeline's tasks all use the checkpoint root as that cache dir.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

from virnucpro import __version__
from virnucpro.errors import InputError, OptionError, RetryableError
from virnucpro.io.atomic import atomic_open
from virnucpro.io.features import Features, load_features, save_features

log = logging.getLogger(__name__)

DEFAULT_LOCK_WAIT_SECONDS = 3600.0  # a live duplicate finishes a shard well within this
_HASH_BLOCK = 8 << 20


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: str | os.PathLike, cache_dir: str | os.PathLike) -> str:
    """sha256 of a big file (a 6 GB ESM-2 checkpoint takes ~10 s), remembered by (path, size, mtime).

    A run's tasks start together (PROVENANCE and the first EMBED tasks), so concurrent callers of one file take
    turns on a lock beside its cache entry: the first hashes it, the others then find its entry instead of
    reading the file again."""
    entry = file_stat(path)
    real = entry["path"]
    cache = Path(cache_dir) / ".hash-cache" / (hashlib.sha256(real.encode()).hexdigest()[:24] + ".json")
    digest = _cached_digest(cache, entry)
    if digest is None:
        with _hash_lock(cache.with_suffix(".lock")):
            digest = _cached_digest(cache, entry)  # hashed by whoever held the lock before us
            if digest is None:
                digest = file_sha256(real)
                _write_json_atomic(cache, {**entry, "sha256": digest})
    return digest


def _cached_digest(cache: Path, entry: Mapping) -> str | None:
    try:
        saved = json.loads(cache.read_text())
        if {k: saved.get(k) for k in entry} == entry and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def _hash_lock(lock_path: Path):
    """An exclusive flock on `lock_path` while one file is hashed; the kernel drops it when its holder dies, so a
    task killed mid-hash never blocks the next. Where locking is impossible (some NFS mounts, a read-only cache),
    hash without it: a duplicate read costs time, never a wrong digest."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log.debug("%s: cannot open the hash lock (%s); hashing without it", lock_path, exc)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.debug("%s: cannot lock (%s); hashing without the lock", lock_path, exc)
        yield
    finally:
        os.close(fd)


def model_checksum(path: str | os.PathLike, cache_dir: str | os.PathLike) -> str:
    """sha256 of a model file, or of a model directory's files (relative names and contents, sorted)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "model path does not exist")
    if path.is_file():
        return cached_sha256(path, cache_dir)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(path).as_posix()}\0{cached_sha256(f, cache_dir)}\n".encode())
    return h.hexdigest()


def shard_key(
    shard_file: str | os.PathLike,
    models: Mapping[str, str | os.PathLike],
    settings: Mapping[str, object],
    cache_dir: str | os.PathLike,
) -> dict:
    """The checkpoint key of one shard: content hash, model checksums, result-changing settings, code version.

    `settings` must hold every option that changes the numbers (precision, model ids, attention kernel…) and
    nothing that does not (batch size, checkpoint interval, GPU id), or parts would be needlessly recomputed.
    """
    digests = {name: model_checksum(p, cache_dir) for name, p in models.items()}
    return key_from_digests(file_sha256(shard_file), digests, settings)


def key_from_digests(shard_sha256: str, model_digests: Mapping[str, str], settings: Mapping[str, object]) -> dict:
    """`shard_key` from checksums already known (worked out before the GPU lease)."""
    return {
        "shard_sha256": shard_sha256,
        "models": dict(sorted(model_digests.items())),
        "settings": dict(sorted(settings.items())),
        "virnucpro": __version__,
    }


def file_stat(path: str | os.PathLike) -> dict:
    """What says a file is still the one that was hashed: resolved path, size, modification time."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def key_digest(key: Mapping) -> str:
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, sort_keys=True)
    _fsync_dir(path.parent)  # the rename itself must survive a power cut


class PartStore:
    """The checkpoint parts of one shard. Use as a context manager: entering takes the writer lock.

        with PartStore(root, key) as store:
            for index, start, end in store.plan(len(frames), every):
                feats = store.load_valid(index, ids[start:end])
                if feats is None:
                    feats = embed(frames[start:end])
                    store.write(index, feats)
    """

    def __init__(self, root: str | os.PathLike, key: Mapping, wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS):
        self.key = dict(key)
        self.dir = Path(root) / key_digest(self.key)
        self.wait_seconds = wait_seconds
        self._lock_fd: int | None = None

    # -- locking -------------------------------------------------------------------------------------------
    def __enter__(self) -> "PartStore":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        lock_path = self.dir / "writer.lock"
        deadline = time.monotonic() + self.wait_seconds
        delay, announced = 0.05, False
        while True:
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # a finishing writer removed the directory just now
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # The directory may have been removed (remove()) between open and flock: then this lock guards
                # an unlinked file and a newcomer could lock a fresh one. Only a lock on the live path counts.
                if os.path.exists(lock_path) and os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                    break
                os.close(fd)
                continue
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise RetryableError(f"{self.dir}: another task is writing this shard's checkpoints "
                                     f"(waited {self.wait_seconds:g} s)")
            if not announced:
                log.info("%s: another task holds this shard's checkpoints; waiting for it", self.dir)
                announced = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
        self._lock_fd = fd
        # Anything temporary left here belongs to a writer that died: we hold the lock now.
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            _write_json_atomic(key_file, self.key)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("PartStore: take the writer lock (use `with PartStore(...)`) before changing parts")

    # -- parts -----------------------------------------------------------------------------------------------
    @staticmethod
    def plan(n_frames: int, every: int) -> list[tuple[int, int, int]]:
        """[(part index, first frame, end frame)] covering 0..n_frames in order."""
        if every < 1:
            raise OptionError("checkpoint_every", f"must be at least 1, got {every}")
        return [(i, start, min(start + every, n_frames)) for i, start in enumerate(range(0, n_frames, every))]

    def part_path(self, index: int) -> Path:
        return self.dir / f"part_{index:05d}.npz"

    def marker_path(self, index: int) -> Path:
        return self.dir / f"part_{index:05d}.done"

    def _discard(self, index: int, why: str) -> None:
        log.warning("%s: checkpoint part %d is unusable (%s): recomputing it", self.dir, index, why)
        # Marker first: a crash in between leaves a part without marker, which is invalid too.
        self.marker_path(index).unlink(missing_ok=True)
        self.part_path(index).unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def load_valid(self, index: int, expected_ids: Sequence[str]) -> Features | None:
        """The stored part if it is whole and holds exactly `expected_ids`; else None (and it is deleted)."""
        self._require_lock()
        part, marker = self.part_path(index), self.marker_path(index)
        if not marker.exists():
            if part.exists():
                self._discard(index, "no done marker: the writer died before finishing it")
            return None
        try:
            meta = json.loads(marker.read_text())
            size, digest, rows = int(meta["bytes"]), str(meta["sha256"]), int(meta["rows"])
        except (OSError, ValueError, KeyError, TypeError):
            self._discard(index, "unreadable done marker")
            return None
        if not part.exists():
            self._discard(index, "part file missing")
            return None
        if part.stat().st_size != size:
            self._discard(index, f"{part.stat().st_size} bytes, marker says {size}")
            return None
        if file_sha256(part) != digest:
            self._discard(index, "content differs from the sha256 in its marker")
            return None
        try:
            feats = load_features(part)
        except Exception as exc:  # noqa: BLE001 - whatever the damage (zipfile.BadZipFile escapes InputError)
            self._discard(index, f"does not load: {getattr(exc, 'problem', exc)}")
            return None
        if len(feats) != rows or len(feats) != len(expected_ids):
            self._discard(index, f"{len(feats)} rows, expected {len(expected_ids)}")
            return None
        if feats.ids != list(expected_ids):
            self._discard(index, "frame ids differ from the shard's")
            return None
        if any(a.ndim != 2 for a in feats.columns.values()):
            self._discard(index, "feature arrays are not 2-D")
            return None
        return feats

    def write(self, index: int, feats: Features) -> None:
        """Part file (temp, fsync, rename), then its done marker (temp, fsync, rename), each followed by a
        directory fsync so the rename itself survives a power cut."""
        self._require_lock()
        part = self.part_path(index)
        self.marker_path(index).unlink(missing_ok=True)
        save_features(part, feats)
        _fsync_dir(self.dir)
        _write_json_atomic(self.marker_path(index), {
            "part": index,
            "rows": len(feats),
            "bytes": part.stat().st_size,
            "sha256": file_sha256(part),
            "first_id": feats.ids[0] if len(feats) else None,
            "last_id": feats.ids[-1] if len(feats) else None,
        })

    def remove(self) -> None:
        """Delete this shard's checkpoints (after its final output is safely written). Keeps the lock held
        until the directory is gone; waiters then find no lock file and start afresh."""
        self._require_lock()
        for p in self.dir.iterdir():
            if p.name != "writer.lock":
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        (self.dir / "writer.lock").unlink()
        try:
            self.dir.rmdir()
        except OSError:
            pass
        self.release()


class BackgroundParts:
    """Writes a PartStore's parts on a thread of its own. A part is 133 MB at 10,000 frames and its write ends in
    fsyncs, which can take seconds on a busy disk; written on the engine's writer thread, that stalls the batches
    queued behind it and so the GPU. At most `pending` parts wait (the features are also held in the shard's
    rows, so this bounds the extra memory); the first error is raised by the next `write`, returned by `close`."""

    def __init__(self, store: PartStore, pending: int = 2):
        self.store = store
        self.seconds = 0.0  # spent writing, on the background thread
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="virnucpro-checkpoint")
        self._slots = threading.BoundedSemaphore(pending)
        self._futures: list = []

    def write(self, index: int, feats: Features) -> None:
        self._raise_first_error()
        self._slots.acquire()
        try:
            self._futures.append(self._pool.submit(self._write, index, feats))
        except BaseException:
            self._slots.release()
            raise

    def _write(self, index: int, feats: Features) -> None:
        t = time.perf_counter()
        try:
            self.store.write(index, feats)
        finally:
            self.seconds += time.perf_counter() - t
            self._slots.release()

    def _raise_first_error(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()

    def close(self, cancel: bool = False) -> BaseException | None:
        """Wait for the parts under way (`cancel`: drop those not started) and return the first write error."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        return next((f.exception() for f in self._futures if not f.cancelled() and f.exception() is not None),
                    None)
