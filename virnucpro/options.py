"""The options the commands and the pipeline share: their values, their defaults and how users spell them.

One home: the commands (virnucpro/commands/*.py) and the library import these; nextflow.config's `params` and
nextflow_schema.json repeat them for Nextflow, and tests/unit/test_options.py checks that they agree.

Each option has two spellings, the CLI's (`--checkpoint-every`) and the pipeline's (`--checkpoint_every`). A
message about an option names it the way the user typed it: the pipeline's tasks set VIRNUCPRO_OPTION_STYLE to
`pipeline` (nextflow.config `env`), and `flag(key)` follows it (errors.OptionError uses it).
"""

from __future__ import annotations

import os

CHUNK_LENGTHS = (300, 500)  # the chunk lengths the published classifiers were trained on (MODELS.md §3)
SHORT_READ_FRACTION = 0.75  # warn when the median record is shorter than this fraction of the chunk length
DEFAULT_CHUNK_LENGTH = 500  # the pipeline's; the commands ask for it explicitly
PRECISIONS = ("fp16", "fp32")  # GPU compute precision; the CPU computes in fp32 whatever was asked
DEFAULT_PRECISION = "fp16"
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"  # a leased GPU if any, else the CPU
DEFAULT_CHECKPOINT_EVERY = 10_000  # frames per checkpoint part
DEFAULT_LEASE_DIR = "/tmp/virnucpro-gpu-leases"  # the per-GPU lease lock files
SHARD_TOKENS_AUTO = "auto"  # shard size from the sample's tokens and the GPUs (docs/scaling.md)
DEFAULT_MIN_LENGTH = 0  # bp; 0 keeps every record
DEFAULT_THRESHOLD = 0.5  # virus score at which a record is called viral
DEFAULT_REGION_GAP = 1  # chunks; docs/output.md, "Viral regions", says why

# Where the pipeline spells an option other than as the CLI's flag with `-` for `_`; None: no pipeline parameter.
_PIPELINE_NAMES = {
    "num_gpus": "shard_gpus",
    "token_budget": None,
    "workers": None,
}

OPTION_STYLE_ENV = "VIRNUCPRO_OPTION_STYLE"  # `pipeline`: name options as params (`--checkpoint_every`)


def cli_flag(key: str) -> str:
    """`checkpoint_every` → `--checkpoint-every`."""
    return "--" + key.replace("_", "-")


def pipeline_flag(key: str) -> str | None:
    """`checkpoint_every` → `--checkpoint_every`, `num_gpus` → `--shard_gpus`; None where the pipeline has none."""
    name = _PIPELINE_NAMES.get(key, key)
    return None if name is None else "--" + name


def flag(key: str) -> str:
    """The option as the user spelled it: the pipeline's parameter inside a pipeline task, else the CLI flag."""
    if os.environ.get(OPTION_STYLE_ENV) == "pipeline":
        return pipeline_flag(key) or cli_flag(key)
    return cli_flag(key)


def require_choice(key: str, value, choices) -> None:
    """OptionError unless `value` is one of `choices`."""
    if value not in choices:
        from virnucpro.errors import OptionError

        raise OptionError(key, f"must be one of {', '.join(map(str, choices))}, got {value!r}")


def require_at_least(key: str, value, minimum: int, what: str = "") -> None:
    """OptionError when `value` (None: not given, allowed) is below `minimum`."""
    if value is not None and value < minimum:
        from virnucpro.errors import OptionError

        raise OptionError(key, f"must be at least {minimum}{what}, got {value}")
