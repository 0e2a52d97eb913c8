"""Same answers at any scale [TEST-02, TEST-06]: features of the same frames do not depend on the shard size,
the checkpoint interval or the packing budget (FP32, CPU, tiny models, the real shard and embed functions)."""


import numpy as np
import pytest

from virnucpro.embed.run import embed_shard
from virnucpro.embed.shard import split_frames
from virnucpro.io.features import Features, load_features

from framegen import random_frames

N_FRAMES = 24


@pytest.fixture(scope="module")
def frames():
    return random_frames(N_FRAMES, 5, (5, 120), ids=lambda i: f"rec{i // 4}_chunk_{i % 4 + 1}R{i % 3 + 1}")


def embed_sample(frames, tmp, tiny_models, shard_tokens, every, token_budget=None):
    """Shard, embed every shard, concatenate in shard order: what the pipeline does for one sample."""
    outs = []
    for shard in split_frames(frames, tmp / "shards", shard_tokens):
        out = tmp / (shard.stem + ".npz")
        embed_shard(shard, out, esm_model=tiny_models.esm_pt, dnabert_model=tiny_models.dnabert, device="cpu",
                    precision="fp32", checkpoint_dir=tmp / "ckpt", checkpoint_every=every,
                    token_budget=token_budget)
        outs.append(load_features(out))
    return Features.concat(outs), len(outs)


@pytest.fixture(scope="module")
def whole(frames, tiny_models, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CUDA_VISIBLE_DEVICES", "")
    try:
        feats, n = embed_sample(frames, tmp_path_factory.mktemp("whole"), tiny_models, 10**9, 10**6)
    finally:
        mp.undo()
    assert n == 1
    return feats


@pytest.mark.slow
@pytest.mark.parametrize("shard_tokens, every, token_budget, min_shards", [
    (1, 10_000, None, N_FRAMES),  # one frame per shard
    (800, 10_000, None, 3),  # a few small shards
    (10**9, 1, None, 1),  # whole shard, a checkpoint part per frame
    (10**9, 7, None, 1),  # whole shard, parts of 7
    (2000, 5, 256, 2),  # small shards, parts and a tight packing budget (other batch composition)
])
def test_same_features_at_any_scale(frames, whole, tiny_models, tmp_path, monkeypatch,
                                    shard_tokens, every, token_budget, min_shards):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    feats, n_shards = embed_sample(frames, tmp_path, tiny_models, shard_tokens, every, token_budget)
    assert n_shards >= min_shards
    assert feats.ids == [f.id for f in frames]
    # FP32: within 1e-5. Not bit-identical: a different packing changes the GEMM shapes, hence the summation
    # order (measured up to ~1e-6 here); identical parts give identical bits
    # (tests/integration/test_embed_kill_resume.py).
    for field in ("nucleotide", "protein"):
        got, want = feats[field], whole[field]
        print(f"{field}: shard_tokens={shard_tokens} every={every} budget={token_budget}: "
              f"max |diff| {np.abs(got - want).max():.2e}")
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
