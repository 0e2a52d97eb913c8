"""kill -9 of the real `virnucpro embed` (tiny models, CPU, FP32) at random points; the re-run resumes from its
checkpoints and writes exactly the uninterrupted output, every frame once [CKPT-02]."""

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

from framegen import random_frames

ROOT = Path(__file__).resolve().parents[2]
EVERY = 7


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    frames = random_frames(60, 11, (20, 160), ids=lambda i: f"seq{i}_chunk_{1 + i % 3}F{1 + i % 3}")
    [path] = split_frames(frames, tmp_path_factory.mktemp("shard"), 10**9)
    return path, frames


def embed(tiny_models, shard_path, out, ckpt, every=EVERY):
    cmd = [sys.executable, "-m", "virnucpro", "embed", "--frames", str(shard_path),
           "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
           "--out", str(out), "--summary", str(out) + ".json", "--device", "cpu", "--precision", "fp32",
           "--checkpoint-dir", str(ckpt), "--checkpoint-every", str(every)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tiny_models, shard, tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    t0 = time.monotonic()
    p = embed(tiny_models, shard[0], d / "ref.npz", d / "ckpt")
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return load_features(d / "ref.npz"), time.monotonic() - t0


def assert_identical(a, b):
    assert a.ids == b.ids
    np.testing.assert_array_equal(a["nucleotide"], b["nucleotide"])
    np.testing.assert_array_equal(a["protein"], b["protein"])


def done_parts(ckpt):
    return sorted(p.name for p in Path(ckpt).glob("*/part_*.done"))


def wait_for_parts(p, ckpt, k, timeout=300):
    deadline = time.time() + timeout
    while len(done_parts(ckpt)) < k and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_of_embed_then_rerun_matches_uninterrupted(tiny_models, shard, reference, tmp_path, seed):
    ref, _ = reference
    n_parts = -(-len(shard[1]) // EVERY)
    rng = random.Random(seed)
    out, ckpt = tmp_path / "out.npz", tmp_path / "ckpt"
    # Kill points follow the run's progress, not the clock (start-up time varies with machine load): during
    # start-up or after a random number of finished parts, plus a random delay that lands anywhere in a part.
    # Targets stop three parts short of the end and the extra delay is short, so the kill lands before the run
    # can finish and write its output (a run that did finish first is not counted as killed).
    targets = sorted(rng.sample(range(0, n_parts - 3), 3))
    kills, parts_at_kill = 0, []
    for target in targets:
        before = len(done_parts(ckpt))
        p = embed(tiny_models, shard[0], out, ckpt)
        wait_for_parts(p, ckpt, target)  # a target already reached: killed while starting up again
        time.sleep(rng.uniform(0.0, 0.05))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        if p.wait() == 0:  # it finished between the poll and the signal
            break
        kills += 1
        parts_at_kill.append(len(done_parts(ckpt)))
        assert parts_at_kill[-1] >= before  # finished parts are never lost
        assert not out.exists()  # no final output from a killed run
    p = embed(tiny_models, shard[0], out, ckpt)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    assert kills >= 2 and parts_at_kill[-1] > 0
    final = load_features(out)
    assert final.ids == [f.id for f in shard[1]]  # every frame exactly once, in input order
    assert_identical(final, ref)
    summary = json.loads(Path(str(out) + ".json").read_text())
    assert summary["parts"] == n_parts
    # The finishing run reused every part the killed runs had completed.
    assert summary["parts_reused"] == parts_at_kill[-1]
    assert not done_parts(ckpt)  # a finished shard removes its checkpoints
    print(f"seed {seed}: {kills} kill(s), finished parts at each kill: {parts_at_kill} of {n_parts}")


@pytest.mark.slow
def test_damaged_parts_are_recomputed(tiny_models, shard, reference, tmp_path):
    ref, _ = reference
    out, ckpt = tmp_path / "out.npz", tmp_path / "ckpt"
    p = embed(tiny_models, shard[0], out, ckpt)
    wait_for_parts(p, ckpt, 4)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_done = len(done_parts(ckpt))
    assert 4 <= n_done < -(-len(shard[1]) // EVERY), "kill missed the middle of the shard"
    [store] = {m.parent for m in ckpt.glob("*/part_*.done")}
    (store / "part_00000.done").unlink()  # a deleted done marker
    part = store / "part_00001.npz"  # a truncated part
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 3])
    part = store / "part_00002.npz"  # one flipped bit inside the arrays: same size, still loadable
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    p = embed(tiny_models, shard[0], out, ckpt)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    assert_identical(load_features(out), ref)
    summary = json.loads(Path(str(out) + ".json").read_text())
    assert summary["parts_reused"] == n_done - 3  # the damaged parts were recomputed, the others reused
