"""Publishing a finished result folder into --outdir as one unit: it is there complete, or not at all.

Nextflow's publishDir copies a task's files one at a time, in parallel, and a full disk or a killed run leaves a
folder holding some of them. The pipeline instead hands each finished unit (a sample's folder, the report folder)
to ``publish_folder``: every file is placed in a hidden folder beside the destination (``.<name>.publishing-*``),
flushed to disk, and the hidden folder then takes the destination's place by renames on one file system. Any
failure removes the hidden folder and leaves the destination as it was: an earlier complete publication, or
nothing. docs/output.md explains the choice.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Mapping

from virnucpro.errors import OutputError

# The publishDir modes the pipeline accepts (nextflow_schema.json). "move" copies: the task's files stay in the
# work dir, where -resume needs them. "copyNoFollow" copies too: staged links would point into the work dir.
MODES = ("copy", "copyNoFollow", "move", "link", "symlink", "rellink")
_PUBLISHING = ".publishing-"
_REPLACED = ".replaced-"


def _check_names(files: Mapping[str, os.PathLike]) -> None:
    for name in files:
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts or name != str(rel):
            raise ValueError(f"not a plain relative file name: {name!r}")


def _place(source: Path, target: Path, mode: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    real = source.resolve(strict=True)
    if mode == "symlink":
        os.symlink(real, target)
    elif mode == "rellink":
        os.symlink(os.path.relpath(real, target.parent.resolve()), target)
    else:
        if mode == "link":
            try:
                os.link(real, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
        shutil.copyfile(real, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _up_to_date(files: Mapping[str, os.PathLike], dest: Path, mode: str) -> bool:
    """Whether ``dest`` already is this publication: exactly these names, each placed from its source after the
    source was last written (what a resumed run finds for every task it reused). Then nothing is copied again."""
    if not dest.is_dir() or dest.is_symlink():
        return False
    present = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink()}
    if present != set(files):
        return False
    for name, source in files.items():
        target, real = dest / name, Path(source).resolve()
        try:
            if mode in ("symlink", "rellink"):
                if not target.is_symlink() or target.resolve() != real:
                    return False
            elif not (target.samefile(real) or (target.stat().st_size == real.stat().st_size
                                                and target.stat().st_mtime_ns >= real.stat().st_mtime_ns)):
                return False
        except OSError:
            return False
    return True


def remove_leftovers(dest: Path) -> None:
    """Hidden folders an earlier, killed publication of ``dest`` left behind (one publisher per destination at a
    time: the pipeline publishes each sample once per run)."""
    if not dest.parent.is_dir():
        return
    for p in dest.parent.iterdir():
        if p.name.startswith((f".{dest.name}{_PUBLISHING}", f".{dest.name}{_REPLACED}")):
            shutil.rmtree(p, ignore_errors=True)


def publish_folder(files: Mapping[str, os.PathLike], dest: str | os.PathLike, mode: str = "copy") -> Path:
    """Make ``dest`` a folder holding exactly ``files`` (relative name -> source file), all at once.

    A ``dest`` that already holds this publication (same names, copied after their sources were written) is left
    alone, so a resumed run copies only what changed. Raises OutputError naming ``dest``, the file being written
    and the cause (e.g. "No space left on device"); ``dest`` is then unchanged."""
    if mode not in MODES:
        raise ValueError(f"unknown publish mode {mode!r}")
    _check_names(files)
    dest = Path(dest).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(dest)
    if _up_to_date(files, dest, mode):
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_PUBLISHING}", dir=dest.parent))
    current = None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it private; the published folder should look like mkdir's
        for name, source in sorted(files.items()):
            current = name
            _place(Path(source), tmp / name, mode)
        current = None
        for d in sorted({(tmp / n).parent for n in files} | {tmp}, key=lambda p: -len(p.parts)):
            _fsync_dir(d)
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_REPLACED}", dir=dest.parent))
            os.rename(dest, old / dest.name)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        where = f" while writing {current}" if current else ""
        cause = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT and current:
            cause = f"source file missing ({files[current]})"
        raise OutputError(dest, f"{cause}{where}; nothing of {dest.name}/ was published (it is as it was before "
                          "this run); fix the cause (free space), then re-run with -resume") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
