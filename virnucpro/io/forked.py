"""One function run in a forked child process beside the caller, its error (if any) raised again in the caller.

For output writers that are mostly Python (so a thread would not run beside the caller) and only need what the
caller already holds: the fork shares it without copying or pickling. The child's exception comes back whole: a
VirnucproError keeps its class and its one-line message (path and problem), anything else comes back as a
RuntimeError carrying the child's traceback.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback


class Forked:
    """`Forked(fn, *args)` starts `fn(*args)` in a child; `wait()` returns once it ended, raising its error.
    Use as a context manager so that a caller leaving early (its own error) stops the child."""

    def __init__(self, fn, *args):
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_run, args=(send, fn, args), daemon=True)
        self._process.start()
        send.close()

    def wait(self) -> None:
        try:
            outcome = self._receive.recv()
        except EOFError:  # the child died before reporting (killed, out of memory)
            outcome = None
        self._process.join()
        if outcome is None and self._process.exitcode != 0:
            raise RuntimeError(f"a child process ended with status {self._process.exitcode} without a report")
        if outcome is not None and outcome[0] == "error":
            raise _rebuilt(*outcome[1:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._receive.close()


def _run(send, fn, args) -> None:
    try:
        fn(*args)
        send.send(("ok",))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        from virnucpro.errors import VirnucproError

        if isinstance(exc, VirnucproError):
            send.send(("error", type(exc), dict(vars(exc)), str(exc), None))
        else:
            send.send(("error", None, None, None, traceback.format_exc()))
    finally:
        send.close()
        os._exit(0)  # no atexit handlers or buffered output of the parent's run twice


def _rebuilt(cls, attributes, message, child_traceback) -> BaseException:
    if cls is None:
        return RuntimeError(f"in a child process:\n{child_traceback}")
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    vars(exc).update(attributes)
    return exc
