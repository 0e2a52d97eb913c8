"""Each distinct sequence of a shard is embedded once and copied to its duplicates (embed/dedup.py): the output
equals the run without dedup, copies equal their sources bit for bit, checkpoints and resume still work, and the
summary reports the saved share per encoder. Real reads with exact copies, the real preprocess, shard and embed
steps, tiny models, FP32 on the CPU."""

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from virnucpro.embed.checkpoint import PartStore
from virnucpro.embed.dedup import FeatureRows, ShardDedup
from virnucpro.embed.run import embed_shard
from virnucpro.embed.shard import split_frames
from virnucpro.io.features import Features, load_features
from virnucpro.io.frames import Frame, read_frame_pair

ROOT = Path(__file__).resolve().parents[2]
READS = ROOT / "tests" / "data" / "tiny_reads.fq.gz"
EVERY = 7  # checkpoint parts of 7 frames, so many duplicates lie in a later part than their source


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread():
    """Every embedding here on one CPU thread. With more, PyTorch splits an elementwise op's elements between the
    threads, and where a share starts or ends inside a row some elements take another code path (measured on an
    AVX-512 CPU: a GELU that can differ in the last bit; these tests passed with 2 threads on the AMD AVX2 machines
    before), so a value's place in its batch, which dedup changes, would reach the last bit. The bit-for-bit checks below are about dedup; that
    thread effect is FP32 noise (tests/unit/test_shard_scale.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory):
    """30 real 150 bp reads plus exact copies of some (0-2 each, new ids), shuffled, through the real
    preprocessing; one shard of their frames. Also returns how many copies each read got."""
    from virnucpro.preprocess.run import preprocess_file

    tmp = tmp_path_factory.mktemp("dedup")
    lines = gzip.open(READS, "rt").read().splitlines()
    reads = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    rng = random.Random(3)
    records = []
    for read in reads:
        records.append(read)
        for c in range(rng.choice([0, 0, 1, 2])):
            records.append([f"{read[0].split()[0]}_copy{c}"] + read[1:])
    rng.shuffle(records)
    (tmp / "reads.fq").write_text("".join("\n".join(r) + "\n" for r in records))
    preprocess_file(tmp / "reads.fq", 300, tmp / "pre")
    frames = list(read_frame_pair(tmp / "pre" / "identified_nucleotide.fa", tmp / "pre" / "identified_protein.faa"))
    [shard] = split_frames(frames, tmp / "shards", 10**9)
    return shard, frames, len(records) - len(reads)


def embed(shard, out, tiny_models, every, dedup=True, ckpt=None):
    summary = embed_shard(shard, out, esm_model=tiny_models.esm_pt, dnabert_model=tiny_models.dnabert,
                          device="cpu", precision="fp32", checkpoint_dir=ckpt or out.parent / "ckpt",
                          checkpoint_every=every, summary_path=str(out) + ".json", dedup=dedup)
    assert json.loads(Path(str(out) + ".json").read_text()) == json.loads(json.dumps(summary))
    return load_features(out), summary


@pytest.fixture(scope="module")
def runs(duplicated, tiny_models, tmp_path_factory):
    """(features, summary) with and without dedup, for one part and for parts of EVERY frames."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CUDA_VISIBLE_DEVICES", "")
    try:
        out = {}
        for every in (10**6, EVERY):
            for dedup in (True, False):
                d = tmp_path_factory.mktemp(f"run_{every}_{dedup}")
                out[every, dedup] = embed(duplicated[0], d / "f.npz", tiny_models, every, dedup)
        return out
    finally:
        mp.undo()


def groups(frames, field):
    by_seq = {}
    for i, f in enumerate(frames):
        by_seq.setdefault(getattr(f, field), []).append(i)
    return list(by_seq.values())


# -- without models --------------------------------------------------------------------------------------------

def test_sources_are_first_occurrences_per_encoder():
    frames = [Frame("a", "AAAT", "MK"), Frame("b", "AAAC", "MK"), Frame("c", "AAAT", "MK"), Frame("d", "GGGT", "W")]
    d = ShardDedup(frames)
    assert d.source["nucleotide"].tolist() == [0, 1, 0, 3]  # synonymous reads: same protein, other nucleotides
    assert d.source["protein"].tolist() == [0, 0, 0, 3]
    masks = d.compute_masks(1, 4)
    assert masks["nucleotide"].tolist() == [True, False, True] and masks["protein"].tolist() == [False, False, True]
    assert d.stats["protein"]["copied"] == 2 and d.stats["protein"]["distinct"] == 2
    assert d.stats["protein"]["tokens_saved"] == 8 and d.stats["protein"]["tokens"] == 3 * 4 + 3
    assert d.stats["nucleotide"]["saved_fraction"] == 0.25 and d.stats["nucleotide"]["tokens_estimated"]


def test_complete_copies_from_this_part_and_earlier_parts():
    frames = [Frame(str(i), nt, aa) for i, (nt, aa) in enumerate(
        [("AC", "M"), ("GT", "K"), ("AC", "W"), ("GT", "K"), ("AC", "M")])]
    d = ShardDedup(frames)
    rows = FeatureRows(len(frames))
    value = lambda i, w: np.full((1, w), float(i + 1), np.float32)  # noqa: E731 - "computed" row i
    rows.put(0, Features(["0", "1"], {"nucleotide": np.vstack([value(0, 2), value(1, 2)]),
                                     "protein": np.vstack([value(0, 3), value(1, 3)])}))
    # Part [2, 5): the engine left the copied rows at zero.
    part = Features(["2", "3", "4"], {"nucleotide": np.zeros((3, 2), np.float32),
                                     "protein": np.vstack([value(2, 3), np.zeros((2, 3))])})
    done = d.complete(2, part, rows)
    assert done["nucleotide"][:, 0].tolist() == [1.0, 2.0, 1.0]  # all three from part 0
    assert done["protein"][:, 0].tolist() == [3.0, 2.0, 1.0]  # row 2 computed; rows 3 and 4 from part 0
    rows.put(2, done)
    assert rows.features().ids == ["0", "1", "2", "3", "4"]


def test_feature_rows_refuse_a_hole():
    rows = FeatureRows(3)
    rows.put(0, Features(["a"], {"nucleotide": np.zeros((1, 2), np.float32), "protein": np.zeros((1, 3), np.float32)}))
    with pytest.raises(RuntimeError, match="2 frames"):
        rows.features()


# -- real reads, tiny models -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_duplicates_get_their_source_features_and_the_saved_share_is_reported(duplicated, runs):
    _, frames, copies = duplicated
    feats, summary = runs[EVERY, True]
    assert feats.ids == [f.id for f in frames]
    assert copies > 5
    for field in ("nucleotide", "protein"):
        gs = groups(frames, field)
        assert any(len(g) > 1 and g[-1] // EVERY != g[0] // EVERY for g in gs)  # copies across parts exist
        arr = feats[field]
        for g in gs:
            for i in g[1:]:
                np.testing.assert_array_equal(arr[i], arr[g[0]])
        s = summary["dedup"][field]
        assert (s["frames"], s["distinct"], s["copied"]) == (len(frames), len(gs), len(frames) - len(gs))
        assert s["saved_fraction"] == round((len(frames) - len(gs)) / len(frames), 6) > 0.2
        assert summary["models"][field]["sequences"] == len(gs)  # only the distinct ones went through the model
    # Exact copies of reads duplicate whole frames: both encoders save the same frames.
    assert summary["dedup"]["protein"]["copied"] == summary["dedup"]["nucleotide"]["copied"]
    esm = sum(len(f.protein) + 2 for f in frames)
    assert summary["dedup"]["protein"]["tokens"] == esm
    assert summary["models"]["protein"]["tokens"] == esm - summary["dedup"]["protein"]["tokens_saved"]
    assert runs[EVERY, False][1]["dedup"] is None


@pytest.mark.slow
def test_one_part_is_bit_identical_to_the_run_without_dedup(runs):
    # One part, one packed batch: dropping the copies keeps the batch's longest sequence (a source), hence the
    # padded attention length, and GEMM rows do not depend on how many rows there are (M >= 16 on this CPU).
    a, b = runs[10**6, True][0], runs[10**6, False][0]
    assert a.ids == b.ids
    np.testing.assert_array_equal(a["nucleotide"], b["nucleotide"])
    np.testing.assert_array_equal(a["protein"], b["protein"])


@pytest.mark.slow
def test_parts_match_without_dedup_bitwise_where_the_padded_length_is_unchanged(duplicated, runs, tiny_models):
    from virnucpro.models.dnabert import load_tokenizer

    _, frames, _ = duplicated
    a, b = runs[EVERY, True][0], runs[EVERY, False][0]
    d = ShardDedup(frames)
    tok = load_tokenizer(tiny_models.dnabert)
    lengths = {"protein": np.array([len(f.protein) + 2 for f in frames]),
               "nucleotide": np.array([len(e.ids) for e in tok.encode_batch([f.nucleotide for f in frames])])}
    changed = 0
    for field in ("nucleotide", "protein"):
        x, y = a[field], b[field]
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)  # FP32 noise at most
        for start in range(0, len(frames), EVERY):
            end = min(start + EVERY, len(frames))
            computed = d.compute_masks(start, end)[field]
            if not computed.any():
                continue  # all copies: bit-equal to their sources, checked in the test above
            same_length = lengths[field][start:end][computed].max() == lengths[field][start:end].max()
            rows = np.flatnonzero(computed) + start
            if same_length:
                np.testing.assert_array_equal(x[rows], y[rows])
            else:
                changed += 1
    print(f"parts whose padded length changed without the copies: {changed}")


@pytest.mark.slow
def test_kill_after_some_parts_then_resume_is_bit_identical(duplicated, runs, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    shard, frames, _ = duplicated
    want = runs[EVERY, True][0]
    real_write, written = PartStore.write, []

    def dies_after_three(self, index, feats):
        if len(written) == 3:
            raise RuntimeError("simulated crash")  # the task dies with three parts checkpointed
        real_write(self, index, feats)
        written.append(index)

    monkeypatch.setattr(PartStore, "write", dies_after_three)
    with pytest.raises(RuntimeError):
        embed(shard, tmp_path / "f.npz", tiny_models, EVERY, ckpt=tmp_path / "ckpt")
    assert not (tmp_path / "f.npz").exists() and written == [0, 1, 2]
    monkeypatch.setattr(PartStore, "write", real_write)
    got, summary = embed(shard, tmp_path / "f.npz", tiny_models, EVERY, ckpt=tmp_path / "ckpt")
    assert summary["parts_reused"] == 3
    # Some rows computed after the resume are copies of rows that came back from a checkpoint.
    src = ShardDedup(frames).source["protein"]
    assert any(src[i] < 3 * EVERY <= i for i in range(len(frames)))
    assert got.ids == want.ids
    np.testing.assert_array_equal(got["nucleotide"], want["nucleotide"])
    np.testing.assert_array_equal(got["protein"], want["protein"])


@pytest.mark.slow
def test_a_part_made_only_of_copies_and_an_empty_shard(duplicated, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    _, frames, _ = duplicated
    head = frames[:EVERY]
    again = [Frame(f"again{i}", f.nucleotide, f.protein) for i, f in enumerate(head)]
    [shard] = split_frames(head + again, tmp_path / "s", 10**9)
    feats, summary = embed(shard, tmp_path / "f.npz", tiny_models, EVERY)  # part 1: nothing to compute
    np.testing.assert_array_equal(feats["protein"][EVERY:], feats["protein"][:EVERY])
    np.testing.assert_array_equal(feats["nucleotide"][EVERY:], feats["nucleotide"][:EVERY])
    assert summary["dedup"]["protein"]["copied"] >= EVERY and summary["models"]["protein"]["sequences"] <= EVERY
    [empty] = split_frames([], tmp_path / "e", 10**9)
    feats, summary = embed(empty, tmp_path / "e.npz", tiny_models, EVERY)
    assert len(feats) == 0 and summary["dedup"]["protein"]["frames"] == 0
