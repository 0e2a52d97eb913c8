"""The classifier's scores of a shard, computed while the GPU still embeds it.

Each scoring batch (classify/predict.py `batches`, from the first row on) is scored on a thread of its own as soon
as every row of it is filled, so when the last part comes off the GPU only its last batches are left: the run's
last task ends seconds after its last batch instead of after scoring the whole shard (5 s for 340K frames on 16
cores). The batches are the ones `predict_probs` would score, so the numbers are the same bits.

The thread shares the cores with the loader workers and the engine's threads that keep the GPU fed: it takes
what they leave (`spare_threads`). Rows are scored independently, so the thread count changes no result.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from virnucpro.io.features import Features


def spare_threads(workers: int) -> int:
    """Threads for scoring beside a GPU being fed: the cores this process may use minus the loader workers, the
    engine's main and writer threads."""
    from virnucpro.io.forked import cores

    return max(1, cores() - workers - 2)


class RunningScores:
    """Scores of `rows` (embed/dedup.py FeatureRows), batch by batch as they are filled. `filled()` after each
    put; `finish()` scores what is left and returns the probabilities [N, 2] in row order.

    `overlap=False` (the CPU path, where the models already use every core) scores everything in `finish`.
    `release`: nothing else reads the rows once scored (no features kept), so each scored batch's memory is given
    back (FeatureRows.release; the rows duplicates copy from stay)."""

    def __init__(self, classifier, rows, threads: int, overlap: bool = True, release: bool = False):
        import torch

        from virnucpro.classify.predict import batches

        self.classifier = classifier.float().eval()
        self.rows = rows
        self.threads = threads
        self.overlap = overlap
        self.release = release
        self.seconds = 0.0  # spent scoring, on the scoring thread
        self._threads_before = torch.get_num_threads()  # the setting is the process's: `close` gives it back
        self._todo = batches(rows.n)  # in row order; the next one to submit first
        self._futures: list = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="virnucpro-score")

    def filled(self) -> None:
        """Submit every batch whose rows are all filled now."""
        if not self.overlap:
            return
        with self._lock:
            while self._todo and self.rows.filled[self._todo[0]].all():
                self._submit(self._todo.pop(0))

    def finish(self) -> np.ndarray:
        """Every row is filled: score the rest, wait for all, and return the scores."""
        from virnucpro.classify.predict import join_scores

        self.rows.require_filled()
        with self._lock:
            while self._todo:
                self._submit(self._todo.pop(0))
        try:
            return join_scores([f.result() for f in self._futures])
        finally:
            self.close()

    def close(self) -> None:
        import torch

        self._pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._threads_before)

    def _submit(self, rows: slice) -> None:
        if not self._futures:
            from virnucpro.classify.predict import check_fits

            check_fits(self.classifier, self._features())  # the columns exist once the first part is put
        self._futures.append(self._pool.submit(self._score, rows))

    def _features(self) -> Features:
        return Features(self.rows.ids, self.rows.arrays)

    def _score(self, rows: slice) -> np.ndarray:
        import torch

        from virnucpro.classify.predict import score_rows

        t = time.perf_counter()
        torch.set_num_threads(self.threads)
        try:
            scored = score_rows(self.classifier, self._features(), rows)
            if self.release:
                self.rows.release(rows)
            return scored
        finally:
            self.seconds += time.perf_counter() - t
