"""Error messages name the user's files: inside a pipeline task, the staged links' targets."""

from pathlib import Path

from virnucpro.cli import main
from virnucpro.errors import STAGED_INPUTS_ENV, InputError, user_path


def staged_task(tmp_path, monkeypatch):
    """A task dir as Nextflow stages it: input/dup.fa and models/classifier/c.pth link to the user's files."""
    user = tmp_path / "data"
    user.mkdir()
    (user / "dup.fa").write_text(">a\nACGT\n>a\nACGT\n")
    (user / "models").mkdir()
    task = tmp_path / "work" / "ab" / "cdef"
    (task / "input").mkdir(parents=True)
    (task / "models" / "classifier").mkdir(parents=True)
    (task / "input" / "dup.fa").symlink_to(user / "dup.fa")
    (task / "models" / "dnabert").mkdir()
    (task / "models" / "dnabert" / "dn").symlink_to(user / "models", target_is_directory=True)
    monkeypatch.chdir(task)
    monkeypatch.setenv(STAGED_INPUTS_ENV, "1")
    return user


def test_staged_links_are_named_by_their_targets(tmp_path, monkeypatch):
    user = staged_task(tmp_path, monkeypatch)
    assert user_path("input/dup.fa") == str(user / "dup.fa")
    assert user_path(Path("models/dnabert/dn/config.json")) == str(user / "models" / "config.json")
    assert user_path("models/classifier/missing.pth") == "models/classifier/missing.pth"  # no link: as given
    assert user_path("--precision") == "--precision"
    assert InputError("input/dup.fa", "bad").path == str(user / "dup.fa")


def test_outside_a_pipeline_task_paths_are_as_given(tmp_path, monkeypatch):
    staged_task(tmp_path, monkeypatch)
    monkeypatch.delenv(STAGED_INPUTS_ENV)
    assert user_path("input/dup.fa") == "input/dup.fa"


def test_preprocess_error_names_the_users_file(tmp_path, monkeypatch, capsys):
    user = staged_task(tmp_path, monkeypatch)
    assert main(["preprocess", "--input", "input/dup.fa", "--chunk-length", "300", "--outdir", "preprocess"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"virnucpro: error: {user / 'dup.fa'}: duplicate record id 'a' (records 1 and 2)"]
