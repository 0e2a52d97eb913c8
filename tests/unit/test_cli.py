import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro import __version__
from virnucpro.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_a_module_with_the_command_interface():
    import importlib

    for name in COMMANDS:
        mod = importlib.import_module(f"virnucpro.commands.{name.replace('-', '_')}")
        assert callable(mod.add_arguments) and callable(mod.run), name


@pytest.mark.integration
def test_launcher_runs_the_package():
    out = subprocess.run([str(ROOT / "bin" / "virnucpro"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"virnucpro {__version__}"


@pytest.mark.integration
def test_preprocess_help_does_not_import_torch():
    code = ("import sys; from virnucpro.cli import main\n"
            "try:\n    main(['preprocess', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
