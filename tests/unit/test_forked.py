"""virnucpro.io.forked: a function in a forked child, its outcome back in the caller; the row ranges that split work
between children (io/blocks.py)."""

import os
import signal

import pytest

from virnucpro.errors import InputError
from virnucpro.io import blocks
from virnucpro.io.forked import Forked, forked_calls


def _write(path, text):
    path.write_text(text)


def _bad_input(path):
    raise InputError(path, "record 3 is 'x' but records.tsv has 'y' there")


def _bug():
    raise KeyError("no such column")


def _killed():
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_child_sees_what_the_caller_holds_and_its_writes_land(tmp_path):
    with Forked(_write, tmp_path / "out.txt", "from the child") as child:
        child.wait()
    assert (tmp_path / "out.txt").read_text() == "from the child"


def test_an_input_error_comes_back_as_the_same_one_line_error(tmp_path):
    with Forked(_bad_input, tmp_path / "reads.fa") as child:
        with pytest.raises(InputError) as caught:
            child.wait()
    assert str(caught.value) == f"{tmp_path / 'reads.fa'}: record 3 is 'x' but records.tsv has 'y' there"
    assert caught.value.exit_code == 2 and caught.value.problem.startswith("record 3")


def test_a_bug_or_a_dead_child_is_an_error_not_a_silent_success():
    with Forked(_bug) as child:
        with pytest.raises(RuntimeError, match="KeyError: 'no such column'"):
            child.wait()
    with Forked(_killed) as child:
        with pytest.raises(RuntimeError, match="status -9"):
            child.wait()


def _square_or_fail(k):
    if k in (2, 3):
        raise InputError(f"part{k}.tsv", "bad line")
    return [k * k] * k  # a value that is pickled back


def test_forked_calls_give_the_values_in_order_or_the_first_failing_calls_error():
    assert forked_calls((_square_or_fail, k) for k in (5, 0, 1, 4)) == [[25] * 5, [], [1], [16] * 4]
    assert forked_calls([]) == []
    with pytest.raises(InputError, match="part2.tsv: bad line"):  # not part3's, though both fail
        forked_calls((_square_or_fail, k) for k in (1, 2, 3))
    with pytest.raises(InputError, match="part3.tsv: bad line"):
        forked_calls((_square_or_fail, k) for k in (3, 2))


@pytest.mark.parametrize("n_rows", [0, 1, 2, 5, 6, 7, 1000])
@pytest.mark.parametrize("parts", [1, 3, 64])
def test_row_ranges_cover_the_rows_in_order_with_no_empty_or_tiny_range(monkeypatch, n_rows, parts):
    monkeypatch.setattr(blocks, "BLOCK_ROWS", 4)  # ranges of at least 2 rows
    ranges = blocks.row_ranges(n_rows, parts)
    assert [k for r in ranges for k in range(n_rows)[r]] == list(range(n_rows))
    assert 1 <= len(ranges) <= max(1, min(parts, n_rows // 2))
    assert len(ranges) == 1 or all(r.stop - r.start >= 2 for r in ranges)
    assert max(r.stop - r.start for r in ranges) - min(r.stop - r.start for r in ranges) <= 1
