"""The packed engine with the tiny real-format models equals the per-sequence fp32 reference, frame by frame."""

import random

import numpy as np
import pytest
import torch

from virnucpro.embed.engine import EmbeddingEngine
from virnucpro.embed.reference import reference_features
from virnucpro.embed.run import build_encoders
from virnucpro.models.encoders import DnabertTokenize, EsmTokenize
from virnucpro.models.dnabert import load_dnabert, load_tokenizer
from virnucpro.models.esm2 import load_esm2

from framegen import random_frames


@pytest.fixture(scope="module")
def models(tiny_models):
    esm = load_esm2(tiny_models.esm_pt).float().eval()
    dnabert = load_dnabert(tiny_models.dnabert).float().eval()
    return esm, dnabert, load_tokenizer(tiny_models.dnabert)


def make_frames(n, seed, lo=1, hi=120):
    return random_frames(n, seed, (lo, hi), ids=lambda i: f"s{seed}_{i}_chunk_1F{1 + i % 3}", n_every=7)


def embed(models, frames, budget=None, every=None, workers=0):
    esm, dnabert, tok = models
    every = every or max(1, len(frames))
    parts = [frames[i:i + every] for i in range(0, len(frames), every)]
    got = {}
    encoders = build_encoders({"protein": esm, "nucleotide": dnabert},
                              {"protein": EsmTokenize(), "nucleotide": DnabertTokenize(tok)}, budget)
    with EmbeddingEngine(encoders, "cpu", workers=workers) as engine:
        engine.embed_parts(parts, lambda i, f: got.__setitem__(i, f))
    from virnucpro.io.features import Features

    return Features.concat([got[i] for i in range(len(parts))])


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def frames_and_reference(models):
    frames = make_frames(30, seed=1)
    esm, dnabert, tok = models
    return frames, reference_features(frames, esm, dnabert, tok)


@pytest.mark.parametrize("budget,every", [(None, None), (150, 11), (1, 4), (700, 30)])
def test_engine_equals_reference_for_any_budget_and_grouping(models, frames_and_reference, budget, every):
    frames, ref = frames_and_reference
    got = embed(models, frames, budget, every)
    assert got.ids == ref.ids
    assert rel_err(got["protein"], ref["protein"]) <= 1e-5
    assert rel_err(got["nucleotide"], ref["nucleotide"]) <= 1e-5


def test_engine_independent_of_input_order(models, frames_and_reference):
    frames, ref = frames_and_reference
    order = list(range(len(frames)))
    random.Random(5).shuffle(order)
    got = embed(models, [frames[i] for i in order], budget=200)
    assert got.ids == [ref.ids[i] for i in order]
    assert rel_err(got["protein"], ref["protein"][order]) <= 1e-5
    assert rel_err(got["nucleotide"], ref["nucleotide"][order]) <= 1e-5


def test_long_protein_pools_first_1024_residues_and_runs_alone(models):
    frames = make_frames(3, seed=2, lo=20, hi=40) + make_frames(1, seed=3, lo=1030, hi=1030)
    esm, dnabert, tok = models
    ref = reference_features(frames, esm, dnabert, tok)
    got = embed(models, frames, budget=300)  # the long frame exceeds the budget: a batch of its own
    assert rel_err(got["protein"], ref["protein"]) <= 1e-5
    assert rel_err(got["nucleotide"], ref["nucleotide"]) <= 1e-5


def test_neighbours_do_not_leak(models):
    probe = make_frames(1, seed=9, lo=50, hi=50)
    alone = embed(models, probe)
    crowd = make_frames(12, seed=10)
    mixed = embed(models, crowd[:6] + probe + crowd[6:], budget=10_000)
    assert rel_err(mixed["protein"][6:7], alone["protein"]) <= 1e-5
    assert rel_err(mixed["nucleotide"][6:7], alone["nucleotide"]) <= 1e-5


def test_loader_workers_give_the_same_features(models, frames_and_reference):
    frames, ref = frames_and_reference
    got = embed(models, frames, budget=256, every=13, workers=2)
    assert rel_err(got["protein"], ref["protein"]) <= 1e-5
    assert rel_err(got["nucleotide"], ref["nucleotide"]) <= 1e-5


def test_split_forward_used_for_compile_matches_the_model(models):
    """The GPU path compiles ESM2.compiled_forward; uncompiled it must be the model's own packed forward."""
    esm = models[0]
    from virnucpro.models.esm2 import encode_protein, pack_tokens

    frames = make_frames(5, seed=4)
    tokens, cu, max_len = pack_tokens([encode_protein(f.protein) for f in frames])
    with torch.no_grad():
        want = esm.forward_packed(tokens, cu, max_len)
        got = esm.compiled_forward(compile=False)(tokens, cu, max_len)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_compile_failure_falls_back_to_eager(models, monkeypatch):
    from virnucpro.models.esm2 import encode_protein, pack_tokens

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C compiler (simulated)")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    esm = models[0]
    tokens, cu, max_len = pack_tokens([encode_protein(f.protein) for f in make_frames(4, seed=6)])
    with torch.no_grad():
        got = esm.compiled_forward(compile=True)(tokens, cu, max_len)
        want = esm.forward_packed(tokens, cu, max_len)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
