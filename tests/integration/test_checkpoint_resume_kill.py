"""kill -9 at random points, re-run, and get exactly the uninterrupted output [CKPT-02].

The embed step here is a stand-in with the real control flow (lease → checkpoint store → parts → final file),
whose features are a deterministic function of each sequence; it is slow per frame so kills land anywhere: while
computing, while writing a part, between a part and its marker, while writing the final file. The same checks
against the real `virnucpro embed` with tiny models live in test_resume_embed.py.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from virnucpro.embed.shard import split_frames
from virnucpro.io.features import load_features
from virnucpro.io.frames import Frame, read_frames_tsv

ROOT = Path(__file__).resolve().parents[2]

FAKE_EMBED = r"""
import hashlib, os, sys, time
import numpy as np
from virnucpro.embed.checkpoint import PartStore, file_sha256
from virnucpro.embed.lease import acquire_gpu
from virnucpro.io.features import Features, save_features
from virnucpro.io.frames import read_frames_tsv

shard, out, root, every, delay, lease_dir, computed_log = sys.argv[1:8]
every, delay = int(every), float(delay)
frames = list(read_frames_tsv(shard))
key = {"shard_sha256": file_sha256(shard), "models": {"fake": "1"}, "settings": {"precision": "fp32"},
       "virnucpro": "test"}

def embed(frame):
    time.sleep(delay)
    with open(computed_log, "a") as fh:
        fh.write(frame.id + "\n")
    seed = int.from_bytes(hashlib.sha256(frame.protein.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return rng.standard_normal(8).astype(np.float32), rng.standard_normal(12).astype(np.float32)

with PartStore(root, key) as store, acquire_gpu(lease_dir, wait_seconds=60):
    parts = []
    for index, start, end in store.plan(len(frames), every):
        chunk = frames[start:end]
        feats = store.load_valid(index, [f.id for f in chunk])
        if feats is None:
            rows = [embed(f) for f in chunk]
            feats = Features([f.id for f in chunk], np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
            store.write(index, feats)
        parts.append(feats)
    save_features(out, Features.concat(parts))
    store.remove()
"""


def make_shard(tmp_path, n=60, seed=0):
    rng = random.Random(seed)
    frames = []
    for i in range(n):
        aa = rng.randint(20, 60)
        frames.append(Frame(f"seq{i}_chunk_1F1", "".join(rng.choice("ACGT") for _ in range(3 * aa + 1)),
                            "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(aa))))
    [shard] = split_frames(frames, tmp_path / "shards", 10**9)
    return shard, frames


def run_embed(tmp_path, shard, out, every, delay=0.01):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "VIRNUCPRO_NUM_GPUS": "1"}
    return subprocess.Popen([sys.executable, "-c", FAKE_EMBED, str(shard), str(out), str(tmp_path / "ckpt"),
                             str(every), str(delay), str(tmp_path / "leases"), str(tmp_path / "computed.log")],
                            env=env, stderr=subprocess.PIPE, text=True)


def assert_same_features(a, b):
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.nucleotide, b.nucleotide)
    np.testing.assert_array_equal(a.protein, b.protein)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_output(tmp_path, seed):
    shard, frames = make_shard(tmp_path)
    every = 7
    reference = tmp_path / "reference.npz"
    t0 = time.monotonic()
    p = run_embed(tmp_path, shard, reference, every)
    assert p.wait(timeout=60) == 0, p.stderr.read()
    t_full = time.monotonic() - t0  # start-up included
    (tmp_path / "computed.log").unlink()
    assert not any((tmp_path / "ckpt").iterdir())  # a finished shard leaves no checkpoints behind

    rng = random.Random(seed)
    out = tmp_path / "out.npz"
    kills = 0
    while True:
        p = run_embed(tmp_path, shard, out, every)
        # The first kill surely lands before the end; later ones anywhere, the last run finishes.
        time.sleep(rng.uniform(0.05, 0.8 * t_full if kills == 0 else t_full))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        if p.wait() == 0 or out.exists():
            # It finished between the poll and the signal (or was killed while exiting, its output written):
            # the output must then be complete, which the checks below verify.
            break
        kills += 1
        assert kills < 40, "never finished"
    assert p.returncode == 0 or out.exists(), p.stderr.read()
    assert kills >= 1
    final = load_features(out)
    assert final.ids == [f.id for f in frames]  # every frame exactly once, in order
    assert_same_features(final, load_features(reference))
    # Resumed, not restarted: each kill loses at most the part in flight.
    computed = (tmp_path / "computed.log").read_text().split()
    assert set(computed) == {f.id for f in frames}
    assert len(computed) <= len(frames) + kills * every


@pytest.mark.parametrize("damage", ["delete a done marker", "truncate a part", "corrupt a part"])
def test_damaged_parts_are_recomputed_not_skipped(tmp_path, damage):
    shard, frames = make_shard(tmp_path, n=30, seed=5)
    reference = tmp_path / "reference.npz"
    assert run_embed(tmp_path, shard, reference, 7, delay=0).wait(timeout=60) == 0
    (tmp_path / "computed.log").unlink()

    # Leave a killed run's checkpoints behind: run with a slow part 4 and kill it while part 4 is computing.
    p = run_embed(tmp_path, shard, tmp_path / "out.npz", 7, delay=0.05)
    [marker3] = _wait_for(lambda: list((tmp_path / "ckpt").glob("*/part_00003.done")))
    p.send_signal(signal.SIGKILL)
    p.wait()
    store = marker3.parent
    part1, marker1 = store / "part_00001.npz", store / "part_00001.done"
    assert part1.exists() and marker1.exists()
    if damage == "delete a done marker":
        marker1.unlink()
    elif damage == "truncate a part":
        part1.write_bytes(part1.read_bytes()[:100])
    else:
        data = bytearray(part1.read_bytes())
        data[-200] ^= 0x55
        part1.write_bytes(bytes(data))
    (tmp_path / "computed.log").unlink()
    assert run_embed(tmp_path, shard, tmp_path / "out.npz", 7, delay=0).wait(timeout=60) == 0
    assert_same_features(load_features(tmp_path / "out.npz"), load_features(reference))
    recomputed = (tmp_path / "computed.log").read_text().split()
    ids = [f.id for f in frames]
    assert set(ids[7:14]) <= set(recomputed)  # the damaged part 1
    assert not set(ids[:7]) & set(recomputed) and not set(ids[14:21]) & set(recomputed)  # intact parts reused


def _wait_for(probe, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_two_tasks_on_one_shard_never_write_the_same_part(tmp_path):
    shard, frames = make_shard(tmp_path, n=40, seed=7)
    a = run_embed(tmp_path, shard, tmp_path / "a.npz", 5, delay=0.01)
    time.sleep(0.4)
    b = run_embed(tmp_path, shard, tmp_path / "b.npz", 5, delay=0.01)
    assert a.wait(timeout=60) == 0 and b.wait(timeout=60) == 0
    assert_same_features(load_features(tmp_path / "a.npz"), load_features(tmp_path / "b.npz"))
    # The second task waited for the first (shard lock), then recomputed what the first had removed; no frame
    # was computed twice at the same time, so the log holds the frames once or twice in whole, ordered runs.
    computed = (tmp_path / "computed.log").read_text().split()
    ids = [f.id for f in frames]
    assert computed == ids or computed == ids + ids
