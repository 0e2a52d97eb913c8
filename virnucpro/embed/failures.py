"""Name what went wrong, for the logs and for Nextflow's errorStrategy [MON-03].

Every embed failure ends in one log line of a fixed form, easy to grep across task logs:

    virnucpro: failure kind=<kind> exit=<code>: <message>

kinds and exit codes:
    oom        GPU (or host) out of memory after the engine's in-process retries   75  retry
    hardware   CUDA/driver fault: ECC, Xid, illegal address, launch failure,        75  retry (maybe elsewhere)
               device-side assert, device lost or busy
    busy       no free GPU lease, shard checkpoints held by another task            75  retry
    bad_input  a user file or model is malformed (InputError)                       2   fix the input
    killed     SIGINT / SIGTERM reached Python (SIGKILL cannot be caught:           128+signal
               it shows only as exit status 137 in Nextflow's trace)
    other      anything else: a bug; the traceback is logged too                    1
"""

from __future__ import annotations

import logging
import re
import signal
from dataclasses import dataclass

from virnucpro.errors import EXIT_BAD_INPUT, EXIT_RETRYABLE, InputError, RetryableError, VirnucproError

OOM, HARDWARE, BUSY, BAD_INPUT, KILLED, OTHER = "oom", "hardware", "busy", "bad_input", "killed", "other"

_OOM_TEXT = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed", "cudaerrormemoryallocation")
_HARDWARE_TEXT = (
    "ecc error", "uncorrectable ecc", "illegal memory access", "illegal instruction",
    "unspecified launch failure", "device-side assert", "misaligned address", "gpu is lost", "fallen off the bus",
    "busy or unavailable", "cuda error", "cudaerror", "cublas_status_execution_failed", "nccl error",
    "cuda driver error", "launch timed out",
)


@dataclass(frozen=True)
class Failure:
    kind: str
    exit_code: int
    message: str

    def log_line(self) -> str:
        return f"virnucpro: failure kind={self.kind} exit={self.exit_code}: {self.message}"


class Terminated(BaseException):
    """SIGTERM turned into an exception, so `finally` blocks run and the log says 'killed'."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def raise_on_sigterm() -> None:
    """Make SIGTERM (Nextflow's kill of a running task) raise Terminated instead of ending Python silently."""

    def handler(signum, _frame):
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".lower()


def classify_exception(exc: BaseException) -> Failure:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return Failure(KILLED, 128 + signal.SIGINT, "interrupted (SIGINT)")
    if isinstance(exc, Terminated):
        return Failure(KILLED, 128 + exc.signum, message)
    if isinstance(exc, InputError):
        return Failure(BAD_INPUT, EXIT_BAD_INPUT, message)
    if isinstance(exc, RetryableError):
        # The engine gives up on an OOM with a RetryableError; the OOM shows in its text or its chain.
        chained = exc.__cause__ or exc.__context__
        oom = any(t in _text(exc) for t in _OOM_TEXT) or (
            chained is not None and classify_exception(chained).kind == OOM)
        return Failure(OOM if oom else BUSY, EXIT_RETRYABLE, message)
    if isinstance(exc, VirnucproError):
        return Failure(OTHER, exc.exit_code, message)
    text = _text(exc)
    # torch.cuda.OutOfMemoryError; checked by name so this module never imports torch.
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or any(t in text for t in _OOM_TEXT):
        return Failure(OOM, EXIT_RETRYABLE, message)
    if name == "AcceleratorError" or any(t in text for t in _HARDWARE_TEXT) or re.search(r"\bxid\b", text):
        return Failure(HARDWARE, EXIT_RETRYABLE, message)
    return Failure(OTHER, 1, f"{name}: {message}")


def classify_exit_status(status: int) -> str:
    """Kind of a finished process from its exit status (a shell status, or subprocess's -signal)."""
    if status == 0:
        return "ok"
    if status == EXIT_BAD_INPUT:
        return BAD_INPUT
    if status == EXIT_RETRYABLE:
        return "retryable"  # oom, hardware or busy: the task log's failure line says which
    if status < 0 or 128 < status <= 128 + 64:
        return KILLED  # 137 = SIGKILL: Nextflow, the user, or the kernel's out-of-memory killer
    return OTHER


def report_failure(exc: BaseException, logger: logging.Logger | None = None) -> Failure:
    """Log the one-line classification (with the traceback when it looks like a bug or a hardware fault)."""
    logger = logger or logging.getLogger("virnucpro")
    failure = classify_exception(exc)
    logger.error(failure.log_line(), exc_info=failure.kind in (OTHER, HARDWARE))
    return failure
