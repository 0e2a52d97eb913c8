import sys

from virnucpro.cli import main

# Third-party packages the commands import; without them the task fails with one line saying how to get them.
_REQUIRED = {"numpy", "torch", "transformers", "tokenizers", "safetensors", "multiqc"}

try:
    sys.exit(main())
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] not in _REQUIRED:
        raise
    sys.exit(f"virnucpro: error: Python package '{exc.name}' not found by {sys.executable}: run `make install` in "
             "the pipeline's folder (a venv with every pinned package), or run the pipeline in its container with "
             "-profile docker, podman, singularity or apptainer (docs/install.md)")
