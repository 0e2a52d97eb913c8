"""The sequence reader and writer: formats, compression, line endings, every bad-input message, memory."""

import bz2
import gzip
import io
import lzma
import random
import tracemalloc

import pytest

from virnucpro.errors import InputError
from virnucpro.io import seqio
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.seqio import read_raw_sequences, read_sequences, wrap_fasta, write_fasta

RECORDS = [("r1", "ACGTACGTNNacgt"), ("r2", "GGGCCC" * 30), ("r3", "A")]


def fasta_text(records, width=60, newline="\n", desc=" some description"):
    out = []
    for rid, seq in records:
        out.append(f">{rid}{desc}{newline}")
        out += [seq[i:i + width] + newline for i in range(0, len(seq), width)]
    return "".join(out)


def fastq_text(records, newline="\n"):
    return "".join(f"@{rid} x{newline}{seq}{newline}+{newline}{'#' * len(seq)}{newline}" for rid, seq in records)


def problem(path):
    with pytest.raises(InputError) as err:
        list(read_sequences(path))
    assert err.value.path == str(path)
    return err.value.problem


def random_dna(rng, n):
    return rng.randbytes(n).translate(bytes(b"ACGT"[i % 4] for i in range(256))).decode()


# --- formats ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("width", [1, 7, 60, 10_000])
def test_fasta_any_wrapping_and_line_ending(tmp_path, newline, width):
    path = tmp_path / "x.fa"
    path.write_bytes(fasta_text(RECORDS, width, newline).encode())
    assert list(read_sequences(path)) == RECORDS
    path.write_bytes(b"\xef\xbb\xbf" + fasta_text(RECORDS, width, newline).encode())  # UTF-8 byte-order mark
    assert list(read_sequences(path)) == RECORDS


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fastq(tmp_path, newline):
    path = tmp_path / "x.fq"
    path.write_bytes(fastq_text(RECORDS, newline).encode())
    assert list(read_sequences(path)) == RECORDS


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
@pytest.mark.parametrize("kind", ["fasta", "fastq"])
def test_compressed_input_is_detected_by_content_not_name(tmp_path, compress, kind):
    text = fasta_text(RECORDS) if kind == "fasta" else fastq_text(RECORDS)
    path = tmp_path / "reads.txt"  # misleading extension on purpose
    path.write_bytes(compress(text.encode()))
    assert list(read_sequences(path)) == RECORDS
    plain = tmp_path / "plain.gz"  # and a plain file named .gz is read as plain
    plain.write_text(text)
    assert list(read_sequences(plain)) == RECORDS


def test_id_is_the_header_up_to_the_first_whitespace_and_spaces_in_sequence_are_removed(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">id1\tdesc with spaces\nAC GT \n\n>id2|x  y\nTT\n")
    assert list(read_sequences(path)) == [("id1", "ACGT"), ("id2|x", "TT")]


def test_header_only_records_are_empty_records(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">a\n>b desc\nACG\n>c\n")
    assert list(read_sequences(path)) == [("a", ""), ("b", "ACG"), ("c", "")]


def test_records_across_block_boundaries(tmp_path, monkeypatch):
    rng = random.Random(1)
    records = [(f"s{i}", "".join(rng.choices("ACGTN", k=rng.randint(0, 200)))) for i in range(300)]
    path = tmp_path / "x.fa"
    def lines(seq):
        cuts = sorted(set([0, len(seq)] + [rng.randint(0, len(seq)) for _ in range(3)]))
        return "".join(seq[a:b] + "\n" for a, b in zip(cuts, cuts[1:]))

    text = "".join(f">{rid}\n" + lines(seq) for rid, seq in records)
    path.write_text(text)
    for block in (1, 2, 3, 7, 64, 1000):
        monkeypatch.setattr(seqio, "_BLOCK_BYTES", block)
        assert list(read_sequences(path)) == records, block
    path.write_text(text.rstrip("\n"))  # no final newline
    assert list(read_sequences(path)) == records


def test_fastq_across_block_boundaries_with_blank_lines_and_empty_reads(tmp_path, monkeypatch):
    rng = random.Random(4)
    records = [(f"q{i}", random_dna(rng, rng.choice([0, 1, 5, 150]))) for i in range(200)]
    text = "".join(f"@{rid} d\n{seq}\n+{rid}\n{'F' * len(seq)}\n" + "\n" * (i % 3 == 0)
                   for i, (rid, seq) in enumerate(records))
    path = tmp_path / "x.fq"
    path.write_text(text)
    for block in (1, 5, 64, 100_000):
        monkeypatch.setattr(seqio, "_BLOCK_BYTES", block)
        assert list(read_sequences(path)) == records, block
    path.write_text(text.rstrip("\n"))  # no final newline
    assert list(read_sequences(path)) == records


def test_binary_content_in_fastq_names_the_record(tmp_path):
    path = tmp_path / "x.fq"
    path.write_bytes(fastq_text(RECORDS).encode() + b"@r4\nAC\x00T\n+\nIIII\n")
    assert problem(path) == "binary content in record 4: not a text FASTA/FASTQ file"


def test_raw_reader_gives_bytes(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(fasta_text(RECORDS))
    assert list(read_raw_sequences(path)) == [(r, s.encode()) for r, s in RECORDS]


# --- bad input: one clear problem each ----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert problem(tmp_path / "nope.fa") == "file not found"


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", gzip.compress(b"")])
def test_empty_file(tmp_path, content):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    assert problem(path) == "empty file: no sequence records"


def test_binary_garbage(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(5000)))
    assert "binary content" in problem(path)


def test_binary_garbage_after_valid_records(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(fasta_text([("a", "ACGT" * 20000), ("b", "AC")]).encode() + b">c\nAC\x00\xff\x10GT\n")
    assert problem(path) == "binary content in record 3: not a text FASTA/FASTQ file"
    path.write_bytes(fasta_text([("a", "ACGT" * 20000)]).encode() + b"ACGT\xc3\xa9\n>b\nAC\n")
    assert problem(path) == "binary content in record 1: not a text FASTA/FASTQ file"


def test_truncated_gzip(tmp_path):
    path = tmp_path / "x.fa.gz"
    data = gzip.compress(fasta_text([("a", "ACGT" * 5000)]).encode())
    path.write_bytes(data[: len(data) // 2])
    assert problem(path) == "truncated gzip file (the compressed stream ends early)"


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.fa.gz"
    data = bytearray(gzip.compress(fasta_text(RECORDS).encode()))
    data[-6] ^= 0xFF  # break the CRC
    path.write_bytes(bytes(data))
    assert problem(path).startswith("corrupt gzip file")


@pytest.mark.parametrize("name, text, message", [
    pytest.param("x.fq", "@a\nACGT\n+\nIIII\n@b\nACGT\n+\nIII\n",
                 "FASTQ record 2: sequence length 4 differs from quality length 3", id="fastq_quality_length_mismatch"),
    pytest.param("x.fq", "@a\nACGT\n+\nIIII\n@b\nACGT\n",
                 "FASTQ record 2 is cut short (fewer than 4 lines)", id="fastq_cut_short"),
    pytest.param("x.fq", "@a\nACGT\nIIII\n@b\n",
                 "FASTQ record 1: third line does not start with '+'", id="fastq_missing_plus_line"),
    pytest.param("x.txt", "sample\tfastq_1\nS1\treads.fq\n",
                 "neither FASTA (first line starts with '>') nor FASTQ (starts with '@')",
                 id="neither_fasta_nor_fastq"),
])
def test_malformed_text_is_one_problem(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    assert problem(path) == message


def test_directory_is_not_a_sequence_file(tmp_path):
    assert problem(tmp_path) == "is a directory, not a sequence file"


def test_duplicate_ids_name_both_records(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">a\nAC\n>b x\nGG\n>c\nTT\n>b y\nCC\n")
    assert problem(path) == "duplicate record id 'b' (records 2 and 4)"
    assert len(list(read_sequences(path, unique_ids=False))) == 4


# --- memory -------------------------------------------------------------------------------------------------------

def test_a_5_mb_record_is_held_once_not_per_line(tmp_path):
    seq = random_dna(random.Random(2), 5_000_000)
    path = tmp_path / "big.fa"
    path.write_text(fasta_text([("small", "ACGT"), ("big", seq), ("after", "GG")], width=80))
    tracemalloc.start()
    try:
        lengths = [len(s) for _, s in read_raw_sequences(path)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lengths == [4, 5_000_000, 2]
    assert peak < 4 * 5_000_000, f"peak {peak / 1e6:.1f} MB"


def test_many_records_stream_in_constant_memory(tmp_path):
    rng = random.Random(3)
    path = tmp_path / "many.fa"
    with open(path, "w") as fh:
        for i in range(20_000):
            fh.write(f">r{i}\n{random_dna(rng, 500)}\n")
    peaks = []
    for n_records in (4_000, 20_000):
        tracemalloc.start()
        try:
            records = read_raw_sequences(path, unique_ids=False)
            n = sum(1 for _, i in zip(records, range(n_records)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert n == n_records
        peaks.append(peak)
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < 3_000_000, peaks  # 5x the records, same memory (~2 blocks)


# --- writing ------------------------------------------------------------------------------------------------------

def test_fasta_writer_wraps_at_60_and_round_trips(tmp_path):
    assert wrap_fasta("a", "A" * 130) == ">a\n" + "A" * 60 + "\n" + "A" * 60 + "\n" + "A" * 10 + "\n"
    assert wrap_fasta("a", "A" * 60) == ">a\n" + "A" * 60 + "\n"
    assert wrap_fasta("a", "ACG", width=None) == ">a\nACG\n"
    buf = io.StringIO()
    assert write_fasta(buf, RECORDS) == 3
    (tmp_path / "w.fa").write_text(buf.getvalue())
    assert list(read_sequences(tmp_path / "w.fa")) == RECORDS


def test_atomic_output_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "out") as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "a.txt").read_text() == "whole"
    with atomic_output_dir(tmp_path / "out") as tmp:  # into an existing directory, with a subdirectory
        (tmp / "a.txt").write_text("again")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
    assert (tmp_path / "out" / "a.txt").read_text() == "again"
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- non-ASCII header descriptions (issue 15) ---------------------------------------------------------------------

@pytest.mark.parametrize("description", ["strain Ñ".encode(), "strain Ñ".encode("latin-1"), "株 日本".encode()])
def test_non_ascii_descriptions_are_accepted(tmp_path, description, monkeypatch):
    path = tmp_path / "x.fa"
    path.write_bytes(b">seq1 " + description + b"\nACGT\nAC\n>seq2 " + description * 3 + b"\nGG\n")
    for block in (1, 7, 100_000):  # a header cut at a block boundary is still a header
        monkeypatch.setattr(seqio, "_BLOCK_BYTES", block)
        assert list(read_sequences(path)) == [("seq1", "ACGTAC"), ("seq2", "GG")], block
    path.write_bytes(b"@r1 " + description + b"\nACGT\n+r1 " + description + b"\nIIII\n")
    assert list(read_sequences(path)) == [("r1", "ACGT")]


def test_non_ascii_in_an_id_says_ids_must_be_ascii(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(">ok\nAC\n>seqÑ strain\nACGT\n".encode())
    assert problem(path) == ("record 2: id 'seqÑ' is not ASCII; record ids must be ASCII (they name chunks, frames "
                             "and result rows), while the description after the id may hold any text")
    path.write_bytes(b"@r\xd1 x\nACGT\n+\nIIII\n")
    assert problem(path).startswith("record 1: id 'r\\xd1' is not ASCII; record ids must be ASCII")


def test_non_ascii_outside_headers_is_still_binary(tmp_path):
    path = tmp_path / "x.fq"
    path.write_bytes("@r1 Ñ\nACGT\n+\nIIII\n@r2 Ñ\nAC\xc3\x91T\n+\nIIIII\n".encode("latin-1"))
    assert problem(path) == "binary content in record 2: not a text FASTA/FASTQ file"
    path.write_bytes(b"@r1\nACGT\n+\nII\xffI\n")
    assert problem(path) == "binary content in record 1: not a text FASTA/FASTQ file"
    path.write_bytes(b">r1 \xd1\x00\nACGT\n")  # a control byte is binary even in a description
    assert problem(path) == "binary content in record 1: not a text FASTA/FASTQ file"


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", gzip.compress(b"")])
def test_empty_file_is_allowed_when_asked(tmp_path, content):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    assert list(read_sequences(path, allow_empty=True)) == []


@pytest.mark.parametrize("block", [3, 40, 1 << 18])
def test_records_before_a_problem_are_handed_on_first(tmp_path, monkeypatch, block):
    # A block's records are handed on together, but a problem inside it still comes after the records before it.
    monkeypatch.setattr(seqio, "_BLOCK_BYTES", block)
    for text, problem_text in [
        (b">a\nAC\n>b\nGG\n>c\nTT\n>b\nAA\n>d\nCC\n", "duplicate record id 'b' (records 2 and 4)"),
        (b">a\nAC\n>b\nGG\n>c\nTT\n>\xc3\xa9\nAA\n>d\nCC\n", "record 4: id '\xe9' is not ASCII"),
        (b"@a\nAC\n+\nII\n@b\nGG\n+\nII\n@c\nTT\n+\nII\n@a\nAA\n+\nII\n", "duplicate record id 'a' (records 1 and 4)"),
    ]:
        path = tmp_path / "x.fa"
        path.write_bytes(text)
        seen = []
        with pytest.raises(InputError) as err:
            for rid, _ in read_raw_sequences(path):
                seen.append(rid)
        assert seen == ["a", "b", "c"] and err.value.problem.startswith(problem_text), (text, block)
