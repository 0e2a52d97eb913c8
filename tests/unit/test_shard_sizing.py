"""Auto shard sizing: about SHARDS_PER_GPU shards per GPU, none below the fixed-cost floor, none above the
memory cap, equal budgets so n shards are cut; the GPU count follows the lease's rules."""

import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.embed import shard as sh
from virnucpro.embed.shard import FrameStats, auto_shard_count, auto_shard_tokens, frame_stats, frame_tokens
from virnucpro.io.frames import read_frames_tsv

from framegen import random_frames, write_fasta_pair

ROOT = Path(__file__).resolve().parents[2]
M = sh.MIN_SHARD_TOKENS


def test_floor_keeps_the_fixed_cost_within_its_share_of_gpu_time():
    # The floor is the shard whose GPU time makes the fixed cost exactly the allowed fraction.
    assert sh.TASK_FIXED_SECONDS / (M / sh.GPU_TOKENS_PER_S) == pytest.approx(sh.MAX_FIXED_FRACTION, rel=1e-6)
    for tokens in (1, M - 1, M, 2 * M - 1, 5 * M, 1000 * M):
        for gpus in (1, 2, 8):
            stats = FrameStats(frames=1000, tokens=tokens, largest=300)  # few frames: memory is no limit
            n = auto_shard_count(stats, gpus)
            assert 1 <= n <= max(1, sh.SHARDS_PER_GPU * gpus)
            if n > 1:
                assert tokens / n >= M  # every shard is worth its task's fixed cost


@pytest.mark.parametrize("tokens, gpus, expected", [
    (10_000, 4, 1),  # a small sample: one shard, whatever the GPUs
    (3 * M, 8, 3),  # enough for 3 shards at the floor, fewer than 3 per GPU
    (100 * M, 1, 3),  # a big sample on one GPU: 3 shards
    (100 * M, 8, 24),  # ... on 8 GPUs: 3 each
])
def test_shard_count(tokens, gpus, expected):
    assert auto_shard_count(FrameStats(1000, tokens, 300), gpus) == expected  # memory is no limit here


def test_memory_cap_wins_over_the_fixed_cost_floor():
    # Short frames (150 bp reads, ~91 tokens): 2M frames are only ~2.4 floors of tokens but 5 frame caps.
    stats = FrameStats(frames=5 * sh.MAX_SHARD_FRAMES, tokens=5 * sh.MAX_SHARD_FRAMES * 91, largest=95)
    assert auto_shard_count(stats, 1) == 5


def test_gpus_must_be_positive():
    with pytest.raises(ValueError):
        auto_shard_count(FrameStats(10, 1000, 100), 0)


@pytest.mark.parametrize("gpus", [1, 2, 3, 5])
def test_auto_budget_cuts_the_planned_shards_of_near_equal_tokens(tmp_path, monkeypatch, gpus):
    frames = random_frames(600, seed=gpus, lengths=(20, 60))
    stats = frame_stats(frames)
    monkeypatch.setattr(sh, "MIN_SHARD_TOKENS", stats.tokens // 12)  # scaled down: the same rules, small data
    n = auto_shard_count(stats, gpus)
    assert n == min(sh.SHARDS_PER_GPU * gpus, 12)
    paths = sh.split_frames(frames, tmp_path, auto_shard_tokens(stats, gpus))
    shards = [list(read_frames_tsv(p)) for p in paths]
    assert [f for s in shards for f in s] == frames
    tokens = [sum(frame_tokens(f) for f in s) for s in shards]
    share = stats.tokens / n
    assert len(paths) == n  # n shards, not n plus a sliver
    assert all(share <= t <= share + stats.largest + 1 for t in tokens[:-1])
    assert tokens[-1] >= share - (n - 1) * (stats.largest + 1)  # at real sizes (75M-token shards), ~equal too


def test_frame_stats():
    frames = random_frames(30, seed=9)
    s = frame_stats(iter(frames))
    assert (s.frames, s.tokens, s.largest) == (30, sum(map(frame_tokens, frames)), max(map(frame_tokens, frames)))
    assert frame_stats([]) == FrameStats(0, 0, 0) and auto_shard_tokens(FrameStats(), 4) == 1


def test_gpu_count_follows_the_lease_rules(monkeypatch):
    for var in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", sh_pseudo()):
        monkeypatch.delenv(var, raising=False)
    assert sh.gpus_for_sizing("cpu")[0] == 1
    monkeypatch.setenv(sh_pseudo(), "4")
    assert sh.gpus_for_sizing("auto")[0] == 4
    assert sh.gpus_for_sizing("cuda", "1,3")[0] == 2
    assert sh.gpus_for_sizing("cpu", "1,3")[0] == 1
    monkeypatch.delenv(sh_pseudo())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert sh.gpus_for_sizing("auto")[0] == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sh.gpus_for_sizing("auto")[0] == 1  # no GPU: sized as one
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # the sharding job of a SLURM run holds no GPU
    count, how = sh.gpus_for_sizing("auto")
    assert count == 1 and "shard_gpus" in how


def sh_pseudo():
    from virnucpro.embed.lease import PSEUDO_DEVICES_ENV

    return PSEUDO_DEVICES_ENV


@pytest.mark.integration
def test_cli_auto_and_explicit(tmp_path):
    frames = random_frames(40, seed=4)
    nucleotide, protein = write_fasta_pair(frames, tmp_path)
    base = [sys.executable, "-m", "virnucpro", "shard", "--nucleotide", str(nucleotide),
            "--protein", str(protein)]
    auto = subprocess.run(base + ["--outdir", str(tmp_path / "a"), "--num-gpus", "8"], capture_output=True,
                          text=True, cwd=ROOT)
    assert auto.returncode == 0, auto.stderr
    assert "1 shard(s)" in auto.stdout and "auto: 40 frames" in auto.stdout and "8 GPU(s)" in auto.stdout
    assert [f for p in sorted((tmp_path / "a").glob("shard_*.tsv")) for f in read_frames_tsv(p)] == frames
    given = subprocess.run(base + ["--outdir", str(tmp_path / "b"), "--shard-tokens", "3000", "--num-gpus", "8"],
                           capture_output=True, text=True, cwd=ROOT)
    assert given.returncode == 0 and len(list((tmp_path / "b").glob("shard_*.tsv"))) > 2  # the user's size wins
    for bad, flag in ((["--num-gpus", "0"], "--num-gpus"), (["--shard-tokens", "many"], "--shard-tokens")):
        out = subprocess.run(base + ["--outdir", str(tmp_path / "c")] + bad, capture_output=True, text=True,
                             cwd=ROOT)
        assert out.returncode == 2 and flag in out.stderr, out.stderr
        assert not (tmp_path / "c").exists()


def test_preprocess_frame_stats_are_the_frames_totals_and_size_the_same_shards(tmp_path, monkeypatch):
    from virnucpro.cli import main
    from virnucpro.io.frames import read_frame_blocks, read_frame_stats
    from virnucpro.preprocess.run import preprocess_file

    golden = ROOT / "tests" / "data" / "golden" / "input.fa"
    preprocess_file(golden, 300, tmp_path / "pre")
    nt, aa = tmp_path / "pre" / "identified_nucleotide.fa", tmp_path / "pre" / "identified_protein.faa"
    stats = read_frame_stats(tmp_path / "pre" / "frame_stats.tsv")
    assert stats == sh.block_stats(read_frame_blocks(nt, aa)) and stats.frames > 100
    base = ["shard", "--nucleotide", str(nt), "--protein", str(aa), "--num-gpus", "4"]
    for floor in (sh.MIN_SHARD_TOKENS, 20_000):  # with a small floor the sample gets several shards
        monkeypatch.setattr(sh, "MIN_SHARD_TOKENS", floor)
        assert main(base + ["--outdir", str(tmp_path / "two_passes")]) == 0
        assert main(base + ["--outdir", str(tmp_path / "one"), "--frame-stats",
                            str(tmp_path / "pre" / "frame_stats.tsv")]) == 0
        a, b = sorted((tmp_path / "two_passes").iterdir()), sorted((tmp_path / "one").iterdir())
        assert [p.name for p in a] == [p.name for p in b] and all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert len(a) > 2


def test_frame_stats_of_other_frames_are_refused(tmp_path, capsys):
    from virnucpro.cli import main

    nucleotide, protein = write_fasta_pair(random_frames(30, seed=6), tmp_path)
    (tmp_path / "stats.tsv").write_text("frames\ttokens\tlargest\n31\t5000\t200\n")
    assert main(["shard", "--nucleotide", str(nucleotide), "--protein", str(protein), "--outdir",
                 str(tmp_path / "out"), "--frame-stats", str(tmp_path / "stats.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"virnucpro: error: {tmp_path / 'stats.tsv'}: says 31 frames") and "frame files hold 30" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "stats.tsv").write_text("frames\ttokens\n31\t5000\n")
    assert main(["shard", "--nucleotide", str(nucleotide), "--protein", str(protein), "--outdir",
                 str(tmp_path / "out"), "--frame-stats", str(tmp_path / "stats.tsv")]) == 2
    assert "not a frame_stats.tsv" in capsys.readouterr().err
