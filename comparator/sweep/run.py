"""A sweep from spec to index: reuse what is finished, run the rest, record every cell."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field

from comparator.io import write_atomic
from comparator.sweep.index import (
    FINISHED,
    environment_versions,
    load_index,
    report_path,
    reusable,
    write_index,
)

# compare.py's exit codes that come with a full report: 0 passed, 1 a check failed,
# 4 the referee failed, 6 a Keras worker failed (the report says which runs).
REPORTED_EXITS = (0, 1, 4, 6)


@dataclass
class SweepResult:
    entries: list[dict]
    interrupted: bool = False
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


def _entry(cell, status: str, environment: dict, **extra) -> dict:
    return {"id": cell.id, "status": status,
            "report": os.path.join("cells", f"{cell.id}.json") if status in FINISHED else None,
            "settings": cell.settings, "cpus": cell.cpus, "group": cell.group,
            "environment": environment, "reason": None, **extra}


def _failure_reason(result: dict) -> str:
    code = result.get("returncode")
    if code is not None and code < 0:
        head = f"killed by signal {-code}"
    elif code is None:
        head = "did not run to the end"
    else:
        head = f"compare.py exited with {code}"
    if result.get("report") and code not in REPORTED_EXITS:
        head += " (its report is ignored)"
    tail = (result.get("stderr_tail") or "").strip()
    return f"{head}: {tail}" if tail else head


def _finished(cell, result: dict, out_dir: str, environment: dict) -> dict:
    common = dict(exit_code=result.get("returncode"), seconds=result.get("seconds"),
                  peak_rss_bytes=result.get("peak_rss_bytes"), host=result.get("host"))
    report = result.get("report")
    if report is not None and result.get("returncode") in REPORTED_EXITS:
        try:
            json.loads(report)
        except ValueError:
            return _entry(cell, "failed", environment, **common,
                          reason="compare.py wrote a report that is not JSON")
        write_atomic(report_path(out_dir, cell.id), report)
        return _entry(cell, "done", environment, **common)
    entry = _entry(cell, "failed", environment, **common)
    entry["reason"] = _failure_reason(result)
    return entry


def known_peaks(previous: dict[str, dict], cells) -> dict[str, int]:
    """Peaks measured by earlier runs of these kinds of cell, for the local pool's sizing."""
    peaks: dict[str, int] = {}
    kinds = {c.id: c.memory_key for c in cells}
    for entry in previous.values():
        kind = kinds.get(entry.get("id"))
        if kind and entry.get("peak_rss_bytes") and entry.get("status") in ("done", "reused"):
            peaks[kind] = max(peaks.get(kind, 0), entry["peak_rss_bytes"])
    return peaks


def run_sweep(spec, out_dir: str, executor, progress=None,
              stop: threading.Event | None = None) -> SweepResult:
    """Run every cell that cannot be reused; sweep.json is rewritten after each cell, so an
    interrupted sweep leaves every finished cell usable by the next run."""
    started = time.monotonic()
    stop = stop or threading.Event()
    os.makedirs(os.path.join(out_dir, "cells"), exist_ok=True)
    environment = environment_versions()
    previous = load_index(out_dir)
    entries: dict[str, dict] = {}
    to_run = []
    for cell in spec.cells:
        old = previous.get(cell.id)
        if reusable(old, cell, environment, out_dir):
            entries[cell.id] = {**old, "status": "reused", "group": cell.group}
        else:
            entries[cell.id] = _entry(cell, "skipped", environment,
                                      reason="not run yet")
            to_run.append(cell)
    lock = threading.Lock()

    def save():
        write_index(out_dir, spec.path, list(entries.values()), environment)

    def on_result(cell, result):
        with lock:
            entries[cell.id] = _finished(cell, result, out_dir, environment)
            save()
        if progress:
            progress(cell, entries[cell.id])

    save()
    if progress:
        for entry in entries.values():
            if entry["status"] == "reused":
                progress(None, entry)
    interrupted = False
    try:
        executor.run(to_run, on_result, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with lock:
            for entry in entries.values():
                if entry["status"] == "skipped" and interrupted:
                    entry["reason"] = "the sweep was interrupted before this cell finished"
            save()
    counts: dict[str, int] = {}
    for entry in entries.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return SweepResult(list(entries.values()), interrupted, time.monotonic() - started, counts)
