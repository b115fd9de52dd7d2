"""A measured child process, for the benchmark (tools/bench.py): its wall and CPU time,
exit code and peak memory, and the figures a child program reports about itself."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(argv: list[str]) -> dict:
    """Run a command; its wall time, CPU time, exit code, peak RSS and the sampled peak of
    its process tree's summed RSS.

    `peak_rss_mib` is wait4's ru_maxrss: on Linux the largest single process among the
    child and the descendants it waited for (measured: a child of 300 MB whose own child
    held 800 MB read 813 MB), not their sum. While Keras workers run beside the comparison,
    the machine holds the sum: `tree_peak_rss_mib` samples it (_TreeMemory). ru_maxrss
    never reads below the peak of the process that calls this (Linux hands a starting child
    its parent's high-water mark: a child running `true` read 1037 MiB under a parent that
    had held 1 GiB), so call it from a small process, as scripts/bench.py does (34 MiB
    when it starts them: measured)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        tree = _TreeMemory(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM here: the child goes too
            proc.kill()
            proc.wait()
            raise
        finally:
            tree_peak = tree.stop()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        out.seek(0)
        last_line = (out.read().decode(errors="replace").strip().splitlines() or [""])[-1]
    run = {"wall_seconds": round(wall, 3), "exit_code": proc.returncode,
           # User and system time of the child and of every descendant it waited for (the
           # Keras workers): what the command kept the cores busy with, spinning included.
           "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
           "tree_peak_rss_mib": round(tree_peak, 1),
           "stderr_tail": stderr[-500:] if proc.returncode else ""}
    if last_line.startswith("{"):  # a child that reports its own figures
        run["stdout_json"] = json.loads(last_line)
    return run


class _TreeMemory:
    """The largest summed resident memory (VmRSS) of a process and its descendants, read
    from /proc every `interval` seconds in a thread. A page two processes share (the same
    library file) counts in each, so the sum bounds what they hold from above; a peak
    shorter than the interval can be missed. /proc/PID/status costs about 0.02 ms a read
    (smaps_rollup, which would count shared pages once, 56 ms for a 3.9 GB process: too
    slow to sample without slowing the run)."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in _tree(self.pid)))

    def stop(self) -> float:
        """Stop sampling; the peak in MiB."""
        self._done.set()
        self._thread.join()
        return self.peak_kib / 1024


def _tree(pid: int) -> list[int]:
    """pid and its descendants now (/proc/PID/task/TID/children: a process started by a
    thread is listed under that thread)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError):
                pass
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def print_own_figures(**figures) -> None:
    """For a child program: its figures and its own peak RSS so far, as the last line of
    its output (run_child reads it). The peak is read here, not from wait4: the
    interpreter's teardown raises a process's peak further (measured: by about 120 MiB
    after Keras's fit, 95 MiB after PyTorch's step), which compare.py skips (it ends with
    os._exit) and which is not the passes'."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({**figures, "peak_rss_mib": round(peak, 1)}))


def figures_of(run: dict, who: str) -> dict:
    """The figures a child program printed (print_own_figures); RuntimeError if it failed."""
    if run["exit_code"] != 0 or "stdout_json" not in run:
        tail = (run["stderr_tail"].strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{who} failed: {tail}")
    return run["stdout_json"]
