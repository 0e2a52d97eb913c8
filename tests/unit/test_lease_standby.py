"""The standby slot on one pseudo-GPU: the second task stands by and starts only once the first lets go (also
when it is killed), a third waits holding no slot, and an embed task on standby does its work up front."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

# A task: take a slot (active or standby), record which, wait for the device if on standby, hold it, record.
TASK = r"""
import json, os, sys, time
from virnucpro.embed.lease import acquire_gpu
lease_dir, log, name, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

def note(ev, **kw):
    with open(log, "a") as fh:
        fh.write(json.dumps({"name": name, "ev": ev, "t": time.time(), **kw}) + "\n")

with acquire_gpu(lease_dir, wait_seconds=60, standby=True) as lease:
    note("slot", standby=lease.standby, cvd=os.environ.get("CUDA_VISIBLE_DEVICES"))
    if lease.standby:
        time.sleep(0.3)  # stands for building the models
        note("ready")
        lease.wait_active()
    note("start", standby=lease.standby)
    if hold < 0:  # hold until another task stands by for this device, then -hold seconds more
        import fcntl
        fd = os.open(os.path.join(lease_dir, "gpu0.standby.lock"), os.O_RDONLY | os.O_CREAT, 0o666)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                time.sleep(0.02)
            except OSError:
                break
        hold = -hold
    time.sleep(hold)
    note("end")
"""


def _env(n_devices=1):
    env = {**os.environ, "VIRNUCPRO_NUM_GPUS": str(n_devices),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return env


def _task(tmp_path, name, hold):
    return subprocess.Popen([sys.executable, "-c", TASK, str(tmp_path / "leases"), str(tmp_path / "log.jsonl"), name,
                             str(hold)], env=_env())


def _events(tmp_path):
    path = tmp_path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(tmp_path, name, ev, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in _events(tmp_path):
            if e["name"] == name and e["ev"] == ev:
                return e
        time.sleep(0.05)
    raise AssertionError(f"{name} never logged {ev}: {_events(tmp_path)}")


def _active_and_standby(tmp_path, a_holds, b_holds):
    """Task a holding the pseudo-GPU for `a_holds` s, then task b ready on standby behind it."""
    a = _task(tmp_path, "a", a_holds)
    _wait_for(tmp_path, "a", "start")
    b = _task(tmp_path, "b", b_holds)
    _wait_for(tmp_path, "b", "ready")
    return a, b


def _first(events, name, ev):
    return next(e for e in events if e["name"] == name and e["ev"] == ev)


@pytest.mark.integration
def test_second_task_stands_by_and_a_third_waits_without_a_slot(tmp_path):
    a, b = _active_and_standby(tmp_path, 2.0, 1.0)
    c = _task(tmp_path, "c", 0.2)
    for p in (a, b, c):
        assert p.wait(timeout=60) == 0
    ev = _events(tmp_path)
    assert _first(ev, "a", "slot")["standby"] is False
    b_slot = _first(ev, "b", "slot")
    assert b_slot["standby"] is True and b_slot["cvd"] == "0"  # pinned to the busy device at once
    assert _first(ev, "b", "ready")["t"] < _first(ev, "a", "end")["t"]  # its set-up overlapped a's work
    assert _first(ev, "b", "start")["t"] >= _first(ev, "a", "end")["t"]  # but it computed only after a let go
    assert _first(ev, "b", "start")["standby"] is False
    # c found the device busy and the standby slot taken: it got a slot only once b left standby.
    assert _first(ev, "c", "slot")["t"] >= _first(ev, "b", "start")["t"]
    assert _first(ev, "c", "start")["t"] >= _first(ev, "b", "end")["t"]


@pytest.mark.integration
def test_killing_the_active_task_lets_the_standby_start(tmp_path):
    a, b = _active_and_standby(tmp_path, 60.0, 0.1)
    time.sleep(0.3)
    assert not any(e["name"] == "b" and e["ev"] == "start" for e in _events(tmp_path))
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=10)
    t_kill = time.time()
    assert b.wait(timeout=30) == 0
    assert _first(_events(tmp_path), "b", "start")["t"] - t_kill < 1.0  # polls the active lock every 20 ms


@pytest.mark.integration
def test_a_killed_standby_frees_its_slot(tmp_path):
    a, b = _active_and_standby(tmp_path, 3.0, 0.1)
    b.send_signal(signal.SIGKILL)
    b.wait(timeout=10)
    c = _task(tmp_path, "c", 0.1)
    assert _wait_for(tmp_path, "c", "slot")["standby"] is True  # the slot b held is free again
    assert a.wait(timeout=30) == 0 and c.wait(timeout=30) == 0


@pytest.mark.integration
def test_embed_task_on_standby_builds_first_and_records_the_wait(tiny_models, tmp_path, monkeypatch):
    """An embed task on a busy pseudo-GPU stands by: models, engine and warm-up happen while the holder still
    holds the device; its summary says how long it was ready, and its features equal a plain CPU run's."""
    from virnucpro.embed import run
    from virnucpro.io.features import load_features

    shard = tmp_path / "shard.tsv"
    from virnucpro.io.frames import Frame, write_frames_tsv

    write_frames_tsv(shard, [Frame(f"r{i}_chunk_1F1", "ACGTTGCA" * (i + 2), "MKV" * (i + 1)) for i in range(5)])
    import torch  # noqa: F401 - imported before the holder starts, so its seconds go to the standby's work
    import virnucpro.embed.engine  # noqa: F401
    import virnucpro.models.dnabert  # noqa: F401

    # Lets go 12 s after the embed task took the standby slot: building and warming up the tiny models takes ~1 s
    # alone, several on a loaded 2-core machine, and the test needs the task ready before the holder leaves.
    holder = _task(tmp_path, "holder", -12.0)
    _wait_for(tmp_path, "holder", "start")
    monkeypatch.setenv("VIRNUCPRO_NUM_GPUS", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    summary = run.embed_shard(shard, tmp_path / "standby.npz", esm_model=tiny_models.esm_pt,
                              dnabert_model=tiny_models.dnabert, precision="fp32", lease_dir=tmp_path / "leases",
                              workers=0)
    assert holder.wait(timeout=30) == 0
    held_until = _first(_events(tmp_path), "holder", "end")["t"]
    assert summary["standby_seconds"] > 0  # ready before the holder let go
    assert summary["active_at_epoch"] >= held_until - 0.05
    assert summary["lease_wait_seconds"] >= summary["standby_seconds"]  # the wait on standby is lease wait
    assert summary["lease_to_first_batch_seconds"] is not None and summary["lease_to_first_batch_seconds"] >= 0
    assert summary["wall_seconds"] < summary["total_seconds"] - summary["standby_seconds"]  # GPU time only
    plain = run.embed_shard(shard, tmp_path / "plain.npz", esm_model=tiny_models.esm_pt,
                            dnabert_model=tiny_models.dnabert, device="cpu", precision="fp32", workers=0)
    assert plain["standby_seconds"] == 0.0
    a, b = load_features(tmp_path / "standby.npz"), load_features(tmp_path / "plain.npz")
    assert a.ids == b.ids
    assert a.names == b.names
    for name in a.names:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True), (None, True)])
def test_standby_can_be_switched_off(monkeypatch, value, expected):
    from virnucpro.embed import standby

    if value is None:
        monkeypatch.delenv(standby.STANDBY_ENV, raising=False)
    else:
        monkeypatch.setenv(standby.STANDBY_ENV, value)
    assert standby.enabled() is expected
