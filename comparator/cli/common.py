"""What every command line shares: the one-line argument error and the exit codes."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from comparator.interrupts import Terminated, handled, note
from comparator.io import shown

EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process TERM ended


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit 2 (bad input),
    not argparse's usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def csv(value: str) -> tuple[str, ...]:
    """Comma-separated names; none at all is refused (it would silently mean the default)."""
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"takes comma-separated names, got {value!r}")
    return names


def size_argument(value: str) -> int:
    """An argparse type for --max-memory: '16G', '512M', bytes."""
    from comparator.limits import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _raise_terminated(_signum, _frame):
    note(Terminated)
    raise Terminated()


def _raise_interrupted(_signum, _frame):
    note(KeyboardInterrupt)
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """SIGTERM raises Terminated, and both it and Ctrl-C are noted so that one a framework
    swallows is raised again (comparator.interrupts)."""
    import signal

    handled()
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, _raise_interrupted)
    keep_interrupts_from_being_lost()


def keep_interrupts_from_being_lost() -> None:
    """An interrupt raised while Python runs code it cannot propagate from (a weakref
    callback during garbage collection, a `__del__`) is printed as "Exception ignored" and
    lost, and the run goes on: seen once in 216 hostile cases, a SIGTERM 2.5 s into a run
    of 10**9 steps (2026-11-27). Such an interrupt is sent again instead, silently, so that
    it lands at the next point where it can end the run."""
    previous = sys.unraisablehook
    if getattr(previous, "resends_interrupts", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_type, type) and issubclass(unraisable.exc_type,
                                                                 KeyboardInterrupt):
            import signal
            import threading

            lost = signal.SIGTERM if issubclass(unraisable.exc_type, Terminated) else signal.SIGINT
            # From another thread, a moment later: os.kill here would run the handler at
            # once, inside this hook, where its exception is lost again.
            resend = threading.Timer(0.01, os.kill, (os.getpid(), lost))
            resend.daemon = True
            resend.start()
            return
        previous(unraisable)

    hook.resends_interrupts = True
    sys.unraisablehook = hook


def stdout_is_gone(exc: BaseException) -> bool:
    """A closed (`>&-`) or broken (`| head`) stdout: not a finding, not a bug."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, ValueError):  # print() on a closed sys.stdout
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EBADF)


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
    sys.stdout = None


def print_safely(text: str) -> None:
    """Print to stdout, where a stdout that is closed or whose reader has gone is no error:
    the files are written and the exit code stays the run's."""
    if sys.stdout is None:
        return
    try:
        print(text)
        sys.stdout.flush()
    except (ValueError, OSError) as exc:
        if not stdout_is_gone(exc):
            raise
        silence_stdout()


def guarded(prog: str, run, debug: bool = False) -> int:
    """`run()`'s exit code, with what goes wrong said in one line on stderr: bad input
    and missing frameworks with their own codes, Ctrl-C as 130, a bug as 5 (the traceback
    with `debug` or XFRAME_DEBUG set)."""
    import os
    import sys

    from comparator.errors import ComparatorError

    try:
        return run()
    except ComparatorError as exc:
        print(f"{prog}: error: {shown(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where handle_sigterm() was called
        handled()
        if isinstance(exc, Terminated):
            print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, never an exit code that means a finding
        if debug or os.environ.get("XFRAME_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {shown(exc)} "
              "(rerun with --debug or XFRAME_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
