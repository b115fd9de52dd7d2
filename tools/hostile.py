#!/usr/bin/env python
"""A campaign of hostile-user cases against the command lines.

    python tools/hostile.py [--only CLASS[,CLASS...]] [--json PATH] [--timeout SECONDS]
                            [--keep] [--list]

Each case runs one script (compare.py, validate_port.py, bench.py, sweep.py) in a fresh
folder, used as its working directory, with a private TMPDIR, and checks the promise of
README.md and docs/options.md (Exit codes): bad input is one line on stderr, exit 2 and
nothing written; Ctrl-C is 130 and SIGTERM 143, in one line, with workers ended and
temporary folders removed; a closed or broken stdout changes no exit code; a tampered
cache entry is rebuilt and the report says so. No case may leave a traceback, a terminal
escape on stderr, a file the case did not expect, an `xframe-*` folder in its TMPDIR or a
process behind it.

Cases run one at a time (the project's machine has two cores and other users). Progress
goes to stderr, the table to stdout; the exit code is 0 when every case held, 1 otherwise,
2 for bad input to this tool.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from comparator.cli.common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    OneLineParser,
    Terminated,
    handle_sigterm,
)
from comparator.errors import UsageError  # noqa: E402
from comparator.io import check_writable_file, shown, write_atomic  # noqa: E402
from tools.hostile_case import (  # noqa: E402
    DEFAULT_TIMEOUT,
    SCRUBBED_ENV,
    Case,
    Context,
    Outcome,
    SetupFailed,
    SignalPlan,
    case_processes,
    end_processes,
    script_path,
)
from tools.hostile_cases import CASE_CLASSES, all_cases  # noqa: E402


# ----- the folder before and after ----------------------------------------------------------

def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with what it is: a regular file by its size and sha256,
    a link by its target, a FIFO or device by its kind (never opened: a FIFO would hang).
    Python's __pycache__ beside an imported module is not a case's output."""
    entries = {}
    for directory, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            path = os.path.join(directory, name)
            entries[os.path.relpath(path, folder)] = _signature(path)
    return entries


def _signature(path: str) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"link -> {os.readlink(path)}"
    if stat.S_ISDIR(info.st_mode):
        return "directory"
    if not stat.S_ISREG(info.st_mode):
        return f"special {stat.S_IFMT(info.st_mode):o}"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"file {info.st_size} {digest.hexdigest()}"


def changed_paths(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """New, changed and removed paths, each marked."""
    changes = [f"+{p}" for p in after if p not in before]
    changes += [f"~{p}" for p in after if p in before and before[p] != after[p]]
    changes += [f"-{p}" for p in before if p not in after]
    return sorted(changes, key=lambda c: c[1:])


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


# ----- running one case ---------------------------------------------------------------------

def case_env(ctx_tmp: Path, campaign: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    # The cache under XDG_CACHE_HOME is the campaign's, so no case reads or fills the
    # user's own ~/.cache/xframe-compare.
    env.update(PYTHONPATH=ROOT, TMPDIR=str(ctx_tmp), XDG_CACHE_HOME=str(campaign / "xdg-cache"))
    return env


def _stdout_target(case: Case, base: Path):
    """(stdout for Popen, preexec_fn, a reader process or None)."""
    if case.stdout == "closed":
        # `>&-`: fd 1 closed in the child, which DEVNULL is not.
        return subprocess.DEVNULL, lambda: os.close(1), None
    if case.stdout == "head":
        reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL)
        return reader.stdin, None, reader
    if case.stdout == "gone":
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader exited before anything was written
        return write_end, None, None
    return open(base / "stdout.txt", "wb"), None, None


def _launch(case: Case, ctx: Context, base: Path):
    stdout, preexec, reader = _stdout_target(case, base)
    stderr = open(base / "stderr.txt", "wb")
    try:
        process = subprocess.Popen([sys.executable, script_path(case.script), *case.argv],
                                   cwd=ctx.work, env=ctx.env, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, preexec_fn=preexec,
                                   start_new_session=True)
    finally:
        stderr.close()
        if isinstance(stdout, int) and stdout >= 0:
            os.close(stdout)
        elif hasattr(stdout, "close"):
            stdout.close()  # the child holds its own copy; the reader sees EOF at its end
    return process, reader


def _send_signal(process, plan: SignalPlan, ctx: Context, deadline: float) -> str | None:
    """Wait for the plan's moment and signal the process; why it could not, or None."""
    started = time.monotonic()
    while process.poll() is None and time.monotonic() < deadline:
        due = time.monotonic() - started >= plan.after
        if due and (plan.when is None or plan.when(ctx)):
            for i in range(plan.repeat):
                if i:
                    time.sleep(plan.gap)
                if process.poll() is None:
                    process.send_signal(plan.signum)
            return None
        # A condition (an export's staging folder) may last a fraction of a second.
        time.sleep(0.005 if plan.when else 0.02)
    if process.poll() is None:
        return "the moment to send the signal never came"
    return f"the run ended (exit {process.returncode}) before the signal could be sent"


def _wait(process, deadline: float) -> bool:
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: this group is the case's
        process.wait()
        return False


def _leftovers(ctx: Context, grace: float = 10.0) -> list[str]:
    """Processes of the case still alive after `grace` seconds (a worker whose parent
    died ends itself; give it the time), then ended; and xframe-* entries in its TMPDIR."""
    reasons = []
    deadline = time.monotonic() + grace
    alive = case_processes(ctx.tmp)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = case_processes(ctx.tmp)
    if alive:
        reasons.append("processes outlived the run: "
                       + "; ".join(f"{pid} {shown(command[:80])}" for pid, command in alive))
        end_processes(pid for pid, _ in alive)
    left = sorted(n for n in os.listdir(ctx.tmp) if n.startswith("xframe-"))
    if left:
        reasons.append(f"left in TMPDIR: {', '.join(shown(n) for n in left)}")
    return reasons


def judge(case: Case, outcome: Outcome, changes: list[str]) -> list[str]:
    """The generic promises, in the order a reader wants them."""
    reasons = []
    if outcome.code is not None and outcome.code != case.expect_code:
        reasons.append(f"exit {outcome.code}, expected {case.expect_code}")
    if "Traceback" in outcome.stderr:
        reasons.append("a traceback on stderr")
    if "\x1b" in outcome.stderr:
        reasons.append("a terminal escape on stderr")
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if case.one_line and len(lines) != 1:
        reasons.append(f"{len(lines)} stderr lines, expected 1")
    touched = [c[1:] for c in changes if c[0] in "+~"]
    for pattern in case.expect_files:
        if not any(fnmatch.fnmatchcase(path, pattern) for path in touched):
            reasons.append(f"{pattern} was not written")
    unexpected = [c for c in changes if c[0] == "-"
                  or not _matches(c[1:], case.expect_files + case.may_change)]
    if unexpected:
        outcome.files_left = unexpected
        reasons.append(f"files touched: {', '.join(shown(c) for c in unexpected[:6])}"
                       + (f" and {len(unexpected) - 6} more" if len(unexpected) > 6 else ""))
    return reasons


def run_case(case: Case, base: Path, campaign: Path, timeout: float = DEFAULT_TIMEOUT
             ) -> Outcome:
    """Run one case in `base` (created here, left for the caller to remove)."""
    work, tmp = base / "work", base / "tmp"
    work.mkdir(parents=True)
    tmp.mkdir()
    ctx = Context(base, work, tmp, campaign, case_env(tmp, campaign))
    outcome = Outcome(case)
    try:
        if case.setup:
            case.setup(ctx)
    except (SetupFailed, OSError, subprocess.SubprocessError, ImportError) as exc:
        outcome.reasons.append(f"setup failed (the case, not the tool): {shown(exc)}")
        return outcome
    before = snapshot(work)
    started = time.monotonic()
    deadline = started + (case.timeout or timeout)
    process, reader = _launch(case, ctx, base)
    try:
        if case.signal:
            missed = _send_signal(process, case.signal, ctx, deadline)
            if missed:
                outcome.reasons.append(missed)
        finished = _wait(process, deadline)
    except BaseException:  # this tool interrupted: the case's processes go with it
        _wait(process, 0)
        end_processes(pid for pid, _ in case_processes(tmp))
        raise
    finally:
        if reader is not None:
            reader.wait(timeout=30)
    outcome.seconds = time.monotonic() - started
    outcome.stderr = ctx.stderr()
    if finished:
        rc = process.returncode
        outcome.raw_returncode = rc
        outcome.code = rc if rc >= 0 else 128 - rc  # a signal death, as a shell says it
    else:
        outcome.reasons.append(f"timed out after {case.timeout or timeout:.0f} s")
    outcome.reasons += judge(case, outcome, changed_paths(before, snapshot(work)))
    outcome.reasons += _leftovers(ctx)
    if case.check:
        reason = case.check(ctx)
        if reason:
            outcome.reasons.append(reason)
    return outcome


# ----- the campaign ---------------------------------------------------------------------------

def select(cases: list[Case], only: str | None) -> list[Case]:
    """`--only numbers,cache` or `--only numbers/seed-minus-one`; unknown names refused."""
    if not only:
        return cases
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    names = {case.cls for case in cases} | {case.name for case in cases}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UsageError(f"--only: unknown class or case {shown(unknown[0])}; classes: "
                         f"{', '.join(CASE_CLASSES)}")
    return [case for case in cases if case.cls in wanted or case.name in wanted]


def run_campaign(cases: list[Case], timeout: float, keep: bool, say=print) -> list[Outcome]:
    campaign = Path(tempfile.mkdtemp(prefix="hostile-campaign-"))
    outcomes = []
    try:
        for number, case in enumerate(cases, 1):
            base = campaign / f"{number:03d}-{case.cls}"
            outcome = run_case(case, base, campaign, timeout)
            outcomes.append(outcome)
            verdict = "held" if outcome.held else "NOT HELD: " + outcome.reasons[0]
            say(f"[{number}/{len(cases)}] {case.name}: {verdict} ({outcome.seconds:.1f} s)")
            if not keep:
                shutil.rmtree(base, ignore_errors=True)
    finally:
        if keep:
            say(f"case folders kept in {campaign}")
        else:
            shutil.rmtree(campaign, ignore_errors=True)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    classes = list(dict.fromkeys(o.case.cls for o in outcomes))
    rows = [("class", "tried", "held", "not held")]
    for cls in classes + ["all"]:
        mine = [o for o in outcomes if cls in ("all", o.case.cls)]
        held = sum(o.held for o in mine)
        rows.append((cls, str(len(mine)), str(held), str(len(mine) - held)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    failed = [o for o in outcomes if not o.held]
    if failed:
        lines += ["", "not held:"]
    for outcome in failed:
        code = "none (timed out)" if outcome.code is None else outcome.code
        lines.append(f"  {outcome.case.name} ({outcome.case.script}; exit {code}, expected "
                     f"{outcome.case.expect_code}): "
                     + "; ".join(r for r in outcome.reasons if not r.startswith("exit ")))
        first = shown(outcome.first_stderr_line())
        lines.append(f"      first stderr line: {first[:300] if first else '(none)'}")
        if outcome.files_left:
            lines.append(f"      files left: {', '.join(shown(f) for f in outcome.files_left)}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="hostile.py", description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="CLASS[,CLASS...]",
                        help=f"run these classes or class/label cases ({', '.join(CASE_CLASSES)})")
    parser.add_argument("--json", metavar="PATH", help="write every case's result here")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per case (default {DEFAULT_TIMEOUT:.0f}); past it, not held")
    parser.add_argument("--keep", action="store_true", help="keep every case's folder")
    parser.add_argument("--list", action="store_true", help="list the cases, run nothing")
    return parser


def _print(text: str) -> None:
    """The table on stdout; a closed or broken stdout changes no exit code."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError, OSError):
        pass


def _progress(text: str) -> None:
    print(f"hostile.py: {text}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handle_sigterm()
    try:
        if not args.timeout > 0:
            raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        cases = select(all_cases(), args.only)
        if args.list:
            _print("\n".join(f"{case.name}  {case.script} {shown(' '.join(case.argv))}"
                             for case in cases))
            return 0
        if args.json:
            check_writable_file(args.json, "--json")
        outcomes = run_campaign(cases, args.timeout, args.keep, say=_progress)
    except UsageError as exc:
        print(f"hostile.py: error: {shown(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"hostile.py: {'terminated (SIGTERM)' if terminated else 'interrupted'}; the "
              "running case was ended and nothing was written", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    if args.json:
        write_atomic(args.json, json.dumps([o.to_dict() for o in outcomes], indent=2) + "\n")
    _print(table(outcomes))
    return 0 if all(o.held for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
