"""What a hostile-user case is (tools/hostile.py runs them), the small comparisons every
case runs, and how the processes a case started are found and ended."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def end_processes(pids) -> None:
    """SIGKILL processes this campaign started (found by their TMPDIR), by id."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
