"""What every command line shares: the one-line argument error and the exit codes."""

from __future__ import annotations

import argparse

EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process TERM ended


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit 2 (bad input),
    not argparse's usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def size_argument(value: str) -> int:
    """An argparse type for --max-memory: '16G', '512M', bytes."""
    from comparator.limits import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, docker stop, systemd, CI runners), unwound like Ctrl-C: children are
    ended and temporary folders removed by the same `finally` blocks."""


def _raise_terminated(_signum, _frame):
    raise Terminated()


def handle_sigterm() -> None:
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)
