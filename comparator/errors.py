"""Errors a user can cause or fix, each with its exit code.

The command line turns these into one line on stderr and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FRAMEWORK_MISSING = 3
EXIT_REFEREE_FAILED = 4
EXIT_WORKER_FAILED = 6  # a Keras worker crashed, hung or answered nonsense; the report says


class ComparatorError(Exception):
    """A failure with a message meant for the user."""

    exit_code = EXIT_USAGE


class UsageError(ComparatorError):
    """Bad input: unknown names, impossible sizes, unwritable paths, bad files."""

    exit_code = EXIT_USAGE


class FrameworkUnavailable(ComparatorError):
    """An optional framework is missing or was imported in an unusable state."""

    exit_code = EXIT_FRAMEWORK_MISSING


class NumericalError(ComparatorError):
    """A model produced NaN or infinite values where a number was needed."""

    exit_code = EXIT_USAGE


class Diverged(NumericalError):
    """A run's loss became NaN or infinite: a finding about that run, not bad input. The
    comparison records it (status "diverged", with the step) and goes on with the others."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step
