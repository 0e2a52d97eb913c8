"""Failure classification [MON-03]: the kind and exit code a failure gets decides whether Nextflow retries."""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.embed.failures import (
    Terminated, classify_exception, classify_exit_status, raise_on_sigterm, report_failure,
)
from virnucpro.errors import InputError, ModelFormatError, RetryableError

ROOT = Path(__file__).resolve().parents[2]


class OutOfMemoryError(RuntimeError):  # the name torch.cuda.OutOfMemoryError has
    pass


class AcceleratorError(RuntimeError):  # the name torch.AcceleratorError has (CUDA errors since torch 2.8)
    pass


@pytest.mark.parametrize("exc, kind, code", [
    (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom", 75),
    (RuntimeError("CUDA error: out of memory"), "oom", 75),
    (RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"), "oom", 75),
    (MemoryError(), "oom", 75),
    (RuntimeError("CUDA error: uncorrectable ECC error encountered"), "hardware", 75),
    (RuntimeError("CUDA error: unspecified launch failure"), "hardware", 75),
    (RuntimeError("CUDA error: device-side assert triggered"), "hardware", 75),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), "hardware", 75),
    (AcceleratorError("CUDA error: something new"), "hardware", 75),
    (RuntimeError("NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus"), "hardware", 75),
    (InputError("x.fa", "line 3: not a FASTA header"), "bad_input", 2),
    (ModelFormatError("esm.pt", "not a fair-esm checkpoint"), "bad_input", 2),
    (RetryableError("no free GPU among 0,1"), "busy", 75),
    (RetryableError("GPU out of memory on a single protein sequence of 9000 tokens, even alone"), "oom", 75),
    (KeyboardInterrupt(), "killed", 130),
    (Terminated(signal.SIGTERM), "killed", 143),
    (ValueError("shapes (3,4) and (5,6) not aligned"), "other", 1),
    (RuntimeError("oxidised widget"), "other", 1),  # "xid" only as a word
])
def test_classify_exception(exc, kind, code):
    failure = classify_exception(exc)
    assert (failure.kind, failure.exit_code) == (kind, code)
    assert failure.log_line().startswith(f"virnucpro: failure kind={kind} exit={code}: ")


@pytest.mark.parametrize("status, kind", [
    (0, "ok"), (2, "bad_input"), (75, "retryable"), (137, "killed"), (143, "killed"), (-9, "killed"),
    (1, "other"), (127, "other"),
])
def test_classify_exit_status(status, kind):
    assert classify_exit_status(status) == kind


def test_retryable_raised_from_an_oom_is_an_oom():
    try:
        try:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        except OutOfMemoryError:
            raise RetryableError("gave up on part 3") from None  # as the engine does: context kept, not shown
    except RetryableError as exc:
        assert classify_exception(exc).kind == "oom"


def test_report_failure_logs_one_classified_line(caplog):
    with caplog.at_level(logging.ERROR):
        failure = report_failure(OutOfMemoryError("CUDA out of memory."))
    assert failure.exit_code == 75
    assert [r.getMessage() for r in caplog.records] == ["virnucpro: failure kind=oom exit=75: CUDA out of memory."]
    assert not caplog.records[0].exc_info  # expected failures carry no traceback noise


@pytest.mark.integration
def test_sigterm_becomes_a_killed_failure_and_finally_blocks_run(tmp_path):
    code = (
        "import sys, time\n"
        "from virnucpro.embed.failures import raise_on_sigterm, classify_exception\n"
        "raise_on_sigterm()\n"
        "try:\n"
        "    print('ready', flush=True); time.sleep(60)\n"
        "except BaseException as exc:\n"
        "    f = classify_exception(exc); print(f.kind, f.exit_code, flush=True); sys.exit(f.exit_code)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.stdout.readline().strip() == "killed 143"
    assert p.wait(timeout=10) == 143
