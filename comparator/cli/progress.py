"""A progress display on stderr while a comparison works (silent when not a terminal)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


@contextmanager
def progress_display(console: Console, total: int | None = None):
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("starting", total=total)

        def update(message: str, advance: int = 1, total: int | None = None):
            progress.update(task, description=message, advance=advance,
                            **({"total": total} if total else {}))
        yield update
