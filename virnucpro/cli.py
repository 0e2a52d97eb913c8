"""`virnucpro <command>`: one entry point, one module per command under virnucpro.commands.

Each command module defines HELP (one line), add_arguments(parser) and run(args) -> int. Modules are
imported only when their command runs, so `virnucpro preprocess` never imports torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from virnucpro import __version__
from virnucpro.errors import VirnucproError

COMMANDS = {
    "preprocess": "Cut sequences into chunks and keep their stop-free frames.",
    "shard": "Split a sample's frames into token-balanced shards.",
    "embed": "Embed one shard of frames with DNABERT-S and ESM-2.",
    "classify": "Score embedded frames with the VirNucPro classifier.",
    "aggregate": "Merge a sample's shards into its result files.",
    "report": "Write the run's HTML report and MultiQC files.",
    "predict": "Run the whole computation on one machine, without Nextflow.",
    "check-samplesheet": "Validate a samplesheet and list its samples.",
    "pool-mates": "Pool the two mate files of paired reads into one FASTA, mate ids made unique.",
    "publish": "Put a finished result folder into --outdir as one unit (all of it or nothing).",
    "provenance": "Check the models, then record their files (sha256, size, path), precision and chunk length.",
    "check-models": "Check that the model files are readable and fit together (widths, chunk length).",
    "make-test-models": "Write tiny random-weight models in the real file formats.",
}


# Software whose version decides the numbers; `virnucpro --versions` prints them for the pipeline's versions file.
VERSIONED = ("torch", "transformers", "numpy")


class _PrintVersions(argparse.Action):
    """`--versions`: one `name: version` line each.

    Reads each package's __version__ from its source (version.py, else __init__.py) without importing it: it
    carries the local build tag (torch's "+cu130") that the distribution metadata lacks, and importing torch and
    transformers costs 10-15 s per pipeline task. Imports the package only where no literal is found.
    """

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import importlib.metadata
        import platform

        lines = [f"virnucpro: {__version__}", f"python: {platform.python_version()}"]
        for name in VERSIONED:
            try:
                version = _source_version(name) or importlib.import_module(name).__version__
            except ImportError:
                try:
                    version = importlib.metadata.version(name)
                except importlib.metadata.PackageNotFoundError:
                    version = "not installed"
            lines.append(f"{name}: {version}")
        print("\n".join(lines))
        parser.exit()


def _source_version(package: str) -> str | None:
    """`__version__` as a string literal in the package's version.py or __init__.py (directly or through one
    name, as numpy's `__version__ = version`), found without importing the package; None when there is none."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for filename in ("version.py", "__init__.py"):
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        values = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                values[node.targets[0].id] = node.value
        value = values.get("__version__")
        if isinstance(value, ast.Name):
            value = values.get(value.id)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def _module(name: str):
    return importlib.import_module(f"virnucpro.commands.{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["multiqc"]:
        # The MULTIQC step: MultiQC from this same environment (venv or image), which need not be on PATH.
        from multiqc.__main__ import run_multiqc

        sys.argv = ["multiqc", *argv[1:]]
        return run_multiqc()
    parser = argparse.ArgumentParser(prog="virnucpro", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"virnucpro {__version__}")
    parser.add_argument("--versions", action=_PrintVersions,
                        help="print the versions of virnucpro, Python, torch, transformers and numpy, and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Build only the chosen subparser fully: listing them all would import every module.
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _module(name).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(_module(args.command).run(args) or 0)
    except VirnucproError as exc:
        print(f"virnucpro: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full disk is the user's to fix, not a bug: one line saying what and where.
        print(f"virnucpro: error: {exc.filename or 'writing output'}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
