"""Executors: where cells run. Both run `execute_cell` and hand results back, in the order
they finish, to a callback in the caller's thread.

* `LocalExecutor`: processes on this machine, as many at once as the CPUs allow and as
  the memory allows, judged from measured peaks: the first cell of each kind (same
  settings but the seed) runs alone, and its measured peak (the largest resident memory of
  its process tree, Keras workers included, sampled every 0.2 s) is what each later cell of
  that kind is assumed to need. Peaks measured by earlier runs (sweep.json) count too.
* `RayExecutor`: one Ray task per cell, `num_cpus` per task, the cell's variables in the
  task's runtime_env; the task runs the same subprocess (Ray reuses worker processes, and a
  Keras backend cannot change inside one). Ray is imported only in its methods.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from comparator.errors import FrameworkUnavailable, UsageError
from comparator.sweep.execute import KILL_GRACE_SECONDS, cell_environment, execute_cell

MEMORY_SHARE = 0.9  # of MemAvailable at the start: leave the rest to everything else


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class LocalExecutor:
    name = "local"

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def __init__(self, jobs: int | None = None, known_peaks: dict[str, int] | None = None):
        self.cpus = os.cpu_count() or 1
        self.jobs = jobs
        self.peaks = dict(known_peaks or {})  # Cell.memory_key -> measured peak bytes
        self.memory = available_memory()

    def describe(self) -> str:
        memory = f"{self.memory / 2**30:.1f} GiB available" if self.memory else "memory unknown"
        width = (f"at most {self.jobs} cells at once" if self.jobs else
                 "cells at once from the CPUs and the measured peak memory of each kind of cell")
        return f"local: {self.cpus} CPUs, {memory}, {width}"

    def _has_cpus(self, cell, running: dict) -> bool:
        if self.jobs:
            return len(running) < self.jobs
        return sum(c.cpus for c in running.values()) + cell.cpus <= self.cpus

    def _can_start(self, cell, running: dict) -> bool:
        if not running:
            return True  # alone, a cell always runs (and measures what its kind needs)
        if not self._has_cpus(cell, running) or self.memory is None:
            return False
        keys = [c.memory_key for c in running.values()] + [cell.memory_key]
        if any(key not in self.peaks for key in keys):
            return False  # not measured yet: that cell runs alone
        return sum(self.peaks[k] for k in keys) <= self.memory * MEMORY_SHARE

    def run(self, cells, on_result, stop: threading.Event) -> None:
        pending = list(cells)
        running: dict = {}
        finished: queue.Queue = queue.Queue()
        width = self.jobs or self.cpus
        with ThreadPoolExecutor(max_workers=max(1, width)) as pool:
            try:
                while (pending or running) and not stop.is_set():
                    while pending and self._can_start(pending[0], running):
                        cell = pending.pop(0)
                        running[cell.id] = cell
                        future = pool.submit(execute_cell, cell.argv,
                                             cell_environment(cell.cpus), stop)
                        future.add_done_callback(lambda f, c=cell: finished.put((c, f)))
                    try:
                        cell, future = finished.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    del running[cell.id]
                    result = future.result()
                    self.peaks[cell.memory_key] = max(self.peaks.get(cell.memory_key, 0),
                                                 result["peak_rss_bytes"])
                    on_result(cell, result)
            finally:
                stop.set()  # every running cell's process group is ended by execute_cell


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, cpus: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise FrameworkUnavailable("the ray executor needs Ray: pip install -e '.[sweep]'"
                                       ) from None
        self.address = address
        self.cpus = cpus or os.cpu_count() or 1

    def describe(self) -> str:
        return (f"ray: cluster at {self.address}" if self.address else
                f"ray: local instance with {self.cpus} CPUs")

    def __enter__(self):
        """Join the cluster or start the local instance before anything is written."""
        self.ray = self._start()
        return self

    def __exit__(self, *_exc):
        self.ray.shutdown()  # from a cluster: disconnects; a local instance: stops it
        return False

    def _start(self):
        import ray

        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise UsageError(f"--ray-address {self.address}: {exc}") from None
        else:
            # Reports come back as task results (tens of kB): a small object store will do.
            ray.init(num_cpus=self.cpus, include_dashboard=False, log_to_driver=False,
                     object_store_memory=128 * 2**20, logging_level=logging.WARNING)
        return ray

    def run(self, cells, on_result, stop: threading.Event) -> None:
        ray = self.ray
        try:
            task = ray.remote(max_retries=0)(execute_cell)
            refs = {}
            for cell in cells:
                env = cell_environment(cell.cpus)
                ref = task.options(num_cpus=cell.cpus,
                                   runtime_env={"env_vars": env}).remote(cell.argv, env)
                refs[ref] = cell
            while refs and not stop.is_set():
                done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                for ref in done:
                    cell = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the task itself failed (worker died, ...)
                        result = {"returncode": None, "report": None,
                                  "stderr_tail": f"Ray task failed: {type(exc).__name__}: "
                                                 f"{str(exc).strip()[-500:]}",
                                  "seconds": None, "peak_rss_bytes": 0}
                    on_result(cell, result)
        finally:
            self._cancel(ray, list(locals().get("refs", {})))

    @staticmethod
    def _cancel(ray, refs) -> None:
        """Cancelled tasks get a KeyboardInterrupt and end their cell's process group; wait
        for that before the local instance goes, or the cells would outlive it."""
        for ref in refs:
            ray.cancel(ref)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=KILL_GRACE_SECONDS + 5)
