"""The files a hostile case finds in its folder (setups) and what a case checks beyond the
generic promises (tools/hostile.py): reports that say a cache entry was rebuilt or reused,
a clean cache, the last line on stderr."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tools.hostile_case import (
    ROOT,
    TINY,
    Check,
    Context,
    Setup,
    SetupFailed,
    script_path,
)


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
