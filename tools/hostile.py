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
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

DEFAULT_TIMEOUT = 120.0
# Every comparison meant to run is this small one: the machine is shared and has two cores.
TINY = ("tiny_cnn", "--image-size", "32", "--batch-size", "2")
TINY_NO_ONNX = (*TINY, "--no-onnx")
VALIDATE_TINY = ("tiny_cnn", "--image-size", "32")
BENCH_TINY = ("tiny_cnn", "--image-size", "32", "--batch-size", "2", "--output", "b.json")
PAIR = ("--pytorch", "pair.py:torch_net", "--keras", "pair.py:keras_net")
# Environment variables that would change what a case sees (a traceback on purpose, a
# planted worker fault, another cache).
SCRUBBED_ENV = ("XFRAME_DEBUG", "XFRAME_CACHE_DIR", "XFRAME_WORKER_FAULT", "KERAS_BACKEND")


# ----- what a case is ----------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """The folders of one case: `work` is the script's working directory, `tmp` its
    TMPDIR, `base` holds both and the captured stdout.txt and stderr.txt, `campaign` is
    shared by all cases (the cache under XDG_CACHE_HOME, templates)."""

    base: Path
    work: Path
    tmp: Path
    campaign: Path
    env: dict

    def stderr(self) -> str:
        return (self.base / "stderr.txt").read_bytes().decode(errors="replace")


Setup = Callable[[Context], None]
Check = Callable[[Context], "str | None"]  # None: held; else why not


@dataclass(frozen=True)
class SignalPlan:
    """Send `signum` to the script's process (not its group, as `kill PID` does) once
    `after` seconds have passed and `when` (if given) is true; `repeat` times, `gap` apart."""

    signum: int
    after: float = 2.5
    when: Callable[[Context], bool] | None = None
    repeat: int = 1
    gap: float = 0.3


@dataclass(frozen=True)
class Case:
    """One hostile-user case and what "held" means for it.

    Held: the exit code is `expect_code` (a signal death counts as 128 + signal, as a
    shell reports it); no "Traceback" and no terminal escape on stderr; with `one_line`,
    exactly one non-empty stderr line; every pattern of `expect_files` matches a new or
    changed path in the folder and nothing else is new, changed or removed except what
    `may_change` allows; no `xframe-*` entry is left in the case's TMPDIR and no process
    of the case outlives it; and `check`, if given, finds nothing wrong.
    """

    cls: str
    label: str
    script: str
    argv: tuple[str, ...]
    setup: Setup | None = None
    expect_code: int = 2
    one_line: bool = True
    expect_files: tuple[str, ...] = ()
    may_change: tuple[str, ...] = ()
    stdout: str = "file"  # file | closed (>&-) | head (| head -c 10) | gone (reader exited)
    signal: SignalPlan | None = None
    check: Check | None = None
    timeout: float | None = None

    @property
    def name(self) -> str:
        return f"{self.cls}/{self.label}"


@dataclass
class Outcome:
    case: Case
    code: int | None = None  # as a shell reports it; None when it timed out
    raw_returncode: int | None = None
    seconds: float = 0.0
    stderr: str = ""
    files_left: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.reasons

    def first_stderr_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[0] if lines else ""

    def to_dict(self) -> dict:
        return {"class": self.case.cls, "label": self.case.label, "script": self.case.script,
                "argv": list(self.case.argv), "stdout": self.case.stdout,
                "signal": signal.Signals(self.case.signal.signum).name if self.case.signal
                else None, "expected_code": self.case.expect_code, "code": self.code,
                "raw_returncode": self.raw_returncode, "held": self.held,
                "reasons": self.reasons, "first_stderr_line": self.first_stderr_line(),
                "stderr_tail": self.stderr[-2000:], "files_left": self.files_left,
                "seconds": round(self.seconds, 2)}


class SetupFailed(Exception):
    """A case's own setup went wrong: the case is not held, and says it was the setup."""


# ----- setups: files a case finds in its folder ------------------------------------------

def all_of(*setups: Setup) -> Setup:
    def run(ctx: Context) -> None:
        for setup in setups:
            setup(ctx)
    return run


def text_file(name: str, content: str) -> Setup:
    def run(ctx: Context) -> None:
        path = ctx.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return run


def binary_file(name: str, content: bytes) -> Setup:
    def run(ctx: Context) -> None:
        (ctx.work / name).write_bytes(content)
    return run


def folder(name: str) -> Setup:
    return lambda ctx: (ctx.work / name).mkdir(parents=True, exist_ok=True)


def fifo(name: str) -> Setup:
    return lambda ctx: os.mkfifo(ctx.work / name)


def symlink(name: str, target: str) -> Setup:
    return lambda ctx: os.symlink(target, ctx.work / name)


def hard_link(name: str, target: str) -> Setup:
    return lambda ctx: os.link(ctx.work / target, ctx.work / name)


def char_device(name: str) -> Setup:
    """A copy of /dev/null in the case's folder: if a report ever replaced a device, it
    would replace this one, not the machine's."""
    return lambda ctx: os.mknod(ctx.work / name, stat.S_IFCHR | 0o666, os.makedev(1, 3))


def unix_socket(name: str) -> Setup:
    def run(ctx: Context) -> None:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(ctx.work / name))
    return run


def png(name: str, width: int = 40, height: int = 40, mode: str = "RGB",
        truncate_to: float | None = None) -> Setup:
    """A PNG of noise (so that it compresses poorly and a cut loses real data); mode
    "I;16" is a 16-bit greyscale image, "1" a bilevel one that stays small on disk."""
    def run(ctx: Context) -> None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        if mode == "I;16":
            image = Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
        elif mode == "1":
            image = Image.new("1", (width, height))
        else:
            image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        path = ctx.work / name
        image.save(path, format="PNG")
        if truncate_to is not None:
            data = path.read_bytes()
            path.write_bytes(data[:int(len(data) * truncate_to)])
    return run


def npz(name: str, **arrays) -> Setup:
    """An .npz of the given arrays, each given as (shape, dtype, fill)."""
    def run(ctx: Context) -> None:
        import numpy as np

        np.savez(ctx.work / name, **{key: np.full(shape, fill, dtype)
                                     for key, (shape, dtype, fill) in arrays.items()})
    return run


def zip_bomb(name: str, mebibytes: int = 200) -> Setup:
    """A .pth-shaped zip whose one member inflates to `mebibytes` of zeros (a few
    hundred kB on disk)."""
    def run(ctx: Context) -> None:
        import zipfile

        with zipfile.ZipFile(ctx.work / name, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("bomb/data/0", "w", force_zip64=True) as member:
                block = bytes(1 << 20)
                for _ in range(mebibytes):
                    member.write(block)
    return run


def python(code: str) -> Setup:
    """Run `code` with the project's interpreter in the case's folder: the files that need
    torch or Keras to make are made in a process of their own, not in this tool."""
    def run(ctx: Context) -> None:
        done = subprocess.run([sys.executable, "-c", code], cwd=ctx.work, env=ctx.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise SetupFailed(f"setup exited {done.returncode}: {tail[0]}")
    return run


TINY_STATE = ("import torch\n"
              "from adapters.pytorch.models import build_network\n"
              "from comparator.zoo import get_spec\n"
              "state = build_network(get_spec('tiny_cnn')).state_dict()\n")
EVIL = ("import os, pickle\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        "        return (os.system, ('touch PWNED',))\n")
KERAS = "import os\nos.environ['KERAS_BACKEND'] = 'torch'\nimport keras\n"


def torch_state(name: str, transform: str = "v", legacy: bool = False) -> Setup:
    """tiny_cnn's state_dict with every tensor `v` replaced by `transform`."""
    return python(TINY_STATE + f"state = {{k: ({transform}) for k, v in state.items()}}\n"
                  f"torch.save(state, {name!r}"
                  + (", _use_new_zipfile_serialization=False)" if legacy else ")"))


def pair_module(name: str = "pair.py") -> Setup:
    """The tests' own model pair (tests/user_port_models.py), copied into the folder so
    that no case can ever write over the repository's file."""
    def run(ctx: Context) -> None:
        shutil.copy(os.path.join(ROOT, "tests", "user_port_models.py"), ctx.work / name)
    return run


def warm_cache(tamper: Callable[[Path], None]) -> Setup:
    """A cache folder `cache` holding the exports of a finished tiny_cnn run (made once per
    campaign and copied), then tampered with."""
    def run(ctx: Context) -> None:
        template = ctx.campaign / "warm-cache"
        if not template.exists():
            scratch = ctx.campaign / "warm-cache-run"
            scratch.mkdir(exist_ok=True)
            done = subprocess.run([sys.executable, script_path("compare.py"), *TINY,
                                   "--quiet", "--cache-dir", str(template)], cwd=scratch,
                                  env=ctx.env, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                shutil.rmtree(template, ignore_errors=True)
                raise SetupFailed(f"the warm-up run exited {done.returncode}")
        shutil.copytree(template, ctx.work / "cache", symlinks=True)
        tamper(ctx.work / "cache")
    return run


def _entry(cache: Path, pattern: str) -> Path:
    found = sorted(cache.glob(pattern))
    if not found:
        raise SetupFailed(f"no cache entry matches {pattern}")
    return found[0]


PYTORCH_EVAL = "*-pytorch-eval-*.onnx"
WEIGHTS = "weights/*.npz"


def flip_bytes(pattern: str) -> Callable[[Path], None]:
    """Change bytes in the middle of an entry, keeping its length (and the key stored in
    its metadata, which is at the end)."""
    def run(cache: Path) -> None:
        path = _entry(cache, pattern)
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
        path.write_bytes(bytes(data))
    return run


def truncate(pattern: str) -> Callable[[Path], None]:
    def run(cache: Path) -> None:
        path = _entry(cache, pattern)
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    return run


def replace_with(pattern: str, kind: str) -> Callable[[Path], None]:
    """Put a FIFO, a link to /dev/zero, a directory, or nothing where an entry was."""
    def run(cache: Path) -> None:
        path = _entry(cache, pattern)
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            os.symlink("/dev/zero", path)
        elif kind == "directory":
            path.mkdir()
    return run


# ----- checks beyond the generic ones -------------------------------------------------------

def _read_report(ctx: Context, name: str) -> tuple[dict, str | None]:
    """The JSON report and None, or {} and why it cannot be read."""
    try:
        return json.loads((ctx.work / name).read_text()), None
    except (OSError, ValueError) as exc:
        return {}, f"{name} cannot be read ({exc})"


def _values_of(data, key: str):
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(data, dict):
        for name, value in data.items():
            if name == key:
                yield value
            yield from _values_of(value, key)
    elif isinstance(data, list):
        for value in data:
            yield from _values_of(value, key)


def _weights_note(data: dict) -> str:
    return str(data.get("settings", {}).get("weights_cache", ""))


def report_says_rebuilt(entry: str, report: str = "r.json") -> Check:
    """The JSON report says the tampered entry was rebuilt: for an ONNX `entry`, an
    export's `rebuilt` reason (docs/options.md, Outputs); for the calibrated `weights`,
    the weights_cache note ("calibrated; <why>, rebuilt", comparator/inputs/sources.py)."""
    def run(ctx: Context) -> str | None:
        data, unreadable = _read_report(ctx, report)
        if unreadable:
            return unreadable
        if entry == "onnx" and not any(_values_of(data, "rebuilt")):
            return "the report names no rebuilt ONNX export (every `rebuilt` is null)"
        if entry == "weights" and "rebuilt" not in _weights_note(data):
            return (f"the report does not say the weights entry was rebuilt (weights_cache: "
                    f"{_weights_note(data)!r})")
        return None
    return run


def report_says_reused(report: str = "r.json") -> Check:
    """Every ONNX export came from the cache and the calibrated weights too: the control
    that shows a tampered entry is what made the other cases rebuild."""
    def run(ctx: Context) -> str | None:
        data, unreadable = _read_report(ctx, report)
        if unreadable:
            return unreadable
        exported = [value for value in _values_of(data, "cached") if value is not True]
        problems = [f"{len(exported)} ONNX export(s) not taken from the cache"] if exported \
            else []
        if not _weights_note(data).startswith("reused from the cache"):
            problems.append(f"the calibrated weights were not reused (weights_cache: "
                            f"{_weights_note(data)!r})")
        return "; ".join(problems) or None
    return run


def cache_is_clean(ctx: Context) -> str | None:
    """No staging file or folder (dot-named) left in the cache, and no FIFO or link where
    an entry was rebuilt."""
    cache = ctx.work / "cache"
    if not cache.exists():
        return None
    staging = [p.name for p in cache.rglob(".*")]
    irregular = [p.name for p in cache.rglob("*")
                 if p.is_symlink() or not (p.is_file() or p.is_dir())]
    problems = ([f"staging left: {', '.join(staging)}"] if staging else []) + \
        ([f"not regular files: {', '.join(irregular)}"] if irregular else [])
    return f"cache: {'; '.join(problems)}" if problems else None


def last_stderr_line_says(words: str) -> Check:
    """For scripts that show progress on stderr (sweep.py): the closing line says it."""
    def run(ctx: Context) -> str | None:
        lines = [line for line in ctx.stderr().splitlines() if line.strip()]
        if lines and words in lines[-1]:
            return None
        return f"the last stderr line does not say {words!r}"
    return run


def all_checks(*checks: Check) -> Check:
    def run(ctx: Context) -> str | None:
        found = [reason for reason in (check(ctx) for check in checks) if reason]
        return "; ".join(found) or None
    return run


# ----- processes of a case --------------------------------------------------------------------

def script_path(script: str) -> str:
    return os.path.join(ROOT, "scripts", script)


def case_processes(tmp: Path) -> list[tuple[int, str]]:
    """Live processes whose environment carries the case's private TMPDIR: the script and
    everything it started, found even after they were reparented."""
    marker = f"TMPDIR={tmp}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if marker not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        found.append((int(pid), command.strip()))
    return found


def worker_running(ctx: Context) -> bool:
    return any("adapters.keras.worker" in command for _, command in case_processes(ctx.tmp))


def export_staging(ctx: Context) -> bool:
    cache = ctx.work / "cache"
    return cache.is_dir() and any(p.name.startswith(".export-") for p in cache.iterdir())


def bench_child_running(ctx: Context) -> bool:
    return any("compare.py" in command for _, command in case_processes(ctx.tmp))


def _end_processes(pids) -> None:
    """SIGKILL processes this campaign started (found by their TMPDIR), by id."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


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
        _end_processes(pid for pid, _ in alive)
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
        _end_processes(pid for pid, _ in case_processes(tmp))
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


# ----- the cases ------------------------------------------------------------------------------

def refused(cls: str, label: str, script: str, argv, setup: Setup | None = None,
            **extra) -> Case:
    """Bad input: exit 2, one line, nothing written (reports are asked for, so that a
    run that went ahead would show)."""
    return Case(cls, label, script, tuple(argv), setup, **extra)


def finishes(cls: str, label: str, script: str, argv, setup: Setup | None = None,
             report: str = "r.json", **extra) -> Case:
    """Odd but valid input: exit 0 and the report written."""
    return Case(cls, label, script, (*argv, "--json", report), setup, expect_code=0,
                one_line=False, expect_files=(report,), **extra)


def compare_refuses(cls, label, *args, setup=None, base=TINY_NO_ONNX, **extra) -> Case:
    return refused(cls, label, "compare.py", (*base, *args, "--json", "r.json"), setup,
                   **extra)


def validate_refuses(cls, label, *args, setup=None, base=VALIDATE_TINY, **extra) -> Case:
    return refused(cls, label, "validate_port.py", (*base, *args, "--json", "v.json"), setup,
                   **extra)


def bench_refuses(cls, label, *args, setup=None, **extra) -> Case:
    return refused(cls, label, "bench.py", (*BENCH_TINY, *args), setup, **extra)


SWEEP_SPEC = os.path.join(ROOT, "tests", "data", "sweep-tiny.toml")


def number_cases() -> list[Case]:
    c = "numbers"
    cases = [
        compare_refuses(c, "seed-minus-one", "--seed", "-1"),
        compare_refuses(c, "seed-2-pow-32", "--seed", str(2 ** 32)),
        compare_refuses(c, "seed-2-pow-63", "--seed", str(2 ** 63)),
        compare_refuses(c, "seed-not-a-number", "--seed", "zero"),
        compare_refuses(c, "lr-1e308", "--lr", "1e308"),
        compare_refuses(c, "lr-nan", "--lr", "nan"),
        compare_refuses(c, "lr-inf", "--lr", "inf"),
        compare_refuses(c, "lr-minus-one", "--lr", "-1"),
        compare_refuses(c, "lr-zero", "--lr", "0"),
        compare_refuses(c, "lr-1e-50", "--lr", "1e-50"),
        compare_refuses(c, "steps-zero", "--steps", "0"),
        compare_refuses(c, "steps-minus-one", "--steps", "-1"),
        # Nothing caps the step count (README promises no cap): a huge one must still end
        # cleanly when the user gives up.
        Case(c, "steps-huge-ends-on-sigterm", "compare.py",
             (*TINY_NO_ONNX, "--steps", str(10 ** 30), "--json", "r.json"),
             expect_code=EXIT_TERMINATED, signal=SignalPlan(signal.SIGTERM, after=3.0)),
        compare_refuses(c, "batch-size-zero", "--batch-size", "0"),
        compare_refuses(c, "batch-size-minus-one", "--batch-size", "-1"),
        compare_refuses(c, "batch-size-100000-max-memory-4G", "--batch-size", "100000",
                        "--max-memory", "4G"),
        compare_refuses(c, "batch-size-10-pow-12", "--batch-size", str(10 ** 12)),
        compare_refuses(c, "image-size-zero", "--image-size", "0"),
        compare_refuses(c, "image-size-one", "--image-size", "1"),
        compare_refuses(c, "image-size-four", "--image-size", "4"),
        compare_refuses(c, "image-size-100000", "--image-size", "100000"),
        compare_refuses(c, "densenet-image-size-four", "--image-size", "4",
                        base=("densenet121", "--batch-size", "2", "--no-onnx")),
        compare_refuses(c, "targets-1e39", "--scenario", "head", "--images", "a.png",
                        "--targets", "1e39", setup=png("a.png")),
        compare_refuses(c, "targets-nan", "--scenario", "head", "--images", "a.png",
                        "--targets", "nan", setup=png("a.png")),
        compare_refuses(c, "labels-minus-one", "--images", "a.png", "--labels", "-1",
                        setup=png("a.png")),
        compare_refuses(c, "labels-beyond-classes", "--images", "a.png", "--labels", "10",
                        setup=png("a.png")),
        compare_refuses(c, "labels-count-mismatch", "--labels", "1,2,3"),
        compare_refuses(c, "worker-timeout-zero", "--worker-timeout", "0"),
        compare_refuses(c, "worker-timeout-minus-one", "--worker-timeout", "-1"),
        compare_refuses(c, "worker-timeout-nan", "--worker-timeout", "nan"),
        compare_refuses(c, "worker-timeout-1e300", "--worker-timeout", "1e300"),
        compare_refuses(c, "max-memory-garbage", "--max-memory", "lots"),
        compare_refuses(c, "max-memory-zero", "--max-memory", "0"),
        compare_refuses(c, "max-memory-negative", "--max-memory", "-5G"),
        validate_refuses(c, "validate-tolerance-inf", "--tolerance", "inf"),
        validate_refuses(c, "validate-tolerance-nan", "--tolerance", "nan"),
        validate_refuses(c, "validate-tolerance-minus-one", "--tolerance", "-1"),
        validate_refuses(c, "validate-tolerance-one", "--tolerance", "1"),
        validate_refuses(c, "validate-rows-minus-one", "--rows", "-1"),
        validate_refuses(c, "validate-seed-minus-one", "--seed", "-1"),
        validate_refuses(c, "validate-seed-2-pow-32", "--seed", str(2 ** 32)),
        validate_refuses(c, "validate-batch-size-zero", "--batch-size", "0"),
        validate_refuses(c, "validate-batch-size-minus-one", "--batch-size", "-1"),
        validate_refuses(c, "validate-image-size-zero", "--image-size", "0"),
        validate_refuses(c, "validate-image-size-100000", "--image-size", "100000"),
        validate_refuses(c, "validate-max-memory-garbage", "--max-memory", "lots"),
        bench_refuses(c, "bench-batch-size-zero", "--batch-size", "0"),
        bench_refuses(c, "bench-image-size-zero", "--image-size", "0"),
        bench_refuses(c, "bench-image-size-100000", "--image-size", "100000"),
        bench_refuses(c, "bench-runs-zero", "--runs", "0"),
        bench_refuses(c, "bench-runs-minus-one", "--runs", "-1"),
        bench_refuses(c, "bench-frameworks-batch-size-zero", "--frameworks-batch-size", "0"),
        bench_refuses(c, "bench-frameworks-image-size-100000", "--frameworks-image-size",
                      "100000"),
        refused(c, "sweep-jobs-zero", "sweep.py", (SWEEP_SPEC, "--out", "out", "--jobs", "0")),
    ]
    return cases


LONG_NAME = "r" * 300


def output_cases() -> list[Case]:
    c = "outputs"
    afile = text_file("afile", "not a folder\n")
    pair = all_of(pair_module(), npz("batch.npz", x=((2, 3, 8, 8), "float32", 0.5)))
    pair_args = (*PAIR, "--input-shape", "3,8,8")
    return [
        refused(c, "json-300-char-name", "compare.py",
                (*TINY_NO_ONNX, "--json", LONG_NAME + ".json")),
        compare_refuses(c, "markdown-300-char-name", "--markdown", LONG_NAME + ".md"),
        compare_refuses(c, "save-artifacts-300-char-name", "--save-artifacts", LONG_NAME),
        refused(c, "json-under-a-file", "compare.py", (*TINY_NO_ONNX, "--json", "afile/r.json"),
                afile),
        compare_refuses(c, "markdown-under-a-file", "--markdown", "afile/r.md", setup=afile),
        compare_refuses(c, "html-under-a-file", "--html", "afile/r.html", setup=afile),
        compare_refuses(c, "save-artifacts-under-a-file", "--save-artifacts", "afile/art",
                        setup=afile),
        compare_refuses(c, "save-artifacts-is-a-file", "--save-artifacts", "afile", setup=afile),
        compare_refuses(c, "cache-dir-under-a-file", "--cache-dir", "afile/cache", setup=afile),
        compare_refuses(c, "cache-dir-is-a-file", "--cache-dir", "afile", setup=afile),
        compare_refuses(c, "json-and-markdown-same-file", "--markdown", "r.json"),
        compare_refuses(c, "html-and-json-same-file-other-spelling", "--html",
                        "o/../r.json", setup=folder("o")),
        compare_refuses(c, "markdown-hard-link-of-json", "--markdown", "hard.json",
                        setup=all_of(text_file("r.json", "{}"), hard_link("hard.json", "r.json"))),
        refused(c, "json-inside-save-artifacts", "compare.py",
                (*TINY_NO_ONNX, "--json", "art/report.json", "--save-artifacts", "art")),
        compare_refuses(c, "report-over-weights", "--weights", "w.pth", "--markdown", "w.pth",
                        setup=binary_file("w.pth", b"checkpoint bytes")),
        compare_refuses(c, "artifacts-over-weights", "--weights", "art/pytorch_state_dict.pt",
                        "--save-artifacts", "art",
                        setup=all_of(folder("art"), binary_file("art/pytorch_state_dict.pt",
                                                                b"checkpoint bytes"))),
        compare_refuses(c, "report-over-an-image", "--images", "img", "--markdown",
                        "img/a.png", setup=all_of(folder("img"), png("img/a.png"))),
        compare_refuses(c, "report-over-labels", "--images", "a.png", "--labels",
                        "labels.txt", "--markdown", "labels.txt",
                        setup=all_of(png("a.png"), text_file("labels.txt", "1\n"))),
        compare_refuses(c, "report-over-targets", "--scenario", "head", "--images", "a.png",
                        "--targets", "targets.txt", "--html", "targets.txt",
                        setup=all_of(png("a.png"), text_file("targets.txt", "0.5\n"))),
        compare_refuses(c, "report-over-pytorch-spec-file", *pair_args, "--markdown", "pair.py",
                        setup=pair, base=("--no-onnx",)),
        compare_refuses(c, "report-over-inputs-npz", *PAIR, "--inputs", "batch.npz",
                        "--markdown", "batch.npz", setup=pair, base=("--no-onnx",)),
        refused(c, "validate-report-over-pytorch-spec-file", "validate_port.py",
                (*pair_args, "--json", "pair.py"), pair),
        compare_refuses(c, "markdown-is-a-fifo", "--markdown", "pipe", setup=fifo("pipe")),
        compare_refuses(c, "markdown-is-a-symlink", "--markdown", "link.md",
                        setup=all_of(text_file("real.md", "kept\n"),
                                     symlink("link.md", "real.md"))),
        compare_refuses(c, "markdown-is-a-dangling-symlink", "--markdown", "dangling.md",
                        setup=symlink("dangling.md", "nowhere/x.md")),
        compare_refuses(c, "markdown-is-a-character-device", "--markdown", "null",
                        setup=char_device("null")),
        compare_refuses(c, "markdown-is-a-socket", "--markdown", "sock", setup=unix_socket("sock")),
        refused(c, "json-empty-path", "compare.py", (*TINY_NO_ONNX, "--json", "")),
        compare_refuses(c, "markdown-empty-path", "--markdown", ""),
        compare_refuses(c, "save-artifacts-empty-path", "--save-artifacts", ""),
        compare_refuses(c, "cache-dir-empty-path", "--cache-dir", ""),
        refused(c, "json-is-a-directory", "compare.py", (*TINY_NO_ONNX, "--json", "o"),
                folder("o")),
        compare_refuses(c, "markdown-in-missing-folder", "--markdown", "missing/r.md"),
        compare_refuses(c, "html-in-missing-deep-folder", "--html", "missing/deeper/r.html"),
        refused(c, "json-in-missing-folder", "compare.py",
                (*TINY_NO_ONNX, "--json", "missing/r.json")),
        refused(c, "validate-json-in-missing-folder", "validate_port.py",
                (*VALIDATE_TINY, "--json", "missing/v.json")),
        refused(c, "validate-json-is-a-directory", "validate_port.py",
                (*VALIDATE_TINY, "--json", "o"), folder("o")),
        refused(c, "validate-json-is-a-fifo", "validate_port.py",
                (*VALIDATE_TINY, "--json", "pipe"), fifo("pipe")),
        refused(c, "bench-output-in-missing-folder", "bench.py",
                (*BENCH_TINY[:-1], "missing/b.json")),
        refused(c, "bench-output-is-a-directory", "bench.py", (*BENCH_TINY[:-1], "o"),
                folder("o")),
        refused(c, "sweep-out-is-a-file", "sweep.py", (SWEEP_SPEC, "--out", "afile"), afile),
        refused(c, "sweep-out-empty-path", "sweep.py", (SWEEP_SPEC, "--out", "")),
        refused(c, "sweep-document-in-missing-folder", "sweep.py",
                (SWEEP_SPEC, "--out", "out", "--document", "missing/doc.md")),
    ]


def file_cases() -> list[Case]:
    c = "files"
    escaped = "a\nb\x1b[31mred"
    return [
        finishes(c, "png-16-bit", "compare.py", (*TINY_NO_ONNX, "--quiet", "--images", "g.png"),
                 png("g.png", mode="I;16")),
        finishes(c, "float64-state-dict", "compare.py",
                 (*TINY_NO_ONNX, "--quiet", "--weights", "f64.pth"),
                 torch_state("f64.pth", "v.double() if v.is_floating_point() else v")),
        finishes(c, "legacy-pickle-pth", "compare.py",
                 (*TINY_NO_ONNX, "--quiet", "--weights", "legacy.pth"),
                 torch_state("legacy.pth", legacy=True)),
        finishes(c, "image-name-with-newline-and-escape", "compare.py",
                 (*TINY_NO_ONNX, "--quiet", "--images", escaped + ".png"),
                 png(escaped + ".png")),
        compare_refuses(c, "int64-state-dict", "--weights", "i64.pth",
                        setup=torch_state("i64.pth", "v.to(torch.int64)")),
        compare_refuses(c, "bool-state-dict", "--weights", "b.pth",
                        setup=torch_state("b.pth", "v.to(torch.bool)")),
        compare_refuses(c, "state-dict-of-another-model", "--weights", "other.pth",
                        setup=python("import torch\n"
                                     "torch.save({'fc.weight': torch.zeros(3, 3)}, 'other.pth')")),
        compare_refuses(c, "decompression-bomb-png", "--images", "bomb.png",
                        setup=png("bomb.png", 14_000, 14_000, mode="1")),
        compare_refuses(c, "decompression-warning-size-png", "--images", "big.png",
                        setup=png("big.png", 10_000, 10_000, mode="1")),
        compare_refuses(c, "truncated-png", "--images", "cut.png",
                        setup=png("cut.png", 200, 200, truncate_to=0.5)),
        compare_refuses(c, "text-file-as-png", "--images", "text.png",
                        setup=text_file("text.png", "not an image\n")),
        compare_refuses(c, "empty-file-as-image", "--images", "empty.jpg",
                        setup=binary_file("empty.jpg", b"")),
        compare_refuses(c, "empty-image-folder", "--images", "img", setup=folder("img")),
        compare_refuses(c, "image-is-a-fifo", "--images", "pipe.png", setup=fifo("pipe.png")),
        compare_refuses(c, "missing-image", "--images", "nowhere.png"),
        compare_refuses(c, "missing-image-named-with-escapes", "--images",
                        escaped + "-missing.png"),
        compare_refuses(c, "zip-bomb-pth", "--weights", "bomb.pth", setup=zip_bomb("bomb.pth")),
        compare_refuses(c, "malicious-pickle-pth", "--weights", "evil.pth",
                        setup=python(EVIL + "import torch\n"
                                     "torch.save({'w': Evil()}, 'evil.pth')")),
        compare_refuses(c, "malicious-raw-pickle-pth", "--weights", "evil.pth",
                        setup=python(EVIL + "pickle.dump(Evil(), open('evil.pth', 'wb'), "
                                     "protocol=2)")),
        compare_refuses(c, "weights-h5-of-another-model", "--weights", "other.weights.h5",
                        setup=python(KERAS + "m = keras.Sequential([keras.Input((4,)), "
                                     "keras.layers.Dense(3)])\n"
                                     "m.save_weights('other.weights.h5')")),
        compare_refuses(c, "keras-file-of-another-model", "--weights", "other.keras",
                        setup=python(KERAS + "m = keras.Sequential([keras.Input((4,)), "
                                     "keras.layers.Dense(3)])\nm.save('other.keras')")),
        compare_refuses(c, "garbage-safetensors", "--weights", "w.safetensors",
                        setup=binary_file("w.safetensors", b"\xff" * 64)),
        compare_refuses(c, "weights-unknown-extension", "--weights", "w.bin",
                        setup=binary_file("w.bin", b"\0" * 64)),
        compare_refuses(c, "missing-weights", "--weights", "nowhere.pth"),
        compare_refuses(c, "weights-is-a-directory", "--weights", "wdir", setup=folder("wdir")),
        compare_refuses(c, "weights-is-a-fifo", "--weights", "pipe.pth", setup=fifo("pipe.pth")),
        compare_refuses(c, "weights-links-to-dev-zero", "--weights", "zero.pth",
                        setup=symlink("zero.pth", "/dev/zero")),
        compare_refuses(c, "weights-named-with-escapes", "--weights", escaped + ".pth"),
        compare_refuses(c, "labels-file-missing", "--images", "a.png", "--labels",
                        "nowhere.txt", setup=png("a.png")),
        compare_refuses(c, "labels-file-garbage", "--images", "a.png", "--labels",
                        "labels.txt", setup=all_of(png("a.png"),
                                                   text_file("labels.txt", "one\ntwo\n"))),
        compare_refuses(c, "targets-file-with-nan", "--scenario", "head", "--images", "a.png",
                        "--targets", "t.txt",
                        setup=all_of(png("a.png"), text_file("t.txt", "nan\n"))),
        compare_refuses(c, "inputs-npz-without-x", *PAIR, "--inputs", "b.npz", base=("--no-onnx",),
                        setup=all_of(pair_module(), npz("b.npz", y=((2,), "int64", 1)))),
        compare_refuses(c, "inputs-npz-integer-x", *PAIR, "--inputs", "b.npz", base=("--no-onnx",),
                        setup=all_of(pair_module(), npz("b.npz", x=((2, 3, 8, 8), "int64", 1)))),
        compare_refuses(c, "inputs-npz-nan-x", *PAIR, "--inputs", "b.npz", base=("--no-onnx",),
                        setup=all_of(pair_module(),
                                     npz("b.npz", x=((2, 3, 8, 8), "float32", float("nan"))))),
        compare_refuses(c, "inputs-not-an-npz", *PAIR, "--inputs", "b.npz", base=("--no-onnx",),
                        setup=all_of(pair_module(), text_file("b.npz", "not a zip\n"))),
        validate_refuses(c, "validate-inputs-nan-x", *PAIR, "--inputs", "b.npz", base=(),
                         setup=all_of(pair_module(),
                                      npz("b.npz", x=((2, 3, 8, 8), "float32", float("nan"))))),
        compare_refuses(c, "keras-file-refused-by-safe-mode", "--pytorch", "pair.py:torch_net",
                        "--keras", "lambda.keras", "--input-shape", "3,8,8",
                        base=("--no-onnx",), setup=all_of(pair_module(), python(
                            KERAS + "i = keras.Input((8, 8, 3))\n"
                            "o = keras.layers.Lambda(lambda t: t * 2)(i)\n"
                            "keras.Model(i, o).save('lambda.keras')"))),
        compare_refuses(c, "garbage-pt2", "--pytorch", "model.pt2", "--keras",
                        "pair.py:keras_net", "--input-shape", "3,8,8", base=("--no-onnx",),
                        setup=all_of(pair_module(), binary_file("model.pt2", b"garbage"))),
    ]


def model_cases() -> list[Case]:
    c = "models"
    pair = pair_module()
    broken = text_file("broken.py", "def Net(:\n")
    raises = text_file("raises.py", "def make():\n    raise RuntimeError('no model today')\n")
    return [
        refused(c, "unknown-model", "compare.py", ("resnet9000", "--no-onnx")),
        refused(c, "no-model", "compare.py", ("--no-onnx",)),
        refused(c, "model-name-with-escapes", "compare.py", ("tiny\x1b[2J\ncnn", "--no-onnx")),
        compare_refuses(c, "unknown-recipe", "--recipes", "pytorch:nope"),
        compare_refuses(c, "recipe-of-an-absent-framework", "--frameworks", "pytorch",
                        "--recipes", "keras:train"),
        compare_refuses(c, "unknown-framework", "--frameworks", "pytorch,caffe"),
        compare_refuses(c, "framework-without-pytorch", "--frameworks", "keras"),
        compare_refuses(c, "keras-torch-at-99", "--frameworks", "pytorch,keras-torch@99.0.0"),
        compare_refuses(c, "keras-torch-at-banana", "--frameworks", "pytorch,keras-torch@banana"),
        compare_refuses(c, "tf-keras-with-version", "--frameworks", "pytorch,tf-keras@2.15.0"),
        compare_refuses(c, "unknown-preset", "--preset", "nosuch"),
        compare_refuses(c, "unknown-scenario", "--scenario", "segment"),
        compare_refuses(c, "regress-on-an-image-model", "--scenario", "regress"),
        refused(c, "head-on-a-vector-model", "compare.py",
                ("dense_mlp", "--scenario", "head", "--no-onnx", "--json", "r.json")),
        compare_refuses(c, "probabilities-loss-with-head", "--scenario", "head", "--loss",
                        "probabilities"),
        compare_refuses(c, "unknown-device", "--device", "tpu"),
        compare_refuses(c, "cuda-without-a-gpu", "--device", "cuda"),
        compare_refuses(c, "pytorch-spec-missing-file", "--pytorch", "nofile.py:Net",
                        "--keras", "nofile.py:Net", "--input-shape", "3,8,8",
                        base=("--no-onnx",)),
        compare_refuses(c, "pytorch-spec-missing-callable", "--pytorch", "pair.py:Nope",
                        "--keras", "pair.py:keras_net", "--input-shape", "3,8,8",
                        base=("--no-onnx",), setup=pair),
        compare_refuses(c, "specs-swapped", "--pytorch", "pair.py:keras_net", "--keras",
                        "pair.py:torch_net", "--input-shape", "3,8,8", base=("--no-onnx",),
                        setup=pair),
        compare_refuses(c, "spec-with-syntax-error", "--pytorch", "broken.py:Net", "--keras",
                        "pair.py:keras_net", "--input-shape", "3,8,8", base=("--no-onnx",),
                        setup=all_of(pair, broken)),
        compare_refuses(c, "spec-callable-raises", "--pytorch", "raises.py:make", "--keras",
                        "pair.py:keras_net", "--input-shape", "3,8,8", base=("--no-onnx",),
                        setup=all_of(pair, raises)),
        compare_refuses(c, "spec-module-missing", "--pytorch", "no.such.module:Net", "--keras",
                        "pair.py:keras_net", "--input-shape", "3,8,8", base=("--no-onnx",),
                        setup=pair),
        compare_refuses(c, "pytorch-without-keras", "--pytorch", "pair.py:torch_net",
                        "--input-shape", "3,8,8", base=("--no-onnx",), setup=pair),
        compare_refuses(c, "zoo-model-and-pair", *PAIR, "--input-shape", "3,8,8", setup=pair),
        compare_refuses(c, "zoo-model-with-pair-option", "--input-shape", "3,8,8"),
        compare_refuses(c, "pair-with-image-size", *PAIR, "--input-shape", "3,8,8",
                        "--image-size", "32", base=("--no-onnx",), setup=pair),
        compare_refuses(c, "pair-input-shape-garbage", *PAIR, "--input-shape", "3,x,8",
                        base=("--no-onnx",), setup=pair),
        compare_refuses(c, "pair-freeze-unknown-layer", *PAIR, "--input-shape", "3,8,8",
                        "--freeze", "nosuchlayer", base=("--no-onnx",), setup=pair),
        compare_refuses(c, "pair-onnx-missing-file", *PAIR, "--input-shape", "3,8,8",
                        "--onnx", "nowhere.onnx", base=("--no-onnx",), setup=pair),
        refused(c, "validate-without-a-model", "validate_port.py", ("--json", "v.json")),
        validate_refuses(c, "validate-unknown-model", base=("resnet9000",)),
        validate_refuses(c, "validate-model-and-pair", *PAIR, setup=pair),
        validate_refuses(c, "validate-pytorch-only", "--pytorch", "pair.py:torch_net",
                         base=(), setup=pair),
        validate_refuses(c, "validate-pair-with-image-size", *PAIR, "--input-shape", "3,8,8",
                         "--image-size", "32", base=(), setup=pair),
        validate_refuses(c, "validate-pt2-spec", "--pytorch", "model.pt2", "--keras",
                         "pair.py:keras_net", "--input-shape", "3,8,8", base=(),
                         setup=all_of(pair, binary_file("model.pt2", b"garbage"))),
        validate_refuses(c, "validate-naive-on-tiny-cnn", "--naive"),
        validate_refuses(c, "validate-unknown-mode", "--modes", "sideways"),
        refused(c, "bench-unknown-model", "bench.py", ("resnet9000", "--output", "b.json")),
        refused(c, "bench-vector-model", "bench.py", ("dense_mlp", "--output", "b.json")),
        refused(c, "sweep-missing-spec", "sweep.py", ("nowhere.toml", "--out", "out")),
        refused(c, "sweep-spec-is-a-directory", "sweep.py", ("spec", "--out", "out"),
                folder("spec")),
        refused(c, "sweep-spec-not-toml", "sweep.py", ("spec.toml", "--out", "out"),
                text_file("spec.toml", "[sweep\nmodels = \n")),
        refused(c, "sweep-spec-unknown-key", "sweep.py", ("spec.toml", "--out", "out"),
                text_file("spec.toml", "[sweep]\nmodels = ['tiny_cnn']\ncolour = 'red'\n")),
        refused(c, "sweep-spec-unknown-model", "sweep.py", ("spec.toml", "--out", "out"),
                text_file("spec.toml", "[sweep]\nmodels = ['resnet9000']\n")),
    ]


def stdout_cases() -> list[Case]:
    c = "stdout"
    compare_run = (*TINY_NO_ONNX,)
    validate_run = ("tiny_cnn", "--image-size", "32")
    return [
        finishes(c, "compare-stdout-closed", "compare.py", compare_run, stdout="closed"),
        finishes(c, "compare-quiet-stdout-closed", "compare.py", (*compare_run, "--quiet"),
                 stdout="closed"),
        finishes(c, "compare-into-head", "compare.py", compare_run, stdout="head"),
        finishes(c, "compare-into-a-gone-reader", "compare.py", compare_run, stdout="gone"),
        Case(c, "compare-bad-input-stdout-closed", "compare.py",
             (*TINY_NO_ONNX, "--seed", "-1", "--json", "r.json"), stdout="closed"),
        finishes(c, "validate-stdout-closed", "validate_port.py", validate_run,
                 report="v.json", stdout="closed"),
        finishes(c, "validate-into-head", "validate_port.py", validate_run, report="v.json",
                 stdout="head"),
        finishes(c, "validate-into-a-gone-reader", "validate_port.py", validate_run,
                 report="v.json", stdout="gone"),
        Case(c, "compare-help-stdout-closed", "compare.py", ("--help",), expect_code=0,
             one_line=False, stdout="closed"),
        Case(c, "compare-help-into-a-gone-reader", "compare.py", ("--help",), expect_code=0,
             one_line=False, stdout="gone"),
        Case(c, "validate-help-into-a-gone-reader", "validate_port.py", ("--help",),
             expect_code=0, one_line=False, stdout="gone"),
    ]


def signal_cases() -> list[Case]:
    c = "signals"
    endless = (*TINY_NO_ONNX, "--steps", str(10 ** 9), "--json", "r.json", "--markdown", "r.md")
    worker = (*TINY_NO_ONNX, "--frameworks", "pytorch,keras-tensorflow", "--json", "r.json")
    INT, TERM = signal.SIGINT, signal.SIGTERM
    export = (*TINY, "--cache-dir", "cache", "--json", "r.json")
    validate = ("densenet121", "--image-size", "32", "--json", "v.json")
    bench = (*BENCH_TINY,)
    return [
        Case(c, "compare-sigint-at-2.5s", "compare.py", endless, expect_code=EXIT_INTERRUPTED,
             signal=SignalPlan(INT)),
        Case(c, "compare-sigterm-at-2.5s", "compare.py", endless, expect_code=EXIT_TERMINATED,
             signal=SignalPlan(TERM)),
        Case(c, "compare-sigint-while-worker-runs", "compare.py", worker,
             expect_code=EXIT_INTERRUPTED, signal=SignalPlan(INT, 0.5, worker_running)),
        Case(c, "compare-sigterm-while-worker-runs", "compare.py", worker,
             expect_code=EXIT_TERMINATED, signal=SignalPlan(TERM, 0.5, worker_running)),
        Case(c, "compare-double-sigint-while-worker-runs", "compare.py", worker,
             expect_code=EXIT_INTERRUPTED,
             signal=SignalPlan(INT, 0.5, worker_running, repeat=2, gap=0.2)),
        Case(c, "compare-sigterm-during-onnx-export", "compare.py", export,
             expect_code=EXIT_TERMINATED, may_change=("cache", "cache/*"),
             signal=SignalPlan(TERM, 0.0, export_staging), check=cache_is_clean),
        Case(c, "compare-sigint-at-startup", "compare.py", endless,
             expect_code=EXIT_INTERRUPTED, signal=SignalPlan(INT, 0.3)),
        Case(c, "compare-sigterm-at-startup", "compare.py", endless,
             expect_code=EXIT_TERMINATED, signal=SignalPlan(TERM, 0.3)),
        Case(c, "validate-sigint-at-3s", "validate_port.py", validate,
             expect_code=EXIT_INTERRUPTED, signal=SignalPlan(INT, 3.0)),
        # The one line on SIGTERM is compare.py's promise (docs/options.md); validate_port.py
        # documents 0, 1, 2 and 3 only. What every script owes: 143 as a shell reports a
        # TERM, no traceback, no partial report, nothing left behind.
        Case(c, "validate-sigterm-at-3s", "validate_port.py", validate,
             expect_code=EXIT_TERMINATED, one_line=False, signal=SignalPlan(TERM, 3.0)),
        Case(c, "bench-sigint-while-compare-runs", "bench.py", bench,
             expect_code=EXIT_INTERRUPTED, signal=SignalPlan(INT, 1.0, bench_child_running)),
        Case(c, "bench-sigterm-while-compare-runs", "bench.py", bench,
             expect_code=EXIT_TERMINATED, signal=SignalPlan(TERM, 1.0, bench_child_running)),
        # sweep.py shows its progress on stderr: its closing line is the one that counts.
        Case(c, "sweep-sigint-while-cells-run", "sweep.py", (SWEEP_SPEC, "--out", "out"),
             expect_code=EXIT_INTERRUPTED, one_line=False, may_change=("out", "out/*"),
             signal=SignalPlan(INT, 4.0), check=last_stderr_line_says("interrupted")),
        # docs/sweeps.md: "Ctrl-C or SIGTERM stops the running cells" alike; sweep.py gives
        # both 130 (143 is compare.py's documented code).
        Case(c, "sweep-sigterm-while-cells-run", "sweep.py", (SWEEP_SPEC, "--out", "out"),
             expect_code=EXIT_INTERRUPTED, one_line=False, may_change=("out", "out/*"),
             signal=SignalPlan(TERM, 4.0), check=last_stderr_line_says("interrupted")),
    ]


def cache_cases() -> list[Case]:
    c = "cache"

    def tampered(label: str, tamper: Callable[[Path], None], check: Check) -> Case:
        return Case(c, label, "compare.py", (*TINY, "--quiet", "--cache-dir", "cache",
                                             "--json", "r.json"),
                    warm_cache(tamper), expect_code=0, one_line=False,
                    expect_files=("r.json",), may_change=("cache/*",),
                    check=all_checks(check, cache_is_clean))

    def rebuilt(label: str, tamper: Callable[[Path], None]) -> Case:
        entry = "weights" if label.startswith("weights") else "onnx"
        return tampered(label, tamper, report_says_rebuilt(entry))

    digest = PYTORCH_EVAL + ".sha256"
    return [
        tampered("untampered-cache-is-reused", lambda cache: None, report_says_reused()),
        rebuilt("onnx-entry-bytes-flipped", flip_bytes(PYTORCH_EVAL)),
        rebuilt("onnx-entry-truncated", truncate(PYTORCH_EVAL)),
        rebuilt("onnx-entry-is-a-fifo", replace_with(PYTORCH_EVAL, "fifo")),
        rebuilt("onnx-entry-links-to-dev-zero", replace_with(PYTORCH_EVAL, "zero")),
        rebuilt("onnx-entry-is-a-directory", replace_with(PYTORCH_EVAL, "directory")),
        rebuilt("onnx-digest-removed", replace_with(digest, "none")),
        rebuilt("onnx-digest-is-a-fifo", replace_with(digest, "fifo")),
        rebuilt("onnx-digest-links-to-dev-zero", replace_with(digest, "zero")),
        rebuilt("weights-entry-truncated", truncate(WEIGHTS)),
        rebuilt("weights-entry-is-a-fifo", replace_with(WEIGHTS, "fifo")),
    ]


CASE_CLASSES = {"numbers": number_cases, "outputs": output_cases, "files": file_cases,
                "models": model_cases, "stdout": stdout_cases, "signals": signal_cases,
                "cache": cache_cases}


def all_cases() -> list[Case]:
    return [case for make in CASE_CLASSES.values() for case in make()]


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
