"""One function run in a forked child process beside the caller, its value (pickled) or its error raised again in
the caller.

For work that is mostly Python (so a thread would not run beside the caller): readers whose value is small next to
the work of making it (a file's parsed columns), and output writers that only need what the caller already holds:
the fork shares it without copying or pickling. The child's exception comes back whole: a VirnucproError keeps its
class and its one-line message (path and problem), anything else comes back as a RuntimeError carrying the child's
traceback. ``forked_calls`` runs several calls at once, one child each, and gives back their values in order, or
raises the error of the first call that failed (the one a loop over the calls would meet). Each child's wall and
CPU seconds are logged at debug level (the critical path of a step that forks).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import time
import traceback

log = logging.getLogger(__name__)


class Forked:
    """`Forked(fn, *args)` starts `fn(*args)` in a child; `wait()` returns its value once it ended, or raises its
    error. Use as a context manager so that a caller leaving early (its own error) stops the child."""

    def __init__(self, fn, *args):
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._name = getattr(fn, "__qualname__", repr(fn))
        self._process = ctx.Process(target=_run, args=(send, fn, args), daemon=True)
        self._process.start()
        send.close()

    def wait(self):
        try:
            outcome = self._receive.recv()
        except EOFError:  # the child died before reporting (killed, out of memory)
            outcome = None
        self._process.join()
        if outcome is None and self._process.exitcode != 0:
            raise RuntimeError(f"a child process ended with status {self._process.exitcode} without a report")
        if outcome is not None and outcome[0] == "error":
            raise _rebuilt(*outcome[1:])
        if outcome is None:
            return None
        log.debug("%s: %.2f s in a child, %.2f s CPU", self._name, *outcome[2:])
        return outcome[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._receive.close()


def _run(send, fn, args) -> None:
    try:
        start = time.perf_counter()
        value = fn(*args)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        send.send(("ok", value, time.perf_counter() - start, usage.ru_utime + usage.ru_stime))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        from virnucpro.errors import VirnucproError

        if isinstance(exc, VirnucproError):
            send.send(("error", type(exc), dict(vars(exc)), str(exc), None))
        else:
            send.send(("error", None, None, None, traceback.format_exc()))
    finally:
        send.close()
        os._exit(0)  # no atexit handlers or buffered output of the parent's run twice


def forked_calls(calls) -> list:
    """``[fn(*args) for fn, *args in calls]``, each call in its own child, all at once."""
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(Forked(*call)) for call in calls]
        return [child.wait() for child in children]


def cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the host's count)."""
    return len(os.sched_getaffinity(0))


def _rebuilt(cls, attributes, message, child_traceback) -> BaseException:
    if cls is None:
        return RuntimeError(f"in a child process:\n{child_traceback}")
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    vars(exc).update(attributes)
    return exc
