"""Frame files: the nucleotide/protein FASTA pair read in lockstep, and shard TSVs."""

from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.io.frames import (
    SHARD_HEADER, Frame, read_frame_ids, read_frame_pair, read_frames_tsv, write_frames_tsv,
)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "expected_500"


def write_pair(tmp_path, nt, aa):
    (tmp_path / "n.fa").write_text("".join(f">{i}\n{s}\n" for i, s in nt))
    (tmp_path / "p.faa").write_text("".join(f">{i}\n{s}\n" for i, s in aa))
    return tmp_path / "n.fa", tmp_path / "p.faa"


def test_golden_pair_reads_in_lockstep():
    frames = list(read_frame_pair(GOLDEN / "identified_nucleotide.fa", GOLDEN / "identified_protein.faa"))
    assert len(frames) == (GOLDEN / "identified_protein.faa").read_text().count(">")
    assert frames[0] == Frame(
        "seq0_chunk_1R1",
        (GOLDEN / "identified_nucleotide.fa").read_text().splitlines()[1],
        (GOLDEN / "identified_protein.faa").read_text().splitlines()[1],
    )
    assert all(len(f.nucleotide) in (3 * len(f.protein), 3 * len(f.protein) + 1) for f in frames)


def test_multiline_and_crlf_pair(tmp_path):
    (tmp_path / "n.fa").write_bytes(b">a_chunk_1F1 x\r\nATGAA\r\nATTTG\r\n")
    (tmp_path / "p.faa").write_bytes(b">a_chunk_1F1\r\nMK\r\nF\r\n")
    assert list(read_frame_pair(tmp_path / "n.fa", tmp_path / "p.faa")) == [Frame("a_chunk_1F1", "ATGAAATTTG", "MKF")]


def test_id_mismatch_names_both_ids(tmp_path):
    nt, aa = write_pair(tmp_path, [("a", "ATGA"), ("b", "ATGA")], [("a", "M"), ("c", "M")])
    with pytest.raises(InputError) as err:
        list(read_frame_pair(nt, aa))
    assert err.value.path == str(aa)
    assert err.value.problem == "record 2 is 'c' (line 3) but n.fa has 'b' there"


def test_one_file_shorter(tmp_path):
    nt, aa = write_pair(tmp_path, [("a", "ATGA"), ("b", "ATGA")], [("a", "M")])
    with pytest.raises(InputError) as err:
        list(read_frame_pair(nt, aa))
    assert err.value.path == str(aa) and "ends after 1 records" in err.value.problem and "'b'" in err.value.problem
    nt, aa = write_pair(tmp_path, [("a", "ATGA")], [("a", "M"), ("b", "M")])
    with pytest.raises(InputError) as err:
        list(read_frame_pair(nt, aa))
    assert err.value.path == str(nt)


def test_nucleotide_length_must_fit_the_protein(tmp_path):
    assert len(list(read_frame_pair(*write_pair(tmp_path, [("a", "ATG")], [("a", "M")])))) == 1  # clipped at end
    nt, aa = write_pair(tmp_path, [("a", "ATGAA")], [("a", "M")])
    with pytest.raises(InputError) as err:
        list(read_frame_pair(nt, aa))
    assert err.value.problem == (
        "frame 'a': nucleotide length 5 does not match its protein of 1 aa (expected 4, or 3 at a chunk end)"
    )


def test_missing_file(tmp_path):
    nt, aa = write_pair(tmp_path, [("a", "ATGA")], [("a", "M")])
    with pytest.raises(InputError, match="file not found"):
        list(read_frame_pair(nt, tmp_path / "gone.faa"))


def test_shard_tsv_round_trip_and_atomic_write(tmp_path):
    frames = list(read_frame_pair(GOLDEN / "identified_nucleotide.fa", GOLDEN / "identified_protein.faa"))[:50]
    path = tmp_path / "shards" / "shard_00000.tsv"
    assert write_frames_tsv(path, frames) == 50
    assert path.read_text().splitlines()[0] == SHARD_HEADER == "frame_id\tnucleotide\tprotein"
    assert list(read_frames_tsv(path)) == frames
    assert read_frame_ids(path) == [f.id for f in frames]
    assert [p.name for p in path.parent.iterdir()] == ["shard_00000.tsv"]


def test_failed_shard_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "s.tsv"
    write_frames_tsv(path, [Frame("a", "ATGA", "M")])

    def frames():
        yield Frame("b", "ATGA", "M")
        raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError):
        write_frames_tsv(path, frames())
    assert list(read_frames_tsv(path)) == [Frame("a", "ATGA", "M")]
    assert [p.name for p in tmp_path.iterdir()] == ["s.tsv"]
    with pytest.raises(ValueError, match="tab or newline"):
        write_frames_tsv(path, [Frame("a\tb", "ATGA", "M")])


@pytest.mark.parametrize("read", [lambda p: list(read_frames_tsv(p)), read_frame_ids])
def test_bad_shard_files(tmp_path, read):
    path = tmp_path / "s.tsv"
    path.write_text("id\tseq\n")
    with pytest.raises(InputError, match="not a shard file"):
        read(path)
    path.write_text(SHARD_HEADER + "\na\tATGA\tM\nb\tATGA\n")
    with pytest.raises(InputError) as err:
        read(path)
    assert err.value.problem == "line 3: expected 3 tab-separated fields, found 2"
    path.write_bytes(SHARD_HEADER.encode() + b"\na\tAT\xffGA\tM\n")
    with pytest.raises(InputError, match="binary content"):
        read(path)


@pytest.mark.integration
def test_frames_module_does_not_need_dnaio_or_numpy():
    import subprocess
    import sys

    code = ("import sys; sys.modules['dnaio'] = None; sys.modules['numpy'] = None\n"
            "import virnucpro.io.frames as f; print(f.Frame('a', 'ATGA', 'M').protein)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.strip() == "M", out.stderr


def _line_by_line(path):
    """The pair reader's FASTA rules, one text-mode line at a time (universal newlines): the oracle."""
    records, header, parts = [], None, []
    with open(path, encoding="ascii", newline=None) as fh:
        for line in fh:
            if line.startswith(">"):
                if header is not None:
                    records.append((header, "".join(parts)))
                fields = line[1:].split(None, 1)
                header, parts = (fields[0] if fields else ""), []
            elif header is not None:
                parts.append(line.strip())
    return records + ([(header, "".join(parts))] if header is not None else [])


@pytest.mark.parametrize("block_bytes", [1, 2, 7, 64, 1 << 22])
def test_block_reader_matches_the_line_by_line_rules(tmp_path, monkeypatch, block_bytes):
    # One-line records (the fast path) mixed with what needs the line-by-line path, cut at every read size.
    from virnucpro.io import frames as frames_io

    monkeypatch.setattr(frames_io, "_BLOCK_BYTES", block_bytes)
    nt = (b"\n>a_1 desc\tx\nATGA\n>b_1\nATGAAA\r\nT\r\n>c_1\n\n>d_1\r>e_1\nAT GAA \n>f_1\nATGA\n" * 3
          + b">g_1\nATGAAAT\n>h_1\nATG\n\n>i_1\nATGA")
    (tmp_path / "n.fa").write_bytes(nt)
    expected = _line_by_line(tmp_path / "n.fa")
    assert len(expected) == 21 and expected[1] == ("b_1", "ATGAAAT") and expected[3] == ("d_1", "")
    aa = "".join(f">{rid}\n{'M' * (len(seq) // 3)}\n" for rid, seq in expected)
    (tmp_path / "p.faa").write_text(aa)
    frames = list(read_frame_pair(tmp_path / "n.fa", tmp_path / "p.faa"))
    assert [(f.id, f.nucleotide) for f in frames] == expected
    assert [f.protein for f in frames] == [p for _, p in _line_by_line(tmp_path / "p.faa")]


def test_block_reader_errors(tmp_path):
    nt, aa = write_pair(tmp_path, [("a", "ATGAA"), ("b", "ATGA")], [("a", "M"), ("c", "M")])
    with pytest.raises(InputError) as err:  # the length of frame 1 is wrong before the id of frame 2
        list(read_frame_pair(nt, aa))
    assert err.value.problem.startswith("frame 'a': nucleotide length 5")
    (tmp_path / "n.fa").write_bytes(b"ATGA\n>a\nATGA\n")
    with pytest.raises(InputError, match="line 1: text before the first '>' header"):
        list(read_frame_pair(tmp_path / "n.fa", aa))
    (tmp_path / "n.fa").write_bytes(b">a\nAT\xc3\xa9GA\n")
    with pytest.raises(InputError, match="binary content"):
        list(read_frame_pair(tmp_path / "n.fa", aa))
    (tmp_path / "n.fa").write_bytes(b"\n\n")
    with pytest.raises(InputError, match="ends after 0 records, but p.faa has more"):
        list(read_frame_pair(tmp_path / "n.fa", aa))
