"""What every command line shares: the one-line argument error and the exit codes."""

from __future__ import annotations

import argparse

EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit 2 (bad input),
    not argparse's usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())
