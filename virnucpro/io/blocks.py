"""Big tab-separated tables read and written a block of rows at a time: a block's lines are split into cells (or
its cells made from slices of the columns, joined and written), so a table of millions of rows is never held
whole as text, nor as a list of its lines or cells. Importing it does not import NumPy (io/frames.py uses it on
the GPU machines' workers)."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, Sequence, TextIO

BLOCK_ROWS = 100_000


def row_blocks(n_rows: int) -> Iterator[slice]:
    """Consecutive slices of BLOCK_ROWS rows covering ``n_rows``."""
    for start in range(0, n_rows, BLOCK_ROWS):
        yield slice(start, start + BLOCK_ROWS)


def row_ranges(n_rows: int, parts: int) -> list[slice]:
    """``n_rows`` cut into at most ``parts`` consecutive slices of nearly equal size, none shorter than half a block
    unless there is only one (a child process per slice is worth its start only for that much work)."""
    parts = max(1, min(parts, n_rows // max(BLOCK_ROWS // 2, 1)))
    bounds = [n_rows * k // parts for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def cell_blocks(fh: TextIO, width: int, first_line: int) -> Iterator[tuple[int, list[str], int, int | None]]:
    """The rest of an open text file read BLOCK_ROWS lines at a time, each block as (number of its first line, the
    cells of its lines before the first one without ``width`` tab-separated fields, row after row, how many lines
    that is, and how many fields that line has: None when every line fits). Reading stops after such a line, so the
    file's first bad line is the first one found. One block's cells are held at a time."""
    line = first_line
    for lines in iter(lambda: list(itertools.islice(fh, BLOCK_ROWS)), []):
        rows = "".join(lines).split("\n")
        if rows[-1] == "":
            rows.pop()
        tabs = list(map(str.count, rows, itertools.repeat("\t")))
        good = len(rows) if tabs.count(width - 1) == len(rows) else next(
            k for k, n in enumerate(tabs) if n != width - 1)
        yield line, "\t".join(rows[:good]).split("\t") if good else [], good, \
            tabs[good] + 1 if good < len(rows) else None
        if good < len(rows):
            return
        line += len(rows)


def write_blocks(fh: TextIO, n_rows: int, block_text: Callable[[slice], str]) -> None:
    """Write ``block_text(rows)`` for each block of rows."""
    for rows in row_blocks(n_rows):
        fh.write(block_text(rows))


def tsv_text(columns: Sequence[Sequence[str]]) -> str:
    """Rows of tab-separated cells, one column of text per field, each row ending in a newline."""
    rows = "\n".join(map("\t".join, zip(*columns)))
    return rows + "\n" if rows or (columns and len(columns[0])) else ""


_SMALL = [str(i) for i in range(1 << 16)]  # counts, read lengths and coordinates are mostly below this


def texts(values: np.ndarray) -> list[str]:
    """str() of each value of a NumPy array of integers; values in [0, 65536) are looked up, not converted (about
    8x cheaper, and the strings are shared)."""
    if len(values) and 0 <= values.min() and values.max() < len(_SMALL):  # a NumPy array
        return list(map(_SMALL.__getitem__, values.tolist()))
    return list(map(str, values.tolist()))


def texts_like(values: np.ndarray, other: np.ndarray, other_texts: list[str], text=repr) -> list[str]:
    """``text`` of each float of ``values``, given ``other_texts``, those of ``other``, which holds the same values
    nearly everywhere (a one-chunk region's mean score is its max): only the values that differ bit for bit are
    converted."""
    import numpy as np

    out = list(other_texts)
    for k in np.flatnonzero(values.view(np.int64) != other.view(np.int64)).tolist():
        out[k] = text(float(values[k]))
    return out
