"""Ctrl-C and SIGTERM end a comparison even where a framework swallows them.

Keras 3.15.1's torch backend works out a layer's output shape inside a bare `except:`
and retries on another device (`symbolic_call` in keras/src/backend/torch/core.py), so a
KeyboardInterrupt raised there is caught and the run goes on: a SIGTERM 2.0 s into a
tiny run (`tools/hostile.py`'s endless run, on a 2-core machine where the first Keras
call was importing sympy) was lost in 5 of 5 tries, 2026-11-27. The command lines'
handlers note the request here before raising; the comparison raises it again at its
own checkpoints (between phases, between train steps) until the command line has
handled it. Nothing is noted when no command line installed the handlers.
"""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, docker stop, systemd, CI runners), unwound like Ctrl-C: children are
    ended and temporary folders removed by the same `finally` blocks."""


_requested: type[KeyboardInterrupt] | None = None


def note(kind: type[KeyboardInterrupt]) -> None:
    global _requested
    _requested = kind


def handled() -> None:
    """The command line has caught the interrupt: nothing is pending any more."""
    global _requested
    _requested = None


def raise_if_requested() -> None:
    """A checkpoint: raise the interrupt a signal asked for, if something swallowed it."""
    if _requested is not None:
        raise _requested()
