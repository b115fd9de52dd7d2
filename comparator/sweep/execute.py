"""Running one cell: a `compare.py` process, its peak memory, its report or its failure.

This function is what both executors run (the local pool in a thread, Ray in a task), so a
cell's numbers do not depend on where it ran. It returns plain data, the report's text
included, so a Ray task on another machine hands everything back to the driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

POLL_SECONDS = 0.2
STDERR_TAIL_CHARS = 1500
KILL_GRACE_SECONDS = 5.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def project_root() -> str:
    import comparator

    return os.path.dirname(os.path.dirname(os.path.abspath(comparator.__file__)))


def cell_environment(cpus: int) -> dict[str, str]:
    """Variables a cell's process gets: where the code is, and its share of the CPUs (the
    same in every executor, so that thread counts cannot make their numbers differ)."""
    threads = str(cpus)
    return {"PYTHONPATH": project_root(), "KERAS_BACKEND": "torch",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads}


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants now (0 where /proc is absent)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue
        stack += _children(current)
    return total


def _stop(process: subprocess.Popen) -> None:
    """End the cell's whole process group (its Keras workers included)."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: str) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - STDERR_TAIL_CHARS))
        return handle.read().decode(errors="replace").strip()


def execute_cell(argv, env: dict, cancel: threading.Event | None = None,
                 python: str | None = None) -> dict:
    """Run `compare.py argv --json ...` to the end; never raises for the cell's own failure.

    Returns {"returncode", "report" (JSON text or None), "stderr_tail", "seconds",
    "peak_rss_bytes", "host"}. `peak_rss_bytes` is the largest sum of resident memory of
    the cell's process tree seen every POLL_SECONDS, or the kernel's peak of its largest
    process when that is higher.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xframe-cell-") as scratch:
        report_path = os.path.join(scratch, "report.json")
        stderr_path = os.path.join(scratch, "stderr.txt")
        command = [python or sys.executable, "-m", "comparator.sweep.cell", *argv,
                   "--json", report_path, "--quiet"]
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                       env={**os.environ, **env}, start_new_session=True)
        peak, cancelled = 0, False
        try:
            while process.poll() is None:
                peak = max(peak, tree_rss(process.pid))
                if cancel is not None and cancel.wait(POLL_SECONDS):
                    cancelled = True
                    break
                if cancel is None:
                    time.sleep(POLL_SECONDS)
        finally:  # Ctrl-C, a Ray cancellation, or `cancel`: no orphaned cell survives
            if process.poll() is None:
                _stop(process)
        report = None
        if os.path.exists(report_path) and not cancelled:
            with open(report_path) as handle:
                report = handle.read()
        return {"returncode": process.returncode, "report": report,
                "stderr_tail": _tail(stderr_path), "seconds": time.monotonic() - started,
                "peak_rss_bytes": peak, "host": os.uname().nodename,
                "cancelled": cancelled}
