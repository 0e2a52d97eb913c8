"""Errors that reach the user as one line naming the file and the problem.

The CLI catches ``VirnucproError`` and prints ``virnucpro: error: <message>`` on stderr, then exits with
``exit_code``. Everything else is a bug and keeps its traceback.
"""

import os
from pathlib import Path

from virnucpro.options import flag

# Exit codes shared by the CLI, the Nextflow modules and conf/base.config.
EXIT_BAD_INPUT = 2
EXIT_RETRYABLE = 75  # GPU out of memory after in-process retries, no free GPU lease: worth a retry


# Set for every pipeline task by nextflow.config: inputs there are links that Nextflow staged.
STAGED_INPUTS_ENV = "VIRNUCPRO_STAGED_INPUTS"


def user_path(path) -> str:
    """``path`` as the user named it. In a pipeline task an input is a relative link that Nextflow staged
    (``input/dup.fa -> /data/dup.fa``, ``models/classifier/c.pth -> /models/c.pth``): the link's target is the
    user's file, so a message names that, not the task's private name. Anything else is returned as given."""
    text = str(path)
    if not os.environ.get(STAGED_INPUTS_ENV) or os.path.isabs(text):
        return text
    parts = Path(text).parts
    for i in range(1, len(parts) + 1):
        prefix = Path(*parts[:i])
        if prefix.is_symlink():
            target = os.readlink(prefix)
            return str(Path(target, *parts[i:])) if os.path.isabs(target) else text
    return text


class VirnucproError(Exception):
    exit_code = 1


class InputError(VirnucproError):
    """A user-supplied file (sequences, samplesheet, parameters) is missing or malformed."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path, problem: str):
        self.path = user_path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OptionError(InputError):
    """An option's value is not allowed; the message names the option as the user spelled it (options.flag)."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.path = flag(key)
        self.problem = problem
        VirnucproError.__init__(self, f"{self.path}: {problem}")


class OutputError(VirnucproError):
    """A result could not be written (full disk, no permission); ``path`` is where it was to go."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelFormatError(InputError):
    """A model path is missing or holds a file of the wrong kind."""


class RetryableError(VirnucproError):
    exit_code = EXIT_RETRYABLE
