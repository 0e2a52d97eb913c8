"""Scores computed while the shard is still being embedded (embed/scoring.py) are the scores of the whole shard."""

import numpy as np
import pytest
import torch

import virnucpro.classify.predict as predict
from virnucpro.classify.predict import predict_probs
from virnucpro.embed.dedup import FeatureRows
from virnucpro.embed.scoring import RunningScores
from virnucpro.io.features import Features
from virnucpro.models.classifier import MLPClassifier


@pytest.fixture
def classifier():
    torch.manual_seed(2)
    clf = MLPClassifier(40, 16, 2).eval()
    with torch.no_grad():
        clf.bn1.running_mean.normal_()
        clf.bn1.running_var.uniform_(0.5, 2.0)
    return clf


def shard_features(n: int, seed: int = 0) -> Features:
    g = np.random.default_rng(seed)
    return Features([f"f{i}" for i in range(n)], {"nucleotide": g.standard_normal((n, 24), dtype=np.float32),
                                                  "protein": g.standard_normal((n, 16), dtype=np.float32)})


def part(feats: Features, start: int, end: int) -> Features:
    return Features(feats.ids[start:end], {name: a[start:end].copy() for name, a in feats.columns.items()})


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [0, 2, 4, 1, 3], [4, 3, 2, 1, 0]])
def test_scores_as_parts_are_filled_equal_the_whole_shard_scored_at_once(classifier, monkeypatch, order):
    """Parts filled in any order (resumed parts come first, with holes for the ones still to embed): the batches
    scored early and the rest scored at the end give exactly predict_probs on the whole shard."""
    monkeypatch.setattr(predict, "BATCH", 64)
    feats, every = shard_features(530), 110  # parts and batches do not line up; the last batch is short
    bounds = [(s, min(s + every, 530)) for s in range(0, 530, every)]
    rows = FeatureRows(len(feats))
    scores = RunningScores(classifier, rows, threads=1)
    submitted = []
    for k in order:
        rows.put(bounds[k][0], part(feats, *bounds[k]))
        scores.filled()
        submitted.append(len(scores._futures))
    probs = scores.finish()
    assert np.array_equal(probs, predict_probs(classifier, feats))
    assert probs.dtype == np.float32 and probs.shape == (530, 2)
    # Batches start only once every row of them is filled: with part 0 first, one batch of 64 goes at once
    # (rows 0-109 hold one whole batch); with part 4 first, none does until part 0 arrives at the end.
    assert submitted[0] == (1 if order[0] == 0 else 0)
    assert submitted[-1] == 9  # all 9 batches (the short last one too) before finish: their rows are filled


def test_without_overlap_everything_is_scored_at_the_end(classifier):
    feats = shard_features(300, seed=1)
    rows = FeatureRows(len(feats))
    scores = RunningScores(classifier, rows, threads=1, overlap=False)
    rows.put(0, feats)
    scores.filled()
    assert scores._futures == []
    assert np.array_equal(scores.finish(), predict_probs(classifier, feats))


def test_an_empty_shard_has_no_scores(classifier):
    scores = RunningScores(classifier, FeatureRows(0), threads=1)
    scores.filled()
    assert scores.finish().shape == (0, 2)


def test_a_shard_with_unfilled_rows_is_never_scored_whole(classifier):
    feats = shard_features(200, seed=2)
    rows = FeatureRows(len(feats))
    scores = RunningScores(classifier, rows, threads=1)
    rows.put(0, part(feats, 0, 150))
    scores.filled()
    with pytest.raises(RuntimeError, match="50 frames of the shard were never embedded"):
        scores.finish()
    scores.close()


def test_the_thread_setting_is_given_back(classifier):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the scorer sets 1 on its thread: the process's setting must come back as 2
    feats = shard_features(100, seed=3)
    rows = FeatureRows(len(feats))
    scores = RunningScores(classifier, rows, threads=1)
    rows.put(0, feats)
    scores.filled()
    scores.finish()
    try:
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_released_rows_give_their_pages_back_except_those_kept():
    n, width = 1000, 300  # 1,200-byte rows: pages and rows do not line up
    feats = Features([f"f{i}" for i in range(n)], {"c": np.random.default_rng(5).standard_normal((n, width),
                                                                                                 dtype=np.float32)})
    rows = FeatureRows(n)
    rows.keep = {"c": np.zeros(n, dtype=bool)}
    rows.keep["c"][[120, 121, 500]] = True
    rows.put(0, feats)
    rows.release(slice(100, 700))
    a, want = rows.arrays["c"], feats["c"]
    zero = ~a.any(axis=1)
    assert rows.released_bytes > 0 and rows.released_bytes % 4096 == 0
    assert np.array_equal(a[:100], want[:100]) and np.array_equal(a[700:], want[700:])  # outside: untouched
    assert ((a == want) | (a == 0)).all()  # a value is what was put, or given back (a row may straddle pages)
    for r in (120, 121, 500):  # kept rows, and so the pages they touch, are whole
        assert np.array_equal(a[r], want[r])
    assert zero[105:115].all() and zero[600:690].all()  # far from kept rows and the range's ends: given back
    assert zero.sum() * width * 4 <= rows.released_bytes  # only whole released pages read as zeros


def test_scoring_with_release_gives_the_same_scores_and_frees_the_rows(classifier, monkeypatch):
    monkeypatch.setattr(predict, "BATCH", 640)  # 60 and 40 KB a batch: ~15 and ~10 whole pages
    feats = shard_features(6400, seed=6)
    rows = FeatureRows(len(feats))
    rows.keep = {name: np.zeros(6400, dtype=bool) for name in feats.names}
    rows.keep["protein"][[3, 3000]] = True  # sources later frames copy from
    scores = RunningScores(classifier, rows, threads=1, release=True)
    for start in range(0, 6400, 1000):
        rows.put(start, part(feats, start, min(start + 1000, 6400)))
        scores.filled()
    assert np.array_equal(scores.finish(), predict_probs(classifier, feats))
    assert rows.released_bytes > 0.8 * sum(a.nbytes for a in feats.columns.values())
    assert np.array_equal(rows.arrays["protein"][[3, 3000]], feats["protein"][[3, 3000]])
    assert not rows.arrays["protein"][1000:2000].any()  # a scored stretch away from them reads as given back
