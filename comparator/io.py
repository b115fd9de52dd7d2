"""Writing outputs so that a failed or interrupted run leaves nothing half-written.

Every target is checked once, before any work (`check_outputs`): its name, its folder
(by creating a file there, since `os.access` answers yes to root on a read-only folder),
what already stands at the path, and that no two targets, and no target and input, are
the same file. The reports of a run are staged beside their targets and renamed into
place together (`ReportSet`), with SIGINT and SIGTERM held off for the renames.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from contextlib import contextmanager

from comparator.errors import ComparatorError, UsageError

ARTIFACT_FILES = ("batch.npz", "pytorch_state_dict.pt", "pytorch_head_state_dict.pt",
                  "report.json")
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR,
          "a character device"), (stat.S_ISBLK, "a block device"))


def shown(path) -> str:
    """A path as messages print it: control characters (terminal escapes, newlines)
    escaped, so that a message stays one harmless line."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def default_cache_dir() -> str:
    """Where ONNX exports are cached unless --cache-dir says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "xframe-compare", "onnx")


def _kind(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None)


def _nearest_existing(path: str) -> str:
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    return existing


def _check_names(path: str, flag: str) -> None:
    """Each component within the file system's name limit (255 bytes on Linux)."""
    directory = _nearest_existing(os.path.dirname(os.path.abspath(path)) or ".")
    try:
        limit = os.pathconf(directory if os.path.isdir(directory) else "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in os.path.abspath(path).split(os.sep):
        if len(os.fsencode(part)) > limit:
            raise UsageError(f"{flag} {shown(path)}: the name {shown(part[:40])}... is "
                             f"{len(os.fsencode(part))} bytes, more than this file system's "
                             f"{limit}")


def _probe(directory: str, flag: str, path: str) -> None:
    """Create and remove a file in `directory`: the only test that holds for root, ACLs
    and read-only mounts alike."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".xframe-probe-", dir=directory)
    except OSError as exc:
        raise UsageError(f"{flag} {shown(path)}: directory {shown(directory)} is not writable "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_writable_file(path: str, flag: str) -> None:
    """Fail before any work if `path` cannot be written as a regular file."""
    if not path:
        raise UsageError(f"{flag}: empty path")
    _check_names(path, flag)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.islink(path):
        raise UsageError(f"{flag} {shown(path)}: is a symbolic link; give the file it points "
                         "to (a report replaces what is at the path)")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {shown(path)}: is a directory, expected a file path")
    if os.path.exists(path):
        kind = _kind(os.stat(path).st_mode)
        if kind:
            raise UsageError(f"{flag} {shown(path)}: is {kind}, not a regular file; reports "
                             "are written to regular files only")
    if not os.path.isdir(directory):
        existing = _nearest_existing(directory)
        if os.path.isdir(existing):
            raise UsageError(f"{flag} {shown(path)}: directory {shown(directory)} does not "
                             "exist")
        raise UsageError(f"{flag} {shown(path)}: {shown(existing)} is a file, not a directory")
    _probe(directory, flag, path)


def check_writable_dir(path: str, flag: str) -> None:
    """Fail before any work if `path` cannot be (made and) written as a directory."""
    if not path:
        raise UsageError(f"{flag}: empty path")
    _check_names(os.path.join(path, "x"), flag)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {shown(path)}: exists and is not a directory")
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {shown(path)}: {shown(existing)} is a file, not a directory")
    _probe(existing, flag, path)


def _identity(path: str):
    """What a path names: (device, inode) where it exists, else its resolved path."""
    try:
        info = os.stat(path)
        return ("inode", info.st_dev, info.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def why_not_a_file(path: str) -> str:
    """Why an input path that is not a regular file cannot be read, in words."""
    if not os.path.lexists(path):
        return "does not exist"
    if os.path.islink(path) and not os.path.exists(path):
        return "is a broken symbolic link"
    return "is not a regular file (a FIFO, a device or a socket cannot be read as one)"


def check_outputs(files: dict[str, str], directories: dict[str, str],
                  inputs: dict[str, list[str]] | None = None) -> None:
    """The one up-front check of every target: files ({flag: path}, each a regular file),
    directories ({flag: path}: --save-artifacts and the like, whose ARTIFACT_FILES count
    as targets too), and none of them one of the `inputs` ({flag: [paths]})."""
    for flag, path in files.items():
        check_writable_file(path, flag)
    for flag, path in directories.items():
        check_writable_dir(path, flag)
    targets: dict = {}
    named = list(files.items()) + [(f"{flag} ({name})", os.path.join(path, name))
                                   for flag, path in directories.items()
                                   for name in ARTIFACT_FILES]
    for flag, path in named:
        key = _identity(path)
        if key in targets:
            raise UsageError(f"{targets[key]} and {flag} name the same file {shown(path)}; "
                             "each report needs its own path")
        targets[key] = flag
    for flag, paths in (inputs or {}).items():
        for path in paths:
            key = _identity(path)
            if key in targets:
                raise UsageError(f"{targets[key]} {shown(path)} is the input of {flag}; a "
                                 "report must not overwrite an input")


def _creation_mode(path: str) -> int:
    """An existing file keeps its mode; a new one gets 0666 less the umask, as open() would
    give it (mkstemp's 0600 is for secrets, not reports)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stage_file(path: str, data: str | bytes) -> str:
    """Write `data` to a temporary file beside `path` (mode set, flushed to disk); the
    caller renames it into place or removes it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fchmod(handle.fileno(), _creation_mode(path))
            os.fsync(handle.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_atomic(path: str, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    tmp = stage_file(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


@contextmanager
def signals_held():
    """SIGINT and SIGTERM wait until the block ends (a handful of renames)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not the main thread, or no such call
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class PartialWrite(ComparatorError):
    """Renaming the staged set failed midway; the message names what was written."""

    exit_code = 5


class ReportSet:
    """A run's reports written as one unit: `add` stages each file beside its target,
    `commit` renames them all with signals held; leaving the block without a commit
    removes every staged file."""

    def __init__(self):
        self._staged: list[tuple[str, str]] = []  # (temporary, target)
        self._staging_dirs: list[tuple[str, str]] = []  # (staging folder, target folder)
        self.written: list[str] = []

    def __enter__(self):
        return self

    def add(self, path: str, data: str | bytes) -> None:
        self._staged.append((stage_file(path, data), path))

    def directory(self, path: str) -> str:
        """A staging folder whose files will land in `path` (created at commit)."""
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=parent)
        self._staging_dirs.append((staging, path))
        return staging

    def commit(self) -> list[str]:
        with signals_held():
            try:
                for staging, path in self._staging_dirs:
                    os.makedirs(path, exist_ok=True)
                    for name in sorted(os.listdir(staging)):
                        target = os.path.join(path, name)
                        self._staged.append((os.path.join(staging, name), target))
                for tmp, target in self._staged:
                    os.replace(tmp, target)
                    self.written.append(target)
                for directory in {os.path.dirname(os.path.abspath(t)) for t in self.written}:
                    _fsync_directory(directory)
            except OSError as exc:
                done = ", ".join(shown(p) for p in self.written) or "nothing"
                raise PartialWrite(f"writing the reports failed at "
                                   f"{shown(exc.filename or '?')} ({exc.strerror or exc}); "
                                   f"written: {done}") from None
        return list(self.written)

    def __exit__(self, *_exc):
        for tmp, target in self._staged:
            if target not in self.written:
                _remove(tmp)
        for staging, _ in self._staging_dirs:
            shutil.rmtree(staging, ignore_errors=True)
        return False


@contextmanager
def staged_directory(path: str):
    """Yield a temporary directory whose files are moved into `path` only on success."""
    with ReportSet() as reports:
        staging = reports.directory(path)
        yield staging
        reports.commit()


def cache_folder(cache_dir: str | None, name: str) -> str:
    """A named folder of the cache: under --cache-dir when given, else under
    $XDG_CACHE_HOME/xframe-compare (~/.cache/xframe-compare). A cold run, one with an
    empty --cache-dir, finds nothing that an earlier run left."""
    if cache_dir:
        return os.path.join(os.path.abspath(cache_dir), name)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "xframe-compare", name)
