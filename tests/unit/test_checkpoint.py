"""Checkpoint parts: keyed directories, validation before reuse, atomic writes, one writer per shard."""

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from virnucpro.embed.checkpoint import (BackgroundParts, PartStore, cached_sha256, file_sha256, key_digest,
                                       model_checksum, shard_key)
from virnucpro.errors import RetryableError
from virnucpro.io.features import Features

ROOT = Path(__file__).resolve().parents[2]
KEY = {"shard_sha256": "ab" * 32, "models": {"esm": "1" * 64}, "settings": {"precision": "fp32"}, "virnucpro": "t"}


def feats(ids, seed=0):
    rng = np.random.default_rng(seed)
    return Features(list(ids), {"nucleotide": rng.standard_normal((len(ids), 6)).astype(np.float32),
                                "protein": rng.standard_normal((len(ids), 10)).astype(np.float32)})


IDS = [f"r{i}_chunk_1F1" for i in range(23)]


def test_plan_covers_every_frame_once_in_order():
    assert PartStore.plan(23, 10) == [(0, 0, 10), (1, 10, 20), (2, 20, 23)]
    assert PartStore.plan(20, 10) == [(0, 0, 10), (1, 10, 20)]
    assert PartStore.plan(0, 10) == []
    assert PartStore.plan(3, 1) == [(0, 0, 1), (1, 1, 2), (2, 2, 3)]


def test_directory_is_keyed_by_every_part_of_the_key(tmp_path):
    base = PartStore(tmp_path, KEY).dir
    assert base == tmp_path / key_digest(KEY) and len(base.name) == 16
    assert PartStore(tmp_path, dict(reversed(list(KEY.items())))).dir == base  # canonical JSON: order-free
    for change in ({"shard_sha256": "cd" * 32}, {"models": {"esm": "2" * 64}},
                   {"settings": {"precision": "fp16"}}, {"virnucpro": "u"}):
        assert PartStore(tmp_path, {**KEY, **change}).dir != base


def test_written_parts_are_reused(tmp_path):
    with PartStore(tmp_path, KEY) as store:
        for index, start, end in store.plan(len(IDS), 10):
            assert store.load_valid(index, IDS[start:end]) is None
            store.write(index, feats(IDS[start:end], seed=index))
    assert json.loads((store.dir / "key.json").read_text()) == KEY
    with PartStore(tmp_path, KEY) as again:
        for index, start, end in again.plan(len(IDS), 10):
            got = again.load_valid(index, IDS[start:end])
            want = feats(IDS[start:end], seed=index)
            assert got.ids == want.ids
            np.testing.assert_array_equal(got["nucleotide"], want["nucleotide"])
            np.testing.assert_array_equal(got["protein"], want["protein"])
        marker = json.loads(again.marker_path(2).read_text())
        assert marker["rows"] == 3 and marker["bytes"] == again.part_path(2).stat().st_size


def _spoil(store, how):
    part, marker = store.part_path(0), store.marker_path(0)
    if how == "no marker":
        marker.unlink()
    elif how == "truncated":
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    elif how == "same size, flipped byte":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif how == "garbage marker":
        marker.write_text("{not json")
    elif how == "part missing":
        part.unlink()
    elif how == "wrong size in marker":
        meta = json.loads(marker.read_text())
        meta["bytes"] += 1
        marker.write_text(json.dumps(meta))
    elif how == "not an npz, marker matching":
        part.write_bytes(b"PK\x03\x04 this is not a zip file at all")
        meta = json.loads(marker.read_text())
        meta.update(bytes=part.stat().st_size, sha256=file_sha256(part))
        marker.write_text(json.dumps(meta))


@pytest.mark.parametrize("how", ["no marker", "truncated", "same size, flipped byte", "garbage marker",
                                 "part missing", "wrong size in marker", "not an npz, marker matching"])
def test_a_damaged_part_is_deleted_and_reported_missing(tmp_path, how):
    with PartStore(tmp_path, KEY) as store:
        store.write(0, feats(IDS[:10]))
        store.write(1, feats(IDS[10:20], seed=1))
        _spoil(store, how)
        assert store.load_valid(0, IDS[:10]) is None
        assert not store.part_path(0).exists() and not store.marker_path(0).exists()
        assert store.load_valid(1, IDS[10:20]) is not None  # its neighbour is untouched


def test_a_part_for_other_frames_is_not_reused(tmp_path):
    with PartStore(tmp_path, KEY) as store:
        store.write(0, feats(IDS[:10]))
        # Same count, other ids (e.g. a different --checkpoint-every on the re-run): recomputed.
        assert store.load_valid(0, IDS[1:11]) is None
        store.write(0, feats(IDS[:10]))
        assert store.load_valid(0, IDS[:9]) is None


def test_stale_temp_files_of_a_dead_writer_are_cleared(tmp_path):
    store = PartStore(tmp_path, KEY)
    store.dir.mkdir(parents=True)
    stale = store.dir / ".part_00000.npz.abc123.tmp"
    stale.write_bytes(b"half")
    with store:
        assert not stale.exists()


def test_changing_parts_needs_the_lock(tmp_path):
    store = PartStore(tmp_path, KEY)
    with pytest.raises(RuntimeError, match="writer lock"):
        store.write(0, feats(IDS[:3]))


HOLD = r"""
import sys, time
from virnucpro.embed.checkpoint import PartStore
key = {"shard_sha256": "ab" * 32, "models": {"esm": "1" * 64}, "settings": {"precision": "fp32"}, "virnucpro": "t"}
with PartStore(sys.argv[1], key):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.integration
def test_second_writer_waits_then_gives_up_with_retryable(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "2.0"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RetryableError, match="another task is writing"):
        PartStore(tmp_path, KEY, wait_seconds=0.3).acquire()
    t0 = time.monotonic()
    with PartStore(tmp_path, KEY, wait_seconds=30):  # waits for the holder to finish
        assert holder.poll() == 0
    assert time.monotonic() - t0 > 0.5
    holder.wait()


def test_remove_deletes_the_shard_directory(tmp_path):
    with PartStore(tmp_path, KEY) as store:
        store.write(0, feats(IDS[:3]))
        store.remove()
    assert not store.dir.exists()
    with PartStore(tmp_path, KEY) as store:  # usable again afterwards
        assert store.load_valid(0, IDS[:3]) is None


def test_model_checksums_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights" * 1000)
    cache = tmp_path / "ckpt"
    first = cached_sha256(model, cache)
    assert first == file_sha256(model)
    calls = []
    import virnucpro.embed.checkpoint as ck

    real = ck.file_sha256
    monkeypatch.setattr(ck, "file_sha256", lambda p: calls.append(p) or real(p))
    assert ck.cached_sha256(model, cache) == first and calls == []  # from the cache
    model.write_bytes(b"other!!" * 1000)  # same size, new mtime
    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert ck.cached_sha256(model, cache) == file_sha256(model) != first and len(calls) == 1


def _slow_counted_sha256(monkeypatch, seconds=0.3):
    """Patch checkpoint.file_sha256 to take `seconds` and record each file it reads."""
    import virnucpro.embed.checkpoint as ck

    calls, real = [], ck.file_sha256
    monkeypatch.setattr(ck, "file_sha256", lambda p: calls.append(p) or time.sleep(seconds) or real(p))
    return calls


def test_concurrent_hashers_of_one_file_read_it_once(tmp_path, monkeypatch):
    """PROVENANCE and the first EMBED tasks start together: the first hashes a model, the others wait for its digest."""
    import virnucpro.embed.checkpoint as ck

    model = tmp_path / "m.pt"
    model.write_bytes(b"weights" * 1000)
    calls = _slow_counted_sha256(monkeypatch)
    start = threading.Barrier(3)

    def hasher(_):
        start.wait()
        return ck.cached_sha256(model, tmp_path / "c")

    with ThreadPoolExecutor(3) as pool:
        digests = list(pool.map(hasher, range(3)))
    assert digests == [file_sha256(model)] * 3
    assert len(calls) == 1


def test_a_hasher_killed_mid_hash_does_not_block_the_next(tmp_path):
    """The lock is an flock: the kernel drops it with its holder, so the waiter goes on and hashes the file itself."""
    import virnucpro.embed.checkpoint as ck

    model, cache, ready = tmp_path / "m.pt", tmp_path / "c", tmp_path / "hashing"
    model.write_bytes(b"weights" * 1000)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time
        import virnucpro.embed.checkpoint as ck
        def stuck(path):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(600)
        ck.file_sha256 = stuck
        ck.cached_sha256({str(model)!r}, {str(cache)!r})
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder never started hashing"
            time.sleep(0.05)
        with ThreadPoolExecutor(1) as pool:
            waiter = pool.submit(ck.cached_sha256, model, cache)
            time.sleep(0.5)
            assert not waiter.done()  # waiting on the other process's lock
            holder.kill()
            assert waiter.result(timeout=30) == file_sha256(model)
    finally:
        holder.kill()
        holder.wait()


def test_hashing_goes_on_without_the_lock_where_locking_fails(tmp_path, monkeypatch, caplog):
    import virnucpro.embed.checkpoint as ck

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    model = tmp_path / "m.pt"
    model.write_bytes(b"weights" * 1000)
    monkeypatch.setattr(ck.fcntl, "flock", no_locks)
    with caplog.at_level(logging.DEBUG, logger=ck.__name__):
        assert ck.cached_sha256(model, tmp_path / "c") == file_sha256(model)
    assert "hashing without the lock" in caplog.text
    assert len(list((tmp_path / "c" / ".hash-cache").glob("*.json"))) == 1  # the entry was still written


def test_model_directory_checksum_and_shard_key(tmp_path):
    d = tmp_path / "dnabert"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"x" * 100)
    shard = tmp_path / "shard_00000.tsv"
    shard.write_text("frame_id\tnucleotide\tprotein\n")
    key = shard_key(shard, {"dnabert": d}, {"precision": "fp32"}, tmp_path / "ckpt")
    assert key["shard_sha256"] == file_sha256(shard)
    before = model_checksum(d, tmp_path / "ckpt")
    (d / "config.json").write_text('{"a": 1}')
    assert model_checksum(d, tmp_path / "ckpt") != before


def test_background_parts_are_whole_valid_parts_once_closed(tmp_path):
    with PartStore(tmp_path, KEY) as store:
        parts = BackgroundParts(store)
        for index, start, end in store.plan(len(IDS), 5):
            parts.write(index, feats(IDS[start:end], seed=index))
        assert parts.close() is None
        for index, start, end in store.plan(len(IDS), 5):
            np.testing.assert_array_equal(store.load_valid(index, IDS[start:end])["protein"],
                                          feats(IDS[start:end], seed=index)["protein"])
    assert parts.seconds > 0


class _SlowStore:
    """A PartStore stand-in whose writes wait for the test, to see what waits for them."""

    def __init__(self, fail_index=None):
        import threading

        self.go, self.ended, self.written, self.fail_index = threading.Event(), threading.Event(), [], fail_index

    def write(self, index, part):
        try:
            self.go.wait(10)
            if index == self.fail_index:
                raise OSError(28, "No space left on device")
            self.written.append(index)
        finally:
            self.ended.set()


def test_background_parts_bound_what_waits_and_return_errors():
    import threading

    store = _SlowStore()
    parts = BackgroundParts(store, pending=2)
    parts.write(0, None)
    parts.write(1, None)  # one being written, one waiting: the limit
    third = threading.Thread(target=parts.write, args=(2, None))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # the caller waits for a free slot instead of queueing a third part
    store.go.set()
    third.join(10)
    assert parts.close() is None and store.written == [0, 1, 2]

    failing = _SlowStore(fail_index=0)
    parts = BackgroundParts(failing)
    parts.write(0, None)
    failing.go.set()
    assert failing.ended.wait(10)
    time.sleep(0.05)  # the future records the exception just after the write returns
    with pytest.raises(OSError, match="No space left"):
        parts.write(1, None)  # the next write raises the failed part's error
    assert isinstance(parts.close(), OSError) and failing.written == []
