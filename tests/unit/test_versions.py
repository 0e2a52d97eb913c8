"""`virnucpro --versions` reads the versions from the packages' sources: the same strings as importing them
gives (local build tags included), without the 10-15 s of importing torch and transformers."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.cli import VERSIONED, _source_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", VERSIONED)
def test_source_version_is_the_imported_one(package):
    assert _source_version(package) == importlib.import_module(package).__version__


@pytest.mark.integration
def test_versions_imports_none_of_the_heavy_packages():
    code = ("import sys\nfrom virnucpro.cli import main\ntry:\n    main(['--versions'])\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "IMPORTED []" in out
    assert f"torch: {_source_version('torch')}" in out


def test_a_package_without_a_literal_version_gives_none(tmp_path, monkeypatch):
    pkg = tmp_path / "computed_version_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '.'.join(['1', '2'])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _source_version("computed_version_pkg") is None  # not a literal: the caller imports it instead
    assert _source_version("json") == importlib.import_module("json").__version__
