"""Resuming an embed from its checkpoint parts, through the real code (embed/run.py) with the tiny models on the CPU
[CKPT-02]: which parts `resume_parts` reuses and which it leaves to do, a run interrupted after some parts that
resumes to exactly the uninterrupted output, and two tasks on one shard. kill -9 of the real `virnucpro embed`
at random points is in tests/integration/test_embed_kill_resume.py.
"""

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from virnucpro.embed import run
from virnucpro.embed.checkpoint import PartStore
from virnucpro.embed.dedup import FeatureRows
from virnucpro.embed.shard import split_frames
from virnucpro.io.features import Features, load_features

from framegen import random_frames

ROOT = Path(__file__).resolve().parents[2]
EVERY = 7


def make_shard(tmp_path, n=30, seed=0):
    frames = random_frames(n, seed, (20, 60), ids=lambda i: f"seq{i}_chunk_1F1")
    [shard] = split_frames(frames, tmp_path / "shards", 10**9)
    return shard, frames


def part_features(ids, seed):
    rng = np.random.default_rng(seed)
    return Features(list(ids), {"nucleotide": rng.standard_normal((len(ids), 3)).astype(np.float32),
                                "protein": rng.standard_normal((len(ids), 5)).astype(np.float32)})


def leftover_parts(ckpt):
    return sorted(p.name for p in Path(ckpt).glob("*/part_*"))


def assert_identical(a, b):
    assert a.ids == b.ids and a.names == b.names
    for name in a.names:
        np.testing.assert_array_equal(a[name], b[name])


# ---------------------------------------------------------------------------------------------- resume_parts
def test_without_checkpoints_every_part_is_to_do():
    ids = [f"f{i}" for i in range(16)]
    resume = run.resume_parts(None, ids, EVERY, FeatureRows(len(ids)))
    assert resume.parts == [(0, 0, 7), (1, 7, 14), (2, 14, 16)]
    assert resume.todo == resume.parts and resume.reused == 0


@pytest.mark.parametrize("damage", [None, "delete its done marker", "truncate it", "corrupt it", "other frames"])
def test_valid_parts_are_loaded_and_damaged_ones_left_to_do(tmp_path, damage):
    ids = [f"f{i}" for i in range(20)]
    key = {"shard_sha256": "s", "models": {"m": "1"}, "settings": {}, "virnucpro": "test"}
    written = {}
    with PartStore(tmp_path, key) as store:
        for index, start, end in store.plan(len(ids), EVERY)[:2]:  # a killed run finished parts 0 and 1
            written[index] = part_features(ids[start:end] if (index, damage) != (1, "other frames")
                                           else [f"x{i}" for i in range(start, end)], index)
            store.write(index, written[index])
        part = store.part_path(1)
        if damage == "delete its done marker":
            store.marker_path(1).unlink()
        elif damage == "truncate it":
            part.write_bytes(part.read_bytes()[:100])
        elif damage == "corrupt it":
            data = bytearray(part.read_bytes())
            data[-200] ^= 0x55
            part.write_bytes(bytes(data))
        rows = FeatureRows(len(ids))
        resume = run.resume_parts(store, ids, EVERY, rows)
    assert resume.todo == ([(2, 14, 20)] if damage is None else [(1, 7, 14), (2, 14, 20)])
    assert resume.reused == (2 if damage is None else 1)
    # A reused part's rows are its file's, exactly; nothing else is marked filled.
    for name in ("nucleotide", "protein"):
        np.testing.assert_array_equal(rows.arrays[name][:7], written[0][name])
    assert rows.filled.tolist() == [True] * 7 + [damage is None] * 7 + [False] * 6
    if damage is not None:
        assert not store.part_path(1).exists()  # a damaged part is removed, never trusted later


# ---------------------------------------------------------------------------------------------- the real run
class Interrupted(Exception):
    pass


def embed(tiny_models, shard, out, ckpt, **kwargs):
    return run.embed_shard(shard, out, esm_model=tiny_models.esm_pt, dnabert_model=tiny_models.dnabert,
                           device="cpu", precision="fp32", checkpoint_dir=ckpt, checkpoint_every=EVERY, **kwargs)


@pytest.mark.slow
def test_a_run_stopped_after_some_parts_resumes_them_and_writes_the_uninterrupted_output(tiny_models, tmp_path,
                                                                                        monkeypatch):
    shard, frames = make_shard(tmp_path)
    want = embed(tiny_models, shard, tmp_path / "want.npz", tmp_path / "ckpt_a")
    assert want["parts"] == 5 and want["parts_reused"] == 0
    assert leftover_parts(tmp_path / "ckpt_a") == []  # a finished shard leaves no checkpoints behind

    real_write = PartStore.write

    def write_two_then_stop(store, index, feats):
        if index == 2:
            raise Interrupted  # as a kill between parts 1 and 2 would
        real_write(store, index, feats)

    monkeypatch.setattr(PartStore, "write", write_two_then_stop)
    with pytest.raises(Interrupted):  # raised on the checkpoint thread, surfaced by the engine as it was raised
        embed(tiny_models, shard, tmp_path / "out.npz", tmp_path / "ckpt")
    assert not (tmp_path / "out.npz").exists()
    assert leftover_parts(tmp_path / "ckpt") == ["part_00000.done", "part_00000.npz", "part_00001.done",
                                                 "part_00001.npz"]
    monkeypatch.setattr(PartStore, "write", real_write)

    summary = embed(tiny_models, shard, tmp_path / "out.npz", tmp_path / "ckpt")
    assert summary["parts_reused"] == 2
    # Resumed, not restarted: only the frames of parts 2.. were embedded again.
    assert summary["models"]["protein"]["sequences"] == len(frames) - 2 * EVERY
    assert summary["models"]["nucleotide"]["sequences"] == len(frames) - 2 * EVERY
    assert_identical(load_features(tmp_path / "out.npz"), load_features(tmp_path / "want.npz"))


@pytest.mark.integration
@pytest.mark.slow
def test_two_tasks_on_one_shard_both_write_the_same_features(tiny_models, tmp_path):
    """The shard lock makes the second task wait for the first; both outputs are whole and identical."""
    shard, _ = make_shard(tmp_path, n=40, seed=7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def start(out):
        return subprocess.Popen(
            [sys.executable, "-m", "virnucpro", "embed", "--frames", str(shard), "--esm-model", str(tiny_models.esm_pt),
             "--dnabert-model", str(tiny_models.dnabert), "--out", str(out), "--device", "cpu", "--precision", "fp32",
             "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "5"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    a, b = start(tmp_path / "a.npz"), start(tmp_path / "b.npz")
    assert a.wait(timeout=300) == 0, a.stderr.read()
    assert b.wait(timeout=300) == 0, b.stderr.read()
    assert_identical(load_features(tmp_path / "a.npz"), load_features(tmp_path / "b.npz"))
    assert leftover_parts(tmp_path / "ckpt") == []
