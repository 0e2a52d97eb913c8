"""Shared fixtures."""

import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight models in the real formats: .esm_pt, .esm_hf, .dnabert, .classifier (also ["key"])."""
    from virnucpro.models.tiny import write_test_models

    return write_test_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size): an empty tmpfs of `size` (mount's notation: "256k") at tmp_path/name, unmounted after
    the test. Needs root and mount permission: the test is skipped without them."""
    mounted = []

    def mount(name, size):
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        mnt = tmp_path / name
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                              text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
