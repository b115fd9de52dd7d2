"""The sweep's progress on stderr: cells done, reused, failed, and the time left.

On a terminal a live bar; elsewhere (CI logs) one line per finished cell.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def sweep_progress(console: Console, total: int):
    counts = {"done": 0, "reused": 0, "failed": 0}
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} cells"), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    live = console.is_terminal
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False, disable=not live) as progress:
        task = progress.add_task("sweep", total=total)

        def update(cell, entry: dict) -> None:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
            description = (f"done {counts['done']}, reused {counts['reused']}, "
                           f"failed {counts['failed']}")
            progress.update(task, advance=1, description=description)
            if not live and cell is not None:
                finished = sum(counts.values())
                elapsed = time.monotonic() - started
                fresh = max(1, finished - counts["reused"])
                left = (total - finished) * elapsed / fresh
                reason = f": {entry['reason'][:200]}" if entry.get("reason") else ""
                console.print(f"[{finished}/{total}] {entry['id']} {entry['status']} "
                              f"({entry.get('seconds') or 0:.1f} s; {description}; about "
                              f"{left:.0f} s left){reason}", highlight=False, markup=False,
                              soft_wrap=True)
        yield update
