"""One GPU per task, leased with one `flock` per device.

On the local executor Nextflow gives every task every GPU. Each embed task therefore takes the first device whose
lock file `gpu<id>.lock` in a shared lease directory it can lock without blocking, and keeps the descriptor open
for its whole life. The kernel drops the lock when the process ends, SIGKILL included, so a dead task never keeps
a GPU. With more tasks than GPUs the extra tasks wait here for a free device: that is the dynamic load balancing.

Which devices are candidates (first rule that applies):
  1. ``gpus`` given (``--gpus 2,3``): those physical GPUs, numbered as ``nvidia-smi`` numbers them (PCI bus order).
  2. ``VIRNUCPRO_NUM_GPUS=N``: pseudo-devices 0..N-1, for tests on machines without GPUs.
  3. Inside a SLURM job (``SLURM_JOB_ID`` set): the scheduler already placed the task. The GPUs it granted
     (``CUDA_VISIBLE_DEVICES`` as SLURM set it) are used as given, without a lease and without renumbering; a job
     granted no GPU runs on the CPU (GPUs are hidden so an unallocated one is never touched).
  4. ``CUDA_VISIBLE_DEVICES`` already set: the devices it lists (empty: none). Tasks lease among them.
  5. ``nvidia-smi -L``: every GPU of the machine.
  No candidate: the lease yields None and the caller runs on the CPU.

The chosen device becomes the only visible one (``CUDA_VISIBLE_DEVICES=<id>``, so it is ``cuda:0`` inside the
task); this must happen before CUDA is initialised, which is checked.

Standby (``acquire_gpu(..., standby=True)``): each device also has one standby lock, ``gpu<id>.standby.lock``. A
task that finds every device busy but a standby lock free takes it and is pinned to that device at once, so it
can build its models there and warm up while the active task computes; it then calls ``lease.wait_active()``,
which blocks on that device's active lock and, once it holds it, drops the standby lock for the next task. A
device's active lock goes to its standby first: a task without a slot that finds an active lock free while
another task stands by on that device lets it go. Every other waiting task holds no lock and no model.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from virnucpro.errors import InputError, RetryableError
from virnucpro.options import DEFAULT_LEASE_DIR

log = logging.getLogger(__name__)

# Waiting for a device is the queue when shards outnumber GPUs, so the default is long; Nextflow's `time`
# directive or the user ends it earlier. Past it the task exits 75 and Nextflow may retry it.
DEFAULT_WAIT_SECONDS = 24 * 3600.0
PSEUDO_DEVICES_ENV = "VIRNUCPRO_NUM_GPUS"
# A standby polls its device's active lock this often: the GPU idles at most this long between two tasks.
STANDBY_POLL_SECONDS = 0.02


@dataclass
class _Locks:
    active: int | None = None  # descriptors holding the flocks; closing one releases it
    standby: int | None = None
    deadline: float = 0.0

    def close(self) -> None:
        for name in ("active", "standby"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)


@dataclass
class GpuLease:
    physical_id: str  # the id as the machine's numbering has it ("2"), or a SLURM/UUID id as given
    source: str  # "lease" (flock in lease_dir) or "slurm" (granted by the scheduler)
    lock_path: Path | None
    _locks: _Locks = field(default_factory=_Locks, repr=False, compare=False)

    @property
    def standby(self) -> bool:
        """True while this task holds the device's standby slot but not yet the device."""
        return self._locks.standby is not None and self._locks.active is None

    def wait_active(self) -> float:
        """Block until this standby holds the device's active lock, then free the standby slot; seconds waited."""
        if not self.standby:
            return 0.0
        start = time.monotonic()
        while True:
            fd = _try_lock(self.lock_path)
            if fd is not None:
                break
            if time.monotonic() >= self._locks.deadline:
                raise RetryableError(f"GPU {self.physical_id} still busy after waiting on standby "
                                     f"(lease {self.lock_path})")
            time.sleep(STANDBY_POLL_SECONDS)
        self._locks.active = fd
        os.close(self._locks.standby)  # the next task may stand by now
        self._locks.standby = None
        waited = time.monotonic() - start
        log.info("standby ends: leased GPU %s after %.1f s ready and waiting", self.physical_id, waited)
        return waited


def parse_gpu_list(text: str) -> list[str]:
    """`"2,3"` → `["2", "3"]`; the form of `--gpus` and of CUDA_VISIBLE_DEVICES."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if len(set(ids)) != len(ids):
        raise InputError("--gpus", f"repeated GPU id in {text!r}")
    return ids


def machine_gpus() -> list[str]:
    """Physical GPU indices from `nvidia-smi -L` (PCI bus order); empty when there is no driver or no GPU."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _candidates(gpus: list[int] | list[str] | None) -> tuple[list[str], str]:
    """(candidate ids, how they were found)."""
    pseudo = os.environ.get(PSEUDO_DEVICES_ENV)
    if pseudo is not None:
        try:
            known = [str(i) for i in range(int(pseudo))]
        except ValueError:
            raise InputError(PSEUDO_DEVICES_ENV, f"not a number of devices: {pseudo!r}") from None
    else:
        known = None
    if gpus is not None:
        wanted = [str(g) for g in gpus]
        known = known if known is not None else machine_gpus()
        missing = [g for g in wanted if g not in known]
        if missing:
            raise InputError("--gpus", f"GPU {', '.join(missing)} not on this machine (it has {len(known)}: "
                             f"{', '.join(known) or 'none'})")
        return wanted, "--gpus"
    if known is not None:
        return known, PSEUDO_DEVICES_ENV
    if os.environ.get("SLURM_JOB_ID"):
        return parse_gpu_list(os.environ.get("CUDA_VISIBLE_DEVICES", "")), "slurm"
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return parse_gpu_list(os.environ["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    return machine_gpus(), "nvidia-smi"


def _refuse_if_cuda_initialised() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        # Too late: CUDA read CUDA_VISIBLE_DEVICES when it started, so the lease would not pin anything.
        raise RuntimeError("acquire_gpu() must run before CUDA is initialised in this process")


def _open_lock(path: Path) -> int:
    # Read-only is enough for flock, and lets other users open a lock file this user created.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        os.fchmod(fd, 0o666)
    except PermissionError:
        pass  # created by another user, who already made it shareable
    return fd


def _lock_path(lease_dir: Path, gpu: str, slot: str = "") -> Path:
    """`gpu<id>.lock`, the device's active lock, or with slot="standby" `gpu<id>.standby.lock`."""
    return lease_dir / f"gpu{gpu.replace('/', '_')}{'.' + slot if slot else ''}.lock"  # MIG ids hold slashes


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the lock file `path`, or None when another process holds it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise


def _take_active(lease_dir: Path, candidates: list[str]) -> tuple[str | None, int | None]:
    """The first free device whose standby slot is empty too: a device's own standby goes first."""
    for gpu in candidates:
        fd = _try_lock(_lock_path(lease_dir, gpu))
        if fd is None:
            continue
        probe = _try_lock(_lock_path(lease_dir, gpu, "standby"))
        if probe is None:  # a task stands by for this device: leave it the device
            os.close(fd)
            continue
        os.close(probe)
        return gpu, fd
    return None, None


def _take_standby(lease_dir: Path, candidates: list[str]) -> tuple[str | None, int | None]:
    for gpu in candidates:
        fd = _try_lock(_lock_path(lease_dir, gpu, "standby"))
        if fd is not None:
            return gpu, fd
    return None, None


def _make_lease_dir(lease_dir: Path) -> None:
    if not lease_dir.is_dir():
        lease_dir.mkdir(parents=True, exist_ok=True)
        try:
            lease_dir.chmod(0o1777)  # shared by every user's pipelines on the machine, like /tmp
        except PermissionError:
            pass


@contextmanager
def visible_gpus(value: str) -> Iterator[None]:
    """Set CUDA_VISIBLE_DEVICES for the `with` block (what CUDA and spawned children will see), then restore it."""
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


@contextmanager
def acquire_gpu(
    lease_dir: str | os.PathLike = DEFAULT_LEASE_DIR,
    gpus: list[int] | list[str] | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    standby: bool = False,
) -> Iterator[GpuLease | None]:
    """Hold one GPU for the duration of the `with` block; yields None when the task must run on the CPU.
    `standby=True`: may yield a lease still on standby (``lease.standby``); see the module's docstring."""
    candidates, source = _candidates(gpus)
    if source == "slurm":
        if not candidates:
            log.warning("SLURM granted this job no GPU: running on the CPU, slowly")
            with visible_gpus(""):  # granted none: never touch a GPU the job did not get
                yield None
            return
        log.info("using the GPU(s) SLURM granted: CUDA_VISIBLE_DEVICES=%s", ",".join(candidates))
        yield GpuLease(physical_id=candidates[0], source="slurm", lock_path=None)
        return
    if not candidates:
        log.warning("no GPU found (%s): running on the CPU, slowly", source)
        yield None
        return

    _refuse_if_cuda_initialised()
    lease_dir = Path(lease_dir)
    _make_lease_dir(lease_dir)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    announced = False
    locks = _Locks(deadline=deadline)
    while True:
        gpu, locks.active = _take_active(lease_dir, candidates)
        if locks.active is None and standby:
            gpu, locks.standby = _take_standby(lease_dir, candidates)
        if gpu is not None:
            break
        if time.monotonic() >= deadline:
            raise RetryableError(f"no free GPU among {','.join(candidates)} (leases in {lease_dir}) "
                                 f"after waiting {wait_seconds:g} s")
        if not announced:
            log.info("all GPUs busy (%s): waiting for a free one", ",".join(candidates))
            announced = True
        # Back off so many waiting tasks do not spin; capped at 1 s so a freed GPU sits idle at most ~1 s.
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)

    # --gpus ids and nvidia-smi ids are PCI bus order; keep a user's own order for ids they gave in the variable.
    if source == "CUDA_VISIBLE_DEVICES":
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    else:
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    if locks.active is not None:
        log.info("leased GPU %s (%s, lock %s)", gpu, source, _lock_path(lease_dir, gpu))
    else:
        log.info("GPU %s busy: standing by for it (%s, lock %s)", gpu, source, _lock_path(lease_dir, gpu, "standby"))
    try:
        with visible_gpus(gpu):
            yield GpuLease(physical_id=gpu, source="lease", lock_path=_lock_path(lease_dir, gpu), _locks=locks)
    finally:
        locks.close()  # releases the lock(s)
