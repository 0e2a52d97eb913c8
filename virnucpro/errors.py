"""Errors that reach the user as one line naming the file and the problem.

The CLI catches ``VirnucproError`` and prints ``virnucpro: error: <message>`` on stderr, then exits with
``exit_code``. Everything else is a bug and keeps its traceback.
"""

# Exit codes shared by the CLI, the Nextflow modules and conf/base.config.
EXIT_BAD_INPUT = 2
EXIT_RETRYABLE = 75  # GPU out of memory after in-process retries, no free GPU lease: worth a retry


class VirnucproError(Exception):
    exit_code = 1


class InputError(VirnucproError):
    """A user-supplied file (sequences, samplesheet, parameters) is missing or malformed."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelFormatError(InputError):
    """A model path is missing or holds a file of the wrong kind."""


class RetryableError(VirnucproError):
    exit_code = EXIT_RETRYABLE
