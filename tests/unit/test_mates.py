"""Paired reads pooled into one sample (virnucpro/io/mates.py, `virnucpro pool-mates`)."""

import gzip

import pytest

from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.io.mates import mate_id, pool_mates
from virnucpro.io.seqio import read_sequences


def fastq(path, reads):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        for header, seq in reads:
            fh.write(f"@{header}\n{seq}\n+\n{'I' * len(seq)}\n")
    return path


def test_mate_ids_get_their_mate_number_once():
    assert mate_id("r7", 1) == "r7/1" and mate_id("r7", 2) == "r7/2"
    assert mate_id("r7/1", 1) == "r7/1" and mate_id("r7/2", 2) == "r7/2"
    assert mate_id("r7/1", 2) == "r7/1/2"


def test_both_mates_of_every_pair_in_input_order(tmp_path):
    r1 = fastq(tmp_path / "s_R1.fastq.gz", [("r1 1:N:0:1", "ACGTAC"), ("r2/1", "GGGG")])
    r2 = fastq(tmp_path / "s_R2.fastq", [("r1 2:N:0:1", "TTTT"), ("r2/2", "CCCCA")])
    out = tmp_path / "pooled.fa"
    assert pool_mates(r1, r2, out) == 4
    assert list(read_sequences(out)) == [("r1/1", "ACGTAC"), ("r1/2", "TTTT"), ("r2/1", "GGGG"), ("r2/2", "CCCCA")]


@pytest.mark.parametrize("n1, n2, short", [(2, 1, "s_R2.fq"), (1, 2, "s_R1.fq")])
def test_files_with_different_read_counts_are_refused(tmp_path, n1, n2, short):
    r1 = fastq(tmp_path / "s_R1.fq", [(f"r{i}", "ACGT") for i in range(n1)])
    r2 = fastq(tmp_path / "s_R2.fq", [(f"r{i}", "ACGT") for i in range(n2)])
    out = tmp_path / "pooled.fa"
    with pytest.raises(InputError, match="has fewer reads than") as info:
        pool_mates(r1, r2, out)
    assert info.value.path == str(tmp_path / short)
    assert not out.exists()


def test_ids_that_collide_after_the_suffix_are_refused(tmp_path):
    # r1 and r1/1 in the first file are distinct ids there, but both become r1/1.
    r1 = fastq(tmp_path / "a_1.fq", [("r1", "ACGT"), ("r1/1", "ACGT")])
    r2 = fastq(tmp_path / "a_2.fq", [("q1", "ACGT"), ("q2", "ACGT")])
    with pytest.raises(InputError, match="'r1/1' occurs twice"):
        pool_mates(r1, r2, tmp_path / "pooled.fa")
    assert not (tmp_path / "pooled.fa").exists()


def test_pool_mates_command(tmp_path, capsys):
    r1 = fastq(tmp_path / "a_1.fq", [("p", "ACGT")])
    r2 = fastq(tmp_path / "a_2.fq", [("p", "TTGA")])
    out = tmp_path / "out" / "a.mates.fa"
    assert main(["pool-mates", "--fastq-1", str(r1), "--fastq-2", str(r2), "--out", str(out), "--sample", "a"]) == 0
    assert out.read_text() == ">p/1\nACGT\n>p/2\nTTGA\n"
    assert main(["pool-mates", "--fastq-1", str(r1), "--fastq-2", str(tmp_path / "nope.fq"), "--out",
                 str(tmp_path / "x.fa")]) == 2
    assert "nope.fq: file not found" in capsys.readouterr().err
