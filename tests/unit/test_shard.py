"""Token-balanced contiguous shards: every frame once, input order, deterministic, cut by tokens."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.embed.shard import frame_tokens, split_frames
from virnucpro.models.encoders import DNABERT_SPEC, ESM2_SPEC
from virnucpro.io.frames import Frame, read_frames_tsv

from framegen import random_frames, write_fasta_pair

ROOT = Path(__file__).resolve().parents[2]


def read_all(paths):
    return [list(read_frames_tsv(p)) for p in paths]


def test_token_counts():
    f = Frame("x_chunk_1F1", "A" * 301, "M" * 100)
    assert ESM2_SPEC.tokens_of_length(len(f.protein)) == 102  # <cls> + 100 residues + <eos>
    assert DNABERT_SPEC.tokens_of_length(len(f.nucleotide)) == 77  # ~4 bases per BPE token + [CLS] [SEP]
    assert frame_tokens(f) == 179


@pytest.mark.parametrize("budget", [1, 500, 3000, 10**9])
def test_shards_are_contiguous_in_order_and_within_budget(tmp_path, budget):
    frames = random_frames(120)
    paths = split_frames(frames, tmp_path / "shards", budget)
    assert [p.name for p in paths] == [f"shard_{i:05d}.tsv" for i in range(len(paths))]
    shards = read_all(paths)
    assert [f for s in shards for f in s] == frames  # every frame once, in input order
    biggest = max(frame_tokens(f) for f in frames)
    for i, shard in enumerate(shards):
        tokens = sum(frame_tokens(f) for f in shard)
        assert shard, "no empty shard when there are frames"
        assert tokens <= budget or len(shard) == 1  # only a lone frame may exceed the budget
        if i < len(shards) - 1:  # closed only because the next frame would not fit
            assert tokens + frame_tokens(shards[i + 1][0]) > budget
            assert tokens > budget - biggest
    if budget == 1:
        assert len(shards) == len(frames)
    if budget == 10**9:
        assert len(shards) == 1
    manifest = (tmp_path / "shards" / "manifest.tsv").read_text().splitlines()
    assert len(manifest) == len(paths) + 1
    assert sum(int(line.split("\t")[1]) for line in manifest[1:]) == len(frames)


def test_balanced_by_tokens_not_by_frame_count(tmp_path):
    # Short frames first, long frames after: equal work means many short frames per shard, few long ones.
    frames = random_frames(100, seed=1, lengths=(10, 12)) + random_frames(100, seed=2, lengths=(150, 160))
    frames = [Frame(f"s{i}_chunk_1F1", f.nucleotide, f.protein) for i, f in enumerate(frames)]
    shards = read_all(split_frames(frames, tmp_path, 5000))
    counts = [len(s) for s in shards]
    tokens = [sum(frame_tokens(f) for f in s) for s in shards]
    assert counts[0] > 3 * counts[-2]
    assert max(tokens[:-1]) - min(tokens[:-1]) < 300  # within one long frame of each other


def test_deterministic(tmp_path):
    frames = random_frames(80, seed=3)
    a = split_frames(frames, tmp_path / "a", 2000)
    b = split_frames(iter(frames), tmp_path / "b", 2000)  # a one-shot iterator works too
    digest = lambda paths: [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]  # noqa: E731
    assert digest(a) == digest(b)


def test_no_frames_gives_one_header_only_shard(tmp_path):
    paths = split_frames([], tmp_path / "s", 1000)
    assert [p.name for p in paths] == ["shard_00000.tsv"]
    assert read_all(paths) == [[]]
    assert paths[0].read_text().startswith("frame_id\tnucleotide\tprotein")


def test_rerun_into_the_same_directory_leaves_no_stale_shards(tmp_path):
    frames = random_frames(50)
    assert len(split_frames(frames, tmp_path, 500)) > 3
    paths = split_frames(frames, tmp_path, 10**9)
    assert sorted(p.name for p in tmp_path.glob("shard_*.tsv")) == ["shard_00000.tsv"]
    assert read_all(paths) == [frames]


@pytest.mark.integration
def test_cli_shards_a_fasta_pair(tmp_path):
    frames = random_frames(40, seed=4)
    nucleotide, protein = write_fasta_pair(frames, tmp_path)
    cmd = [sys.executable, "-m", "virnucpro", "shard", "--nucleotide", str(nucleotide),
           "--protein", str(protein), "--outdir", str(tmp_path / "out"), "--shard-tokens", "3000"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    paths = sorted((tmp_path / "out").glob("shard_*.tsv"))
    assert len(paths) > 2
    assert [f for s in read_all(paths) for f in s] == frames
    bad = subprocess.run(cmd[:-1] + ["0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--shard-tokens" in bad.stderr
