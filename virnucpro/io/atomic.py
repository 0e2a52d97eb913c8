"""Atomic output: readers see either the old file(s) or the complete new ones, never a partial write.

`atomic_open`: a temp file in the target's directory, flushed and fsynced, given the permissions a plain `open()`
would (mkstemp creates 0600), then renamed over the target. `atomic_output_dir`: a whole set of files written into
a temp directory beside the target, then moved in. On any error the temporary output is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs):
    """`with atomic_open(p) as fh: fh.write(...)` writes `p` atomically; mode is "w" (text) or "wb"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", newline="\n") as fh:
        fh.write(text)


@contextlib.contextmanager
def atomic_output_dir(outdir: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``outdir``; on success its files land in ``outdir``.

    The temporary directory lives in ``outdir``'s parent, so the final move is a rename on one file system. If
    ``outdir`` does not exist the whole directory is renamed into place; if it exists (e.g. a Nextflow task
    directory) each entry is renamed into it (an older entry of the same name is replaced), so no reader ever sees
    a half-written file. On any exception the temporary directory is removed and ``outdir`` is left as it was.
    """
    outdir = Path(outdir).absolute()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".tmp", dir=outdir.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the final directory should look like mkdir's
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if outdir.exists():
            for f in sorted(tmp.iterdir()):
                target = outdir / f.name
                if f.is_dir() and target.is_dir():
                    shutil.rmtree(target)  # a stale output directory of the same name; directories can't be replaced
                os.replace(f, target)
            tmp.rmdir()
        else:
            os.rename(tmp, outdir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
