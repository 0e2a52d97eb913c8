"""Preprocessing: golden files from the original, the chunking rule, six-frame identification, accounting."""

import gzip
import logging
import random
import tracemalloc
from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.io import seqio
from virnucpro.io.seqio import read_sequences
from virnucpro.preprocess import run as pp
from virnucpro.preprocess.chunking import chunk_starts
from virnucpro.preprocess.run import RECORDS_HEADER, preprocess_file

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa")


def random_dna(rng, n):
    return rng.randbytes(n).translate(bytes(b"ACGT"[i % 4] for i in range(256))).decode()


# --- an independent, plain reading of ORIGINAL_SEMANTICS §1-2, used as the oracle ---------------------------------

def _code():
    bases = "TCAG"
    aas = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
    return {a + b + c: aas[16 * i + 4 * j + k] for i, a in enumerate(bases) for j, b in enumerate(bases)
            for k, c in enumerate(bases)}


CODE = _code()


def oracle_chunks(seq, size):
    n = len(seq)
    k = -(-n // size)
    surplus = k * size - n
    q = surplus // k
    m = surplus - (k - 1) * q
    start, out = 0, []
    for j in range(1, k + 1):
        out.append(seq[start:start + size])
        start += size - ((q + 1) if j <= m else q)
    return out


def oracle_frames(name, chunk):
    s = chunk.upper()
    rc = "".join({"A": "T", "C": "G", "G": "C", "T": "A"}.get(b, b) for b in s)[::-1]
    out = []
    for strand, tag in ((s, "F"), (rc, "R")):
        for off in range(3):
            prot = "".join(CODE.get(strand[i:i + 3], "") for i in range(off, len(strand) - 2, 3))
            if prot and "*" not in prot:
                out.append((f"{name}{tag}{off + 1}", strand[off:off + 3 * len(prot) + 1], prot))
    return out


def oracle(records, size):
    chunks, frames = [], []
    for rid, seq in records:
        if not seq:
            continue
        for j, c in enumerate(oracle_chunks(seq, size), start=1):
            chunks.append((f"{rid}_chunk_{j}", c))
            frames += oracle_frames(f"{rid}_chunk_{j}", c)
    return chunks, frames


def outputs(outdir):
    chunks = list(read_sequences(outdir / "chunked.fa"))
    nts = list(read_sequences(outdir / "identified_nucleotide.fa"))
    aas = list(read_sequences(outdir / "identified_protein.faa"))
    assert [i for i, _ in nts] == [i for i, _ in aas]
    return chunks, [(i, n, a) for (i, n), (_, a) in zip(nts, aas)]


def records_table(outdir):
    lines = (outdir / "records.tsv").read_text().splitlines()
    assert lines[0] + "\n" == RECORDS_HEADER
    return [line.split("\t") for line in lines[1:]]


def write_fasta(path, records, width=70):
    with open(path, "w") as fh:
        for rid, seq in records:
            fh.write(f">{rid}\n" + "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width)))
    return path


# --- golden files -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [300, 500])
def test_golden_files_are_reproduced_byte_for_byte(tmp_path, length):
    stats = preprocess_file(GOLDEN / "input.fa", length, tmp_path / "out")
    for name in OUTPUTS:
        assert (tmp_path / "out" / name).read_bytes() == (GOLDEN / f"expected_{length}" / name).read_bytes(), name
    n_frames = sum(1 for _ in read_sequences(GOLDEN / f"expected_{length}" / "identified_protein.faa"))
    assert stats.records == 400 and stats.frames == n_frames


@pytest.mark.parametrize("length", [300, 500])
def test_golden_records_table_accounts_for_every_record(tmp_path, length):
    preprocess_file(GOLDEN / "input.fa", length, tmp_path)
    rows = records_table(tmp_path)
    inputs = list(read_sequences(GOLDEN / "input.fa"))
    assert [r[0] for r in rows] == [rid for rid, _ in inputs]
    assert [int(r[1]) for r in rows] == [len(s) for _, s in inputs]
    chunks, frames = outputs(tmp_path)
    assert sum(int(r[2]) for r in rows) == len(chunks)
    assert sum(int(r[3]) for r in rows) == len(frames)
    for rid, _, _, n_frames, status in rows:
        mine = [f for f, _, _ in frames if f.rsplit("_chunk_", 1)[0] == rid]
        assert len(mine) == int(n_frames)
        assert status == ("kept" if mine else "no_stop_free_frame")


# --- chunking -----------------------------------------------------------------------------------------------------

def test_worked_examples_of_the_chunking_rule():
    assert chunk_starts(508, 500) == [0, 253]
    starts = chunk_starts(2625, 500)
    assert starts == [0, 437, 874, 1311, 1748, 2185] and 2625 - starts[-1] == 440
    assert chunk_starts(500, 500) == [0]  # n == L: one whole chunk
    assert chunk_starts(501, 500) == [0, 250]  # n == L + 1: 500 + 251 bp
    assert chunk_starts(1002, 500) == [0, 333, 666]  # last chunk 336 bp
    assert chunk_starts(7, 500) == [0]


def test_chunk_starts_agree_with_the_oracle_for_many_lengths():
    for size in (300, 500, 7):
        for n in range(1, 4 * size + 3):
            got = [("x" * n)[s:s + size] for s in chunk_starts(n, size)]
            seq = "".join(chr(65 + i % 26) for i in range(n))
            assert [seq[s:s + size] for s in chunk_starts(n, size)] == oracle_chunks(seq, size), (size, n)
            assert len(got) == -(-n // size)


# --- identification edge cases against the oracle ----------------------------------------------------------------

def _random_records(rng, n):
    """Lengths around the interesting points, with lower case, N runs, IUPAC letters and stop-free stretches."""
    records = []
    lengths = [1, 2, 3, 4, 5, 6, 7, 299, 300, 301, 302, 499, 500, 501, 502, 508, 1002, 2625]
    for i in range(n):
        length = lengths[i] if i < len(lengths) else rng.randint(1, 1800)
        if i % 3 == 0:  # a coding stretch: no stop in frame 1, so frames survive
            sense = [c for c, a in CODE.items() if a != "*"]
            seq = "".join(rng.choices(sense, k=length // 3 + 1))[:length]
        else:
            seq = "".join(rng.choices("ACGT" * 8 + "NRYKMSWBDHV", k=length))
        if i % 4 == 1:
            seq = seq.lower()
        if i % 5 == 2 and length > 20:
            p = rng.randrange(length - 10)
            seq = seq[:p] + "N" * 9 + seq[p + 9:]
        if i % 7 == 3:
            seq = "".join(c.lower() if rng.random() < 0.3 else c for c in seq)
        records.append((f"r{i}", seq))
    return records


@pytest.mark.parametrize("length", [300, 500])
def test_frames_match_the_oracle_with_lowercase_n_runs_and_iupac(tmp_path, length):
    records = _random_records(random.Random(length), 160)
    write_fasta(tmp_path / "in.fa", records)
    preprocess_file(tmp_path / "in.fa", length, tmp_path / "out")
    chunks, frames = outputs(tmp_path / "out")
    want_chunks, want_frames = oracle(records, length)
    assert chunks == want_chunks  # chunked.fa keeps the input's case
    assert frames == want_frames
    assert any(c != c.upper() for _, c in chunks) and all(n == n.upper() for _, n, _ in frames)
    assert any(len(n) == 3 * len(a) for _, n, a in frames)  # the clipped-at-chunk-end case occurs


def test_results_do_not_depend_on_batch_boundaries(tmp_path, monkeypatch):
    records = _random_records(random.Random(3), 120)
    records[5:5] = [("e1", ""), ("e2", "")]  # empty records keep their place in records.tsv
    write_fasta(tmp_path / "in.fa", records)
    preprocess_file(tmp_path / "in.fa", 300, tmp_path / "big")
    monkeypatch.setattr(seqio, "_BLOCK_BYTES", 500)  # the reader hands on a few records at a time
    monkeypatch.setattr(pp, "BATCH_BASES", 700)
    monkeypatch.setattr(pp, "BATCH_RECORDS", 4)
    monkeypatch.setattr(pp, "PASS_BASES", 900)  # 3 chunks of 300 per pass
    preprocess_file(tmp_path / "in.fa", 300, tmp_path / "small")
    for name in OUTPUTS + ("records.tsv",):
        assert (tmp_path / "big" / name).read_bytes() == (tmp_path / "small" / name).read_bytes(), name


def test_hand_checked_frames_of_a_short_chunk(tmp_path):
    # ATGAAATTTNNNGGG: F1 = M K F (NNN dropped) G -> "MKFG", nucleotide = first 3*4+1 = 13 bases.
    write_fasta(tmp_path / "in.fa", [("s", "atgAAATTTNNNGGG")])
    preprocess_file(tmp_path / "in.fa", 500, tmp_path / "out")
    chunks, frames = outputs(tmp_path / "out")
    assert chunks == [("s_chunk_1", "atgAAATTTNNNGGG")]
    f1 = dict((i, (n, a)) for i, n, a in frames)["s_chunk_1F1"]
    assert f1 == ("ATGAAATTTNNNG", "MKFG")
    # R1 reads CCCNNNAAATTTCAT: P (NNN dropped) K F H -> no stop, kept.
    assert dict((i, a) for i, _, a in frames)["s_chunk_1R1"] == "PKFH"
    order = ["F1", "F2", "F3", "R1", "R2", "R3"]
    assert [i[-2:] for i, _, _ in frames] == sorted((i[-2:] for i, _, _ in frames), key=order.index)


# --- accounting, warnings, failures -------------------------------------------------------------------------------

def test_empty_records_are_skipped_counted_and_listed(tmp_path, caplog):
    (tmp_path / "in.fa").write_text(">a\nATGAAATTTGGG\n>empty desc\n>b\nTAATAATAA\n>c\r\nATGCCC\r\n")
    with caplog.at_level(logging.WARNING):
        stats = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert stats.records == 4 and stats.empty_records == 1 and stats.chunks == 3
    assert "'empty'" in caplog.text and "no sequence" in caplog.text
    rows = records_table(tmp_path / "out")
    assert [(r[0], r[2], r[4]) for r in rows] == [
        ("a", "1", "kept"), ("empty", "0", "empty"), ("b", "1", "no_stop_free_frame") if int(rows[2][3]) == 0
        else ("b", "1", "kept"), ("c", "1", "kept")]
    assert sum(int(r[3]) for r in rows) == stats.frames == len(outputs(tmp_path / "out")[1])


def test_many_empty_records_warn_a_few_times_and_are_all_listed(tmp_path, caplog):
    (tmp_path / "in.fa").write_text("".join(f">e{i}\n" for i in range(25)) + ">x\nATGAAA\n")
    with caplog.at_level(logging.WARNING):
        stats = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert caplog.text.count("has no sequence") == pp.MAX_EMPTY_WARNINGS
    assert stats.empty_records == 25
    assert [r[4] for r in records_table(tmp_path / "out")] == ["empty"] * 25 + ["kept"]


def test_all_stops_record_is_reported(tmp_path):
    seq = "TAATAAATAATTATTTATTA" * 4  # a stop in every frame of both strands
    assert oracle_frames("x", seq) == []
    write_fasta(tmp_path / "in.fa", [("x", seq)])
    stats = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert records_table(tmp_path / "out") == [["x", str(len(seq)), "1", "0", "no_stop_free_frame"]]
    assert stats.records_without_frames == 1 and stats.frames == 0


def test_records_below_min_length_are_listed_too_short_and_never_chunked(tmp_path, monkeypatch):
    rng = random.Random(3)
    records = [("long1", random_dna(rng, 900)), ("short", random_dna(rng, 299)), ("empty", ""),
               ("edge", random_dna(rng, 300)), ("long2", random_dna(rng, 1200))]
    write_fasta(tmp_path / "in.fa", records)
    monkeypatch.setattr(pp, "BATCH_RECORDS", 2)  # batches that start and end on short records
    stats = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "cut", min_length=300)
    rows = records_table(tmp_path / "cut")
    assert [(r[0], r[1], r[2], r[4]) for r in rows][:3] == [
        ("long1", "900", "3", rows[0][4]), ("short", "299", "0", "too_short"), ("empty", "0", "0", "empty")]
    assert rows[1][3] == "0" and rows[3][4] != "too_short"  # 300 bp is not below --min-length 300
    assert stats.too_short_records == 1 and stats.empty_records == 1 and stats.records == 5
    chunked, frames = outputs(tmp_path / "cut")
    assert not [i for i, _ in chunked if i.startswith("short_")]
    assert not [f for f in frames if f[0].startswith("short_")]
    # The other records are cut exactly as without the filter.
    write_fasta(tmp_path / "rest.fa", [r for r in records if r[0] != "short"])
    preprocess_file(tmp_path / "rest.fa", 300, tmp_path / "all")
    for a, b in zip(outputs(tmp_path / "cut"), outputs(tmp_path / "all")):
        assert a == b


def test_cli_min_length(tmp_path, capsys):
    from virnucpro.cli import main

    write_fasta(tmp_path / "in.fa", [("a", "ATGAAATTTGGG"), ("b", "ATG" * 200)])
    assert main(["preprocess", "--input", str(tmp_path / "in.fa"), "--chunk-length", "300", "--min-length", "100",
                 "--outdir", str(tmp_path / "out")]) == 0
    assert [r[4] for r in records_table(tmp_path / "out")] == ["too_short", "kept"]
    with pytest.raises(SystemExit):
        main(["preprocess", "--input", str(tmp_path / "in.fa"), "--chunk-length", "300", "--min-length", "-1",
              "--outdir", str(tmp_path / "bad")])


def test_gzip_fastq_input_gives_the_same_frames_as_fasta(tmp_path):
    records = _random_records(random.Random(9), 40)
    write_fasta(tmp_path / "in.fa", records)
    with gzip.open(tmp_path / "reads.data", "wt") as fh:  # no telling extension: detected by magic bytes
        for rid, seq in records:
            fh.write(f"@{rid} extra\r\n{seq}\r\n+\r\n{'I' * len(seq)}\r\n")
    preprocess_file(tmp_path / "in.fa", 500, tmp_path / "a")
    preprocess_file(tmp_path / "reads.data", 500, tmp_path / "b")
    for name in OUTPUTS + ("records.tsv",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_short_reads_warn_about_the_chunk_length(tmp_path, caplog):
    write_fasta(tmp_path / "in.fa", [(f"r{i}", "ACGT" * 37 + "AC") for i in range(5)])
    with caplog.at_level(logging.WARNING):
        preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert "median record length 150 bp" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        preprocess_file(GOLDEN / "input.fa", 300, tmp_path / "out2")
    assert "median record length" not in caplog.text


def test_bad_input_leaves_no_output_and_no_temp_dir(tmp_path):
    (tmp_path / "in.fa").write_text(">a\nACGTACGTAAAT\n>b\nACGT\n>a\nACGT\n")
    with pytest.raises(InputError) as err:
        preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert "duplicate record id 'a' (records 1 and 3)" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


def test_existing_outdir_gets_complete_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "chunked.fa").write_text("stale")
    (out / "keep.txt").write_text("unrelated")
    preprocess_file(GOLDEN / "input.fa", 500, out)
    assert (out / "chunked.fa").read_bytes() == (GOLDEN / "expected_500" / "chunked.fa").read_bytes()
    assert (out / "keep.txt").read_text() == "unrelated"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_5_mb_record_streams_in_bounded_memory(tmp_path):
    rng = random.Random(5)
    seq = random_dna(rng, 5_000_000)
    write_fasta(tmp_path / "big.fa", [("big", seq), ("small", "ATGAAA" * 50)], width=80)
    size = (tmp_path / "big.fa").stat().st_size
    tracemalloc.start()
    try:
        stats = preprocess_file(tmp_path / "big.fa", 500, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.chunks == 10_000 + 1
    assert peak < 5 * size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_cli_preprocess_writes_outputs_and_reports_bad_input(tmp_path, capsys):
    from virnucpro.cli import main

    assert main(["preprocess", "--input", str(GOLDEN / "input.fa"), "--chunk-length", "300",
                 "--outdir", str(tmp_path / "o"), "--sample", "S1"]) == 0
    assert (tmp_path / "o" / "identified_protein.faa").read_bytes() == \
        (GOLDEN / "expected_300" / "identified_protein.faa").read_bytes()
    (tmp_path / "bad.fa").write_bytes(b"")
    assert main(["preprocess", "--input", str(tmp_path / "bad.fa"), "--chunk-length", "300",
                 "--outdir", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.strip().endswith("bad.fa: empty file: no sequence records")
    assert not (tmp_path / "o2").exists()


def test_tiny_test_inputs_match_the_golden_records(tmp_path):
    data = ROOT / "tests" / "data"
    preprocess_file(data / "tiny.fa", 500, tmp_path / "fa")
    ids = {f"seq{i}" for i in range(20)}

    def golden(name):
        return [(i, s) for i, s in read_sequences(GOLDEN / "expected_500" / name) if i.split("_chunk_")[0] in ids]

    for name in OUTPUTS:
        assert list(read_sequences(tmp_path / "fa" / name)) == golden(name), name
    stats = preprocess_file(data / "tiny_reads.fq.gz", 300, tmp_path / "fq")
    assert stats.records == 30 and stats.chunks == 30 and stats.median_length == 150


# --- protein input and empty files (issue 15) ---------------------------------------------------------------------

# The fibroin-like repeat: G A S Y V are all nucleotide codes, so only the protein letters around it tell.
FIBROIN = "GAGAGSGAGAGSGAGAGYGAGVGAGAGS" * 30


@pytest.mark.parametrize("letter", list("EFIJLOPQZ*") + ["e", "q"])
def test_a_protein_letter_stops_the_input_naming_file_and_record(tmp_path, letter):
    seq = "ACGTRYSWKMBDHVNU" * 5 + letter + "ACGT" * 10
    (tmp_path / "in.fa").write_text(f">ok\nACGT\n>p1 desc\n{seq}\n")
    with pytest.raises(InputError) as err:
        preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert err.value.path == str(tmp_path / "in.fa")
    assert err.value.problem.startswith(f"record 2 ('p1') looks like a protein sequence, not DNA/RNA: "
                                        f"'{letter}' at position 81")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]  # nothing written


def test_a_real_protein_file_is_refused(tmp_path):
    (tmp_path / "prot.faa").write_text(">fib\n" + "MKVLE" + FIBROIN + "\n")
    with pytest.raises(InputError, match=r"looks like a protein sequence.*letters that are no nucleotide code: E "
                                         r"L\)"):
        preprocess_file(tmp_path / "prot.faa", 300, tmp_path / "out")


def test_iupac_codes_and_u_stay_accepted(tmp_path):
    seq = "ACGTURYSWKMBDHVN" * 40
    (tmp_path / "in.fa").write_text(f">a\n{seq}\n>b\n{seq.lower()}\n")
    stats = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out")
    assert stats.records == 2 and stats.chunks == 2 * 3


def test_a_zero_byte_file_is_an_error_unless_allowed(tmp_path, caplog):
    (tmp_path / "empty.fa").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        preprocess_file(tmp_path / "empty.fa", 300, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with caplog.at_level(logging.WARNING):
        stats = preprocess_file(tmp_path / "empty.fa", 300, tmp_path / "out", sample="S", allow_empty=True)
    assert stats.records == 0
    assert (tmp_path / "out" / "records.tsv").read_text() == RECORDS_HEADER
    assert all((tmp_path / "out" / f).read_bytes() == b"" for f in OUTPUTS)
    assert "holds no records (empty file)" in caplog.text


def test_worker_processes_give_the_same_bytes(tmp_path, monkeypatch):
    import concurrent.futures

    records = _random_records(random.Random(9), 120)
    records[7:7] = [("e1", ""), ("short", "ACGTACGT")]
    records[60:60] = [("long", random_dna(random.Random(10), 5000))]  # a batch of its own, done in this process
    write_fasta(tmp_path / "in.fa", records)
    monkeypatch.setattr(seqio, "_BLOCK_BYTES", 500)
    monkeypatch.setattr(pp, "BATCH_BASES", 900)
    monkeypatch.setattr(pp, "POOL_MAX_BASES", 3000)
    alone = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "one", min_length=20)
    submitted = []
    submit = concurrent.futures.ProcessPoolExecutor.submit
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit",
                        lambda pool, *a: submitted.append(1) or submit(pool, *a))
    pooled = preprocess_file(tmp_path / "in.fa", 300, tmp_path / "two", min_length=20, workers=2)
    assert len(submitted) > 10
    for name in OUTPUTS + ("records.tsv",):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    pooled.outputs = alone.outputs = {}
    assert pooled == alone
    assert alone.frames > 0 and alone.too_short_records > 0 and (alone.empty_records, alone.records) == (1, 123)


def test_bad_input_with_worker_processes_leaves_no_output(tmp_path, monkeypatch):
    records = _random_records(random.Random(11), 60) + [("p", "ACGT" * 20 + "L")]
    write_fasta(tmp_path / "in.fa", records)
    monkeypatch.setattr(seqio, "_BLOCK_BYTES", 500)
    monkeypatch.setattr(pp, "BATCH_BASES", 900)
    with pytest.raises(InputError, match="record 61 \\('p'\\) looks like a protein"):
        preprocess_file(tmp_path / "in.fa", 300, tmp_path / "out", workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


def test_cli_workers_must_be_positive(tmp_path, capsys):
    from virnucpro.cli import main

    assert main(["preprocess", "--input", str(GOLDEN / "input.fa"), "--chunk-length", "300",
                 "--outdir", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "virnucpro: error: --workers: must be at least 1, got 0"
    assert not (tmp_path / "o").exists()
