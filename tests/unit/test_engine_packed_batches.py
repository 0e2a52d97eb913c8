"""The engine against small stand-in encoders whose per-sequence reference is written independently here.

Both stand-ins run their packed forward through virnucpro.models.attention (varlen and ALiBi paths) with
positions restarting per sequence, so these tests catch cross-sequence attention, wrong positions, wrong pooling
windows and lost or reordered rows, whatever the budget, order or grouping.
"""

import math
import os

import numpy as np
import pytest
import torch

from virnucpro.embed import packing
from virnucpro.embed.engine import EmbeddingEngine, Encoder
from virnucpro.models import attention

from framegen import random_frames

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


class ProteinTokens:
    def __call__(self, seqs):
        return [np.array([0] + [4 + ALPHABET.index(c) for c in s] + [2], np.int32) for s in seqs]


class DnaTokens:
    def __call__(self, seqs):
        return [np.array([1] + [5 + "ACGT".index(c) for c in s] + [2], np.int32) for s in seqs]


class StandIn(torch.nn.Module):
    """Embedding + learned positions + one attention layer + MLP + final LayerNorm."""

    def __init__(self, vocab, dim, heads, use_alibi, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.heads, self.use_alibi = heads, use_alibi
        self.embed = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(2048, dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, dim)
        self.fc = torch.nn.Linear(dim, 2 * dim)
        self.fc2 = torch.nn.Linear(2 * dim, dim)
        self.norm = torch.nn.LayerNorm(dim)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.register_buffer("slopes", torch.tensor(attention.alibi_slopes(heads)))

    def _positions(self, cu, total):
        token = torch.arange(total)
        seq = torch.searchsorted(cu[1:].long(), token, right=True)
        return token - cu.long()[seq]

    def forward_packed(self, tokens, cu_seqlens, max_seqlen):
        t = tokens.shape[0]
        h = self.embed(tokens) + self.pos(self._positions(cu_seqlens, t))
        q, k, v = self.qkv(h).view(t, 3, self.heads, -1).unbind(1)
        if self.use_alibi:
            a = attention.alibi_attention(q, k, v, cu_seqlens, max_seqlen, self.slopes)
        else:
            a = attention.varlen_attention(q, k, v, cu_seqlens, max_seqlen)
        h = h + self.out(a.reshape(t, -1))
        h = h + self.fc2(torch.nn.functional.gelu(self.fc(h)))
        return self.norm(h)

    def forward_one(self, tokens):
        """Independent per-sequence reference: explicit softmax attention, no masks at all."""
        n = tokens.shape[0]
        h = self.embed(tokens) + self.pos(torch.arange(n))
        q, k, v = self.qkv(h).view(n, 3, self.heads, -1).unbind(1)
        scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(q.shape[-1])
        if self.use_alibi:
            pos = torch.arange(n)
            scores = scores - self.slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()
        a = torch.einsum("hij,jhd->ihd", scores.softmax(-1), v)
        h = h + self.out(a.reshape(n, -1))
        h = h + self.fc2(torch.nn.functional.gelu(self.fc(h)))
        return self.norm(h)


def make_frames(n, seed=0, max_aa=60):
    return random_frames(n, seed, (1, max_aa), ids=lambda i: f"r{i}_chunk_1F1")


def encoders(budget=None):
    torch.manual_seed(0)
    esm = StandIn(30, 16, 4, use_alibi=False, seed=1).eval()
    dna = StandIn(12, 12, 3, use_alibi=True, seed=2).eval()
    return [
        Encoder("protein", esm, ProteinTokens(), packing.POOL_RESIDUES, budget),
        Encoder("nucleotide", dna, DnaTokens(), packing.POOL_ALL, budget),
    ]


def reference(frames, encs):
    out = {}
    with torch.no_grad():
        for enc in encs:
            rows = []
            for f in frames:
                tok = torch.from_numpy(enc.tokenize([getattr(f, enc.field)])[0]).long()
                h = enc.model.forward_one(tok)
                if enc.pool == packing.POOL_RESIDUES:
                    h = h[1: min(1024, len(tok) - 2) + 1]
                rows.append(h.mean(0).numpy())
            out[enc.field] = np.stack(rows)
    return out


def run_engine(frames, encs, parts=1, workers=0, shuffle_parts=False):
    got = {}
    every = max(1, math.ceil(len(frames) / parts))
    chunks = [frames[i:i + every] for i in range(0, len(frames), every)]
    with EmbeddingEngine(encs, "cpu", workers=workers) as engine:
        engine.embed_parts(chunks, lambda i, feats: got.__setitem__(i, feats))
    assert sorted(got) == list(range(len(chunks)))
    return got, chunks


def assert_close(a, b, rtol=1e-5):
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)
    assert err <= rtol, err


@pytest.mark.parametrize("budget,parts", [(None, 1), (64, 1), (1, 3), (300, 4)])
def test_engine_equals_per_sequence_reference(budget, parts):
    frames = make_frames(37, seed=budget or 0)
    encs = encoders(budget)
    ref = reference(frames, encs)
    got, chunks = run_engine(frames, encs, parts=parts)
    feats = [got[i] for i in range(len(chunks))]
    assert [i for f in feats for i in f.ids] == [f.id for f in frames]
    assert_close(np.concatenate([f["protein"] for f in feats]), ref["protein"])
    assert_close(np.concatenate([f["nucleotide"] for f in feats]), ref["nucleotide"])


def test_features_do_not_depend_on_neighbours():
    """Cross-contamination: a frame's features are the same alone, among short or among long neighbours."""
    encs = encoders(400)
    probe = make_frames(1, seed=99)[0]
    alone, _ = run_engine([probe], encs)
    for seed in (1, 2):
        others = make_frames(20, seed=seed, max_aa=40 * seed)
        got, _ = run_engine(others[:10] + [probe] + others[10:], encs)
        assert_close(got[0]["protein"][10], alone[0]["protein"][0])
        assert_close(got[0]["nucleotide"][10], alone[0]["nucleotide"][0])


def test_cross_sequence_attention_would_be_caught():
    """The reference check is sharp: attention over the whole packed row changes the features a lot."""
    encs = encoders()
    frames = make_frames(6, seed=5)
    ref = reference(frames, encs)
    model = encs[0].model
    toks = encs[0].tokenize([f.protein for f in frames])
    (batch,) = packing.pack(toks, 10_000, packing.POOL_RESIDUES)
    one_doc = np.array([0, batch.num_tokens], np.int32)  # as if cu_seqlens were ignored
    with torch.no_grad():
        h = model.forward_packed(torch.from_numpy(batch.tokens).long(), torch.from_numpy(one_doc), batch.num_tokens)
    first = batch.cu_seqlens[0], batch.cu_seqlens[1]
    row = batch.rows[0]
    wrong = h[first[0] + 1: first[1] - 1].mean(0).numpy()
    assert np.abs(wrong - ref["protein"][row]).max() > 1e-2


def test_loader_workers_have_cuda_hidden_and_results_match():
    encs = encoders(128)
    frames = make_frames(25, seed=7)
    with EmbeddingEngine(encs, "cpu", workers=2) as engine:
        probes = engine.loader.probe()
        got = {}
        engine.embed_parts([frames], lambda i, f: got.__setitem__(i, f))
    assert len(probes) == 2
    for p in probes:
        assert p["CUDA_VISIBLE_DEVICES"] == ""
        assert not p["cuda_available"] and not p["cuda_initialized"]
        assert p["pid"] != os.getpid()
    ref = reference(frames, encs)
    assert_close(got[0]["protein"], ref["protein"])
    assert_close(got[0]["nucleotide"], ref["nucleotide"])
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "" or "CUDA_VISIBLE_DEVICES" not in os.environ


def test_telemetry_counts_every_token():
    encs = encoders(100)
    frames = make_frames(15, seed=3)
    with EmbeddingEngine(encs, "cpu", workers=0) as engine:
        engine.embed_parts([frames], lambda i, f: None)
        summary = engine.telemetry.summary()
    prot = summary["models"]["protein"]
    assert prot["sequences"] == 15
    assert prot["tokens"] == sum(len(f.protein) + 2 for f in frames)
    assert summary["models"]["nucleotide"]["tokens"] == sum(len(f.nucleotide) + 2 for f in frames)
    assert prot["packing_efficiency"] == 1.0


class OomAbove:
    """Wraps a model's packed forward: raises CUDA's OOM error for batches over `limit` tokens."""

    def __init__(self, model, limit):
        self.model, self.limit, self.refused = model, limit, 0
        self._forward = model.forward_packed

    def __call__(self, tokens, cu, max_seqlen):
        if tokens.shape[0] > self.limit:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self._forward(tokens, cu, max_seqlen)


def test_out_of_memory_shrinks_the_budget_and_retries():
    encs = encoders(1000)
    guard = OomAbove(encs[0].model, 150)
    encs[0].model.forward_packed = guard
    frames = make_frames(30, seed=12)
    ref = reference(frames, encs)
    with EmbeddingEngine(encs, "cpu", workers=0) as engine:
        got = {}
        engine.embed_parts([frames], lambda i, f: got.__setitem__(i, f))
        assert engine.budgets[0] <= 150 and engine.budgets[1] == 1000
        assert engine.telemetry.models["protein"].oom_retries >= 1
    assert guard.refused >= 1
    assert_close(got[0]["protein"], ref["protein"])
    assert_close(got[0]["nucleotide"], ref["nucleotide"])


def test_out_of_memory_on_a_single_sequence_is_retryable():
    from virnucpro.errors import RetryableError

    encs = encoders(1000)
    encs[0].model.forward_packed = OomAbove(encs[0].model, 5)
    with EmbeddingEngine(encs, "cpu", workers=0) as engine:
        with pytest.raises(RetryableError):
            engine.embed_parts([make_frames(4, seed=13)], lambda i, f: None)


def test_a_failing_part_writer_stops_the_run_without_hanging():
    encs = encoders(50)  # many small batches, so the bounded writer queue fills up behind the failure

    def fail(index, feats):
        raise OSError("disk full (simulated)")

    with EmbeddingEngine(encs, "cpu", workers=0, in_flight=1) as engine:
        with pytest.raises(OSError, match="disk full"):  # the writer's own error, whichever way it surfaces
            engine.embed_parts([make_frames(10, seed=1), make_frames(40, seed=2)], fail)


def test_empty_part_gives_empty_features():
    got = {}
    with EmbeddingEngine(encoders(), "cpu", workers=0) as engine:
        engine.embed_parts([[]], lambda i, f: got.__setitem__(i, f))
    assert len(got[0]) == 0 and got[0]["protein"].shape == (0, 16) and got[0]["nucleotide"].shape == (0, 12)
