"""Errors a user can cause or fix, each with its exit code.

The command line turns these into one line on stderr and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

import re

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


_SENTENCE_END = re.compile(r"[.!?](?=[\s;]|$)")


def one_line(text: str, limit: int = 300) -> str:
    """A library's message of several lines as one: its lines joined with '; ' (ONNX Runtime
    states the index and the size a dimension should have on the lines after its first,
    which ends 'for the following indices'), then, where longer than limit, cut after the
    last whole sentence that fits (torch's message on a truncated checkpoint ran past 200
    characters and was cut at 'your checkpoint file is'), else at a word, with '...'."""
    text = "; ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit) if m.end() > limit // 3]
    if ends:
        return text[:ends[-1]]
    cut = text[:limit - 3]
    return (cut[:cut.rfind(" ")] if " " in cut else cut).rstrip(" ;,:") + "..."
