"""torch.compile at the call site, with a way back: a compiled function that falls back to eager if compiling
fails on this machine (Triton needs a C compiler at run time, which some GPU nodes lack)."""

from __future__ import annotations

import logging
import time

import torch

log = logging.getLogger("virnucpro.embed")


class CompiledOrEager:
    """`torch.compile(fn, dynamic=True)`, or `fn` itself once compiling has failed. Errors after a successful
    first call are real and raise. `first_call_seconds`: tracing + Inductor/Triton compile (or cache load) + one
    launch, for the task summary."""

    def __init__(self, fn, label: str):
        self.fn = fn
        self.label = label  # the model, for the fallback warning
        self.compiled = torch.compile(fn, dynamic=True)
        self.works: bool | None = None
        self.first_call_seconds = 0.0

    def __call__(self, *args):
        if self.works is False:
            return self.fn(*args)
        if self.works is None:
            start = time.perf_counter()
            try:
                return self._call(*args)
            finally:
                self.first_call_seconds = time.perf_counter() - start
        return self._call(*args)

    def _call(self, *args):
        try:
            out = self.compiled(*args)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager path is the same arithmetic
            if self.works:
                raise
            log.warning("torch.compile failed (%s: %s); running %s eagerly (slower, same results)",
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", self.label)
            self.works = False
            return self.fn(*args)
        self.works = True
        return out
