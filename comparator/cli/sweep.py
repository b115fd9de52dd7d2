"""`sweep.py SPEC.toml --out DIR`: argument parsing, the sweep, the summary, an exit code."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from comparator.cli.common import (EXIT_INTERRUPTED, OneLineParser, guarded,
                                   keep_interrupts_from_being_lost, print_safely)
from comparator.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

PROG = "sweep.py"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=(
        "Run the comparisons a spec lists (the product of its axes), each in its own "
        "process, locally or on a Ray cluster; index them in DIR/sweep.json and summarise "
        "the behaviours in DIR/summary.{json,md,html}. A second run reuses finished cells."))
    parser.add_argument("spec", help="the sweep spec, a TOML file with a [sweep] table")
    parser.add_argument("--out", required=True, metavar="DIR", help="where cells and the "
                        "summary go (created; reused cells are read from here)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local (default): processes on this machine; ray: Ray tasks "
                             "(pip install -e '.[sweep]')")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="join a running Ray cluster ('auto' or host:port); without it a "
                             "local Ray instance is started and stopped by the sweep")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="at most N cells at once (local; with ray and no address, the "
                             "local instance gets N x cpus_per_cell CPUs). Default: the CPUs, "
                             "limited by the measured memory a cell needs")
    parser.add_argument("--document", metavar="PATH",
                        help="also write the behaviour document (docs/behaviors.md) here")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


def _executor(args, spec, previous):
    from comparator.sweep.executors import LocalExecutor, RayExecutor
    from comparator.sweep.run import known_peaks

    if args.jobs is not None and args.jobs <= 0:
        raise UsageError(f"--jobs must be positive, got {args.jobs}")
    if args.executor == "ray":
        cpus = None
        if args.jobs:
            cpus = args.jobs * max(c.cpus for c in spec.cells)
        return RayExecutor(address=args.ray_address, cpus=cpus)
    if args.ray_address:
        raise UsageError("--ray-address needs --executor ray")
    return LocalExecutor(jobs=args.jobs, known_peaks=known_peaks(previous, spec.cells))


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends a sweep as Ctrl-C does: running cells are stopped, finished ones kept."""
    def handler(_signum, _frame):
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        keep_interrupts_from_being_lost()


def run(args) -> int:
    from rich.console import Console

    from comparator.io import check_writable_dir
    from comparator.sweep.index import load_index
    from comparator.sweep.progress import sweep_progress
    from comparator.sweep.run import run_sweep
    from comparator.sweep.spec import load_spec
    from comparator.sweep.summary import write_summaries

    spec = load_spec(args.spec)
    check_writable_dir(args.out, "--out")
    if args.document:
        from comparator.io import check_writable_file

        check_writable_file(args.document, "--document")
    executor = _executor(args, spec, load_index(args.out))
    console = Console(stderr=True, emoji=False)
    with executor:  # a cluster that cannot be joined is an error before anything is written
        _interrupt_on_sigterm()  # after ray.init, which installs a handler that aborts
        console.print(f"{PROG}: {len(spec.cells)} cells from {args.spec}; "
                      f"{executor.describe()}", highlight=False, markup=False, soft_wrap=True)
        with sweep_progress(console, len(spec.cells)) as progress:
            result = run_sweep(spec, args.out, executor, progress=progress)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    if result.interrupted:
        print(f"{PROG}: interrupted after {result.seconds:.1f} s ({counts}); finished cells "
              f"are kept in {args.out} and reused by the next run", file=sys.stderr)
        return EXIT_INTERRUPTED
    paths = write_summaries(spec, args.out, result.entries)
    if args.document:
        from comparator.sweep.document import write_document

        write_document(spec, args.out, result.entries, args.document)
        paths.append(args.document)
    print_safely(f"{PROG}: {counts} in {result.seconds:.1f} s; wrote {', '.join(paths)}")
    for entry in result.entries:
        if entry["status"] == "failed":
            print(f"{PROG}: cell {entry['id']} failed: {entry['reason']}", file=sys.stderr)
    return EXIT_CHECK_FAILED if result.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(PROG, lambda: run(args), debug=args.debug)
