"""Publishing a result folder as one unit: complete or as it was before, with one line saying what went wrong."""

import errno
import os
import shutil
import time
from pathlib import Path

import pytest

from virnucpro.cli import main
from virnucpro.errors import OutputError
from virnucpro.io import publish
from virnucpro.io.publish import publish_folder


def sources(tmp_path, sizes):
    src = tmp_path / "work"
    src.mkdir()
    files = {}
    for name, size in sizes.items():
        path = src / name.replace("/", "_")
        path.write_bytes(bytes([len(name)]) * size)
        files[name] = path
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_is_published_with_subfolders_and_replaces_the_old_one(tmp_path):
    files = sources(tmp_path, {"S.records.tsv": 10, "preprocess/chunked.fa": 20, "embed/a.embed.json": 5})
    dest = tmp_path / "out" / "S"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an older run")
    publish_folder(files, dest)
    assert tree(dest) == {name: p.read_bytes() for name, p in files.items()}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["S"]  # no hidden folder left


def test_a_failure_leaves_the_destination_as_it_was(tmp_path, monkeypatch):
    files = sources(tmp_path, {"a.tsv": 10, "b.fa": 10, "c.json": 10})
    dest = tmp_path / "out" / "S"
    publish_folder({"a.tsv": files["a.tsv"]}, dest)  # an earlier, complete publication
    before = tree(dest)
    real_copy = shutil.copyfile

    def full_disk_at_b(src, dst, *args, **kwargs):
        if Path(dst).name == "b.fa":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(publish.shutil, "copyfile", full_disk_at_b)
    with pytest.raises(OutputError) as err:
        publish_folder(files, dest)
    assert str(err.value).startswith(f"{dest}: No space left on device while writing b.fa; nothing of S/ was "
                                     "published")
    assert tree(dest) == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["S"]


@pytest.mark.parametrize("mode", ["copy", "link", "symlink"])
def test_an_up_to_date_folder_is_not_copied_again(tmp_path, mode):
    files = sources(tmp_path, {"a.tsv": 3, "sub/b.fa": 4})
    dest = tmp_path / "out" / "S"
    publish_folder(files, dest, mode)
    inode = (dest / "a.tsv").lstat().st_ino
    publish_folder(files, dest, mode)  # a resumed run: same sources
    assert (dest / "a.tsv").lstat().st_ino == inode
    os.utime(files["a.tsv"], ns=(time.time_ns() + 10**9,) * 2)  # the task ran again
    files["a.tsv"].write_bytes(b"new")
    os.utime(files["a.tsv"], ns=(time.time_ns() + 10**9,) * 2)
    publish_folder(files, dest, mode)
    assert (dest / "a.tsv").read_bytes() == b"new"
    publish_folder({"a.tsv": files["a.tsv"]}, dest, mode)  # a file fewer: published again, exactly
    assert tree(dest) == {"a.tsv": b"new"}


def test_leftovers_of_a_killed_publication_are_removed(tmp_path):
    files = sources(tmp_path, {"a.tsv": 3})
    out = tmp_path / "out"
    (out / ".S.publishing-abc").mkdir(parents=True)
    (out / ".S.publishing-abc" / "a.tsv").write_text("half")
    (out / ".T.publishing-xyz").mkdir()  # another destination's: not ours to touch
    publish_folder(files, out / "S")
    assert sorted(p.name for p in out.iterdir()) == [".T.publishing-xyz", "S"]


@pytest.mark.parametrize("mode", ["link", "symlink", "rellink", "move", "copyNoFollow"])
def test_modes(tmp_path, mode):
    files = sources(tmp_path, {"a.tsv": 3, "sub/b.fa": 4})
    dest = tmp_path / "out" / "S"
    publish_folder(files, dest, mode)
    assert tree(dest) == {name: p.read_bytes() for name, p in files.items()}
    assert (dest / "a.tsv").is_symlink() == (mode in ("symlink", "rellink"))
    assert all(p.exists() for p in files.values())  # "move" copies: -resume needs the task's files


def test_names_must_be_plain_relative_paths(tmp_path):
    files = sources(tmp_path, {"a": 1})
    for bad in ("../a", "/a", "a//b", ""):
        with pytest.raises(ValueError):
            publish_folder({bad: files["a"]}, tmp_path / "out" / "S")


def test_cli_reports_a_missing_source_in_one_line(tmp_path, capsys):
    dest = tmp_path / "out" / "S"
    rc = main(["publish", "--dest", str(dest), f"a.tsv={tmp_path / 'nope.tsv'}"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"virnucpro: error: {dest}: source file missing")
    assert not dest.exists()


@pytest.fixture
def small_tmpfs(tmpfs):
    """A 256 KiB tmpfs (needs root and mount permission)."""
    return tmpfs("mnt", "256k")


@pytest.mark.integration
def test_a_real_full_disk_leaves_nothing_and_says_so(tmp_path, small_tmpfs, capsys):
    files = sources(tmp_path, {"small.tsv": 1000, "big.fa": 400_000})
    dest = small_tmpfs / "S"
    rc = main(["publish", "--dest", str(dest)] + [f"{n}={p}" for n, p in files.items()])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"virnucpro: error: {dest}: No space left on device while writing big.fa; nothing of S/ was "
                   "published (it is as it was before this run); fix the cause (free space), then re-run with "
                   "-resume"]
    assert list(small_tmpfs.iterdir()) == []
    del files["big.fa"]
    assert main(["publish", "--dest", str(dest)] + [f"{n}={p}" for n, p in files.items()]) == 0
    assert tree(dest) == {"small.tsv": files["small.tsv"].read_bytes()}
