"""How long a Keras worker (adapters.keras.worker) takes to start and to finish, how much memory
it holds, and whether it imports torch, with the code of one checkout or of several in turn.

    python tools/worker_start.py keep DIR COMPARE_ARGS...
        runs scripts/compare.py's comparison with COMPARE_ARGS in this process and keeps each
        worker's request folder, as adapters.keras.client wrote it, in DIR/<framework>
    python tools/worker_start.py time DIR/<framework> [--runs N] [--checkout PATH]...
        starts the worker on a copy of that folder as the client starts it (`python -m
        adapters.keras.worker`, KERAS_BACKEND set, the checkout's root on PYTHONPATH), N times
        per checkout (this one by default), the checkouts taking turns, so that a machine's
        load falls on each alike

Per run it prints the seconds from the start of the process until the worker's model is built
and holds its weights (its start) and until the process ends (every recipe run), its peak
resident memory, and whether torch was imported; then the medians per checkout. One more run
per checkout, under `python -X importtime` and not timed, names the imports that brought
torch in. Measurements: docs/own-models.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_FILES = ("request.json", "weights.npz", "batch.npz")
# The worker's main(), with the moment its model was built and whether torch was imported by
# its end written beside the request (marks.json).
_MARKED_WORKER = r"""
import json, sys, time
from adapters.keras import worker

build, marks = worker._build, {}

def marked(*args):
    built = build(*args)
    marks["built"] = time.time()
    return built

worker._build = marked
code = worker.main(sys.argv[1:])
marks["torch_at_end"] = "torch" in sys.modules
with open(sys.argv[1] + "/marks.json", "w") as handle:
    json.dump(marks, handle)
sys.exit(code)
"""


def keep(folder: str, compare_args: list[str]) -> int:
    """The comparison, each worker's request folder copied into folder/<framework> as the
    client starts that worker."""
    sys.path.insert(0, ROOT)
    from adapters.keras import client
    from comparator.cli.compare import main

    start = client.run_bounded

    def keeping(command, env, timeout):
        directory = command[-1]
        with open(os.path.join(directory, "request.json")) as handle:
            framework = json.load(handle)["framework"]
        kept = os.path.join(folder, framework)
        os.makedirs(kept, exist_ok=True)
        for name in REQUEST_FILES:
            shutil.copy(os.path.join(directory, name), kept)
        return start(command, env, timeout)

    client.run_bounded = keeping
    sys.argv = ["compare.py", *compare_args]
    return main()


def _run(folder: str, checkout: str, importtime: bool = False) -> dict:
    directory = tempfile.mkdtemp(prefix="worker-start-")
    try:
        for name in REQUEST_FILES:
            shutil.copy(os.path.join(folder, name), directory)
        with open(os.path.join(directory, "request.json")) as handle:
            backend = json.load(handle)["backend"]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": checkout}
        env.pop("XFRAME_KERAS_BACKEND", None)
        with tempfile.TemporaryFile("w+") as stderr:
            started = time.time()
            process = subprocess.Popen(
                [sys.executable, *(["-X", "importtime"] if importtime else []), "-c",
                 _MARKED_WORKER, directory], cwd=checkout, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            ended = time.time()
            stderr.seek(0)
            errors = stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the worker failed in {checkout}:\n{errors[-3000:]}")
        with open(os.path.join(directory, "marks.json")) as handle:
            marks = json.load(handle)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {"started": marks["built"] - started, "ended": ended - started,
            "peak_mib": usage.ru_maxrss / 1024, "torch": marks["torch_at_end"],
            "importtime": errors if importtime else ""}


def _chain(importtime: str, module: str = "torch") -> str:
    """The module and the imports above it that brought it in, from -X importtime's lines
    (a module's line follows its own imports' lines, one level less indented)."""
    rows = []
    for line in importtime.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            _, cumulative, name = line.split(":", 1)[1].split("|")
            rows.append((int(cumulative), name.strip(), len(name) - len(name.lstrip())))
    for index, (cumulative, name, depth) in enumerate(rows):
        if name == module:
            chain = [name]
            for _, above, level in rows[index + 1:]:
                if level < depth:
                    chain.append(above)
                    depth = level
            return f"{' <- '.join(chain)} ({cumulative / 1e6:.2f} s under -X importtime)"
    return f"{module} not imported"


def time_starts(folder: str, runs: int, checkouts: list[str]) -> None:
    for checkout in checkouts:
        print(f"{checkout}: {_chain(_run(folder, checkout, importtime=True)['importtime'])}",
              flush=True)
    found = {checkout: [] for checkout in checkouts}
    for index in range(runs):
        for checkout in checkouts:
            run = _run(folder, checkout)
            found[checkout].append(run)
            print(f"  run {index + 1} {checkout}: started {run['started']:.2f} s, ended "
                  f"{run['ended']:.2f} s, peak {run['peak_mib']:.0f} MiB, torch imported "
                  f"{run['torch']}", flush=True)
    for checkout, rows in found.items():
        median = {key: statistics.median(row[key] for row in rows)
                  for key in ("started", "ended", "peak_mib")}
        print(f"median of {runs}, {checkout}: started {median['started']:.2f} s, ended "
              f"{median['ended']:.2f} s, peak {median['peak_mib']:.0f} MiB, torch imported "
              f"{sorted({row['torch'] for row in rows})}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tasks = parser.add_subparsers(dest="task", required=True)
    kept = tasks.add_parser("keep", help="keep the workers' request folders of a comparison")
    kept.add_argument("folder")
    kept.add_argument("compare_args", nargs=argparse.REMAINDER)
    timed = tasks.add_parser("time", help="time workers started on a kept request folder")
    timed.add_argument("folder")
    timed.add_argument("--runs", type=int, default=7)
    timed.add_argument("--checkout", action="append", help="a checkout's root (repeatable); "
                                                           "this one by default")
    args = parser.parse_args(argv)
    if args.task == "keep":
        return keep(args.folder, args.compare_args)
    time_starts(args.folder, args.runs, [os.path.abspath(c) for c in args.checkout or [ROOT]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
