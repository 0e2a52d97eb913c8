"""GPU leases with pseudo-devices on the CPU: concurrency, no double booking, release on SIGKILL, subsets."""

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from virnucpro.embed.lease import acquire_gpu, parse_gpu_list
from virnucpro.errors import InputError, RetryableError

ROOT = Path(__file__).resolve().parents[2]

# A task: lease a device, record what it saw, hold it for HOLD seconds, record the release.
HOLDER = r"""
import json, os, sys, time
from virnucpro.embed.lease import acquire_gpu
lease_dir, log, hold, gpus = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
gpus = [int(g) for g in gpus.split(",")] if gpus else None
with acquire_gpu(lease_dir, gpus=gpus, wait_seconds=60) as lease:
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    with open(log, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "gpu": lease.physical_id, "cvd": seen,
                             "order": os.environ.get("CUDA_DEVICE_ORDER"), "t": time.time(), "ev": "start"}) + "\n")
        fh.flush()
    time.sleep(hold)
    with open(log, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "gpu": lease.physical_id, "t": time.time(), "ev": "end"}) + "\n")
"""


def _spawn(tmp_path, n_devices, hold, gpus=""):
    env = {**os.environ, "VIRNUCPRO_NUM_GPUS": str(n_devices), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "leases"), str(tmp_path / "log.jsonl"),
                             str(hold), gpus], env=env)


def _events(tmp_path):
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def _max_overlap_per_gpu_and_total(events):
    """(True if some device was held twice at once, highest number of devices held at once)."""
    held, double, peak = {}, False, 0
    for e in sorted(events, key=lambda e: (e["t"], e["ev"] == "start")):  # ends before starts at equal times
        if e["ev"] == "start":
            double |= e["gpu"] in held
            held[e["gpu"]] = e["pid"]
        else:
            assert held.pop(e["gpu"]) == e["pid"]
        peak = max(peak, len(held))
    return double, peak


@pytest.mark.integration
@pytest.mark.parametrize("n_devices", [1, 2, 4, 8])
def test_n_devices_run_n_tasks_at_once_and_never_two_on_one(tmp_path, n_devices):
    # Held long enough that all N holders overlap even when python start-up is slow on a busy machine.
    procs = [_spawn(tmp_path, n_devices, hold=0.5 + 0.25 * n_devices) for _ in range(2 * n_devices + 1)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    events = _events(tmp_path)
    starts = [e for e in events if e["ev"] == "start"]
    assert len(starts) == len(procs)
    double, peak = _max_overlap_per_gpu_and_total(events)
    assert not double
    assert peak == n_devices  # all devices busy at once, and never more tasks than devices
    assert {e["gpu"] for e in starts} == {str(i) for i in range(n_devices)}
    # Each task sees only its own device, numbered the machine's way.
    assert all(e["cvd"] == e["gpu"] and e["order"] == "PCI_BUS_ID" for e in starts)


@pytest.mark.integration
def test_subset_means_physical_ids(tmp_path):
    procs = [_spawn(tmp_path, 4, hold=0.4, gpus="2,3") for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    events = _events(tmp_path)
    double, peak = _max_overlap_per_gpu_and_total(events)
    assert not double and peak == 2
    assert {e["cvd"] for e in events if e["ev"] == "start"} == {"2", "3"}


@pytest.mark.integration
def test_lease_released_when_holder_is_killed(tmp_path):
    holder = _spawn(tmp_path, 1, hold=300)
    deadline = time.time() + 30
    while not (tmp_path / "log.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "log.jsonl").exists(), "holder never got the lease"
    waiter = _spawn(tmp_path, 1, hold=0)
    time.sleep(1.0)
    assert waiter.poll() is None  # still waiting: the only device is held
    assert len([e for e in _events(tmp_path) if e["ev"] == "start"]) == 1
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t_kill = time.time()
    assert waiter.wait(timeout=30) == 0
    starts = [e for e in _events(tmp_path) if e["ev"] == "start"]
    assert len(starts) == 2 and starts[1]["pid"] == waiter.pid
    assert starts[1]["t"] - t_kill < 6  # picked up within one backoff step


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "SLURM_JOB_ID", "VIRNUCPRO_NUM_GPUS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_all_busy_past_the_wait_is_retryable(tmp_path, clean_env):
    clean_env.setenv("VIRNUCPRO_NUM_GPUS", "2")
    with acquire_gpu(tmp_path, wait_seconds=0) as a, acquire_gpu(tmp_path, wait_seconds=0) as b:
        assert {a.physical_id, b.physical_id} == {"0", "1"}
        t0 = time.monotonic()
        with pytest.raises(RetryableError) as err:
            with acquire_gpu(tmp_path, wait_seconds=0.5):
                pass
        assert 0.4 < time.monotonic() - t0 < 5
        assert err.value.exit_code == 75 and "no free GPU" in str(err.value)
    with acquire_gpu(tmp_path, wait_seconds=0) as again:  # released on leaving the block
        assert again.physical_id == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # restored


def test_no_device_means_cpu(tmp_path, clean_env):
    clean_env.setenv("VIRNUCPRO_NUM_GPUS", "0")
    with acquire_gpu(tmp_path) as lease:
        assert lease is None
    clean_env.delenv("VIRNUCPRO_NUM_GPUS")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")
    with acquire_gpu(tmp_path) as lease:
        assert lease is None


def test_gpus_not_on_the_machine_is_bad_input(tmp_path, clean_env):
    clean_env.setenv("VIRNUCPRO_NUM_GPUS", "2")
    with pytest.raises(InputError, match="GPU 2 not on this machine"):
        with acquire_gpu(tmp_path, gpus=[1, 2]):
            pass
    with pytest.raises(InputError, match="repeated"):
        parse_gpu_list("1,1")


def test_visible_devices_from_the_environment_are_the_candidates(tmp_path, clean_env):
    import fcntl

    clean_env.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    with acquire_gpu(tmp_path, wait_seconds=0) as a:
        assert a.physical_id == "5" and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"  # restored
    # Another task holds device 5 (a separate open file description, as another process would have).
    with open(tmp_path / "gpu5.lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with acquire_gpu(tmp_path, wait_seconds=0) as b:
            assert b.physical_id == "7" and os.environ["CUDA_VISIBLE_DEVICES"] == "7"


def test_slurm_grant_is_used_as_given(tmp_path, clean_env):
    clean_env.setenv("SLURM_JOB_ID", "42")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "1")
    with acquire_gpu(tmp_path / "leases") as a, acquire_gpu(tmp_path / "leases") as b:
        # No lease between SLURM jobs: the scheduler already made the grant exclusive.
        assert a.source == b.source == "slurm" and a.physical_id == b.physical_id == "1"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not (tmp_path / "leases").exists()
    clean_env.delenv("CUDA_VISIBLE_DEVICES")
    with acquire_gpu(tmp_path / "leases") as lease:
        assert lease is None and os.environ["CUDA_VISIBLE_DEVICES"] == ""  # granted none: hide the GPUs


def test_refuses_after_cuda_initialisation(tmp_path, clean_env):
    clean_env.setenv("VIRNUCPRO_NUM_GPUS", "1")
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    clean_env.setitem(sys.modules, "torch", fake_torch)
    with pytest.raises(RuntimeError, match="before CUDA is initialised"):
        with acquire_gpu(tmp_path):
            pass
