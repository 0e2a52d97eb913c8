"""virnucpro.io.forked: a function in a forked child, its outcome back in the caller."""

import os
import signal

import pytest

from virnucpro.errors import InputError
from virnucpro.io.forked import Forked


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
