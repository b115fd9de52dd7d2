"""Keras versions as overlays: one directory per exact version, ahead of the environment.

Keras 3 is pure Python. A worker for `keras-torch@3.6.0` runs with
`<cache>/overlays/keras-3.6.0` first on PYTHONPATH: that directory holds only
that Keras (installed with `pip install --target ... --no-deps`) and the few
pure-Python packages the version needs that the environment lacks; torch,
TensorFlow, JAX, numpy and the rest come from the project's environment.

Measured here (torch 2.14.1): Keras 3.1.0, 3.1.1, 3.3.3, 3.4.1, 3.6.0, 3.10.0 and
keras-nightly 3.16.0.dev2026102704 import and fit on torch from such an overlay.
Keras 3.0.0 and 3.0.5 also import `tree` (dm-tree, a compiled package from the
registry), which the environment lacks ("No module named 'tree'"), so their overlay
gets dm-tree too (EXTRA_PACKAGES).

Overlays are built on first use and kept, keyed by the exact resolved version
(`nightly` resolves to the newest keras-nightly build the registry has). Without
the registry a run is skipped with the reason and the command that builds the
overlay: `python -m adapters.keras.overlays NAME...`.

Imports no framework; only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from comparator.config.flavours import NIGHTLY, Flavour, parse

CACHE_VARIABLE = "XFRAME_CACHE_DIR"
OFFLINE_VARIABLE = "XFRAME_OVERLAYS_OFFLINE"  # 1: use built overlays only, never download
COMPLETE = ".xframe-overlay-complete"  # written last: a half-built overlay is never used
PIP_TIMEOUT = 600.0
# Packages an overlay needs beside Keras, by the Keras versions (major, minor) that
# import them and that the project's environment does not provide.
EXTRA_PACKAGES = (((3, 0), (3, 0), ("dm-tree",)),)


class OverlayUnavailable(Exception):
    """No overlay for this flavour. status: "skipped" (cannot be built here, e.g. offline:
    the reason ends with the command that fixes it) or "unavailable" (the registry has no
    such version)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Overlay:
    flavour: Flavour
    version: str  # the exact version inside
    path: str
    note: str = ""  # e.g. which cached build stands for nightly when offline


def default_cache_dir() -> str:
    """$XFRAME_CACHE_DIR (compare.py --cache-dir sets it), else the tool's folder in the
    user's cache, beside the ONNX exports (adapters/onnx/runtime.py)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(CACHE_VARIABLE) or os.path.join(base, "xframe-compare")


def overlays_dir(cache_dir: str | None = None) -> str:
    return os.path.join(cache_dir or default_cache_dir(), "overlays")


def fix_command(name: str) -> str:
    return f"python -m adapters.keras.overlays {name}"


def _directory(root: str, package: str, version: str) -> str:
    return os.path.join(root, f"{package}-{version}")


def _is_built(path: str) -> bool:
    return os.path.exists(os.path.join(path, COMPLETE))


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.a-z]+", version) if p)


def cached_versions(package: str, cache_dir: str | None = None) -> list[str]:
    """Versions of a package with a complete overlay, oldest first."""
    root = overlays_dir(cache_dir)
    prefix = f"{package}-"
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = [n[len(prefix):] for n in names if n.startswith(prefix)
             and n[len(prefix):][:1].isdigit() and _is_built(os.path.join(root, n))]
    return sorted(found, key=_version_key)


def extra_packages(version: str) -> tuple[str, ...]:
    major_minor = _version_key(version)[:2]
    for first, last, packages in EXTRA_PACKAGES:
        if first <= major_minor <= last:
            return packages
    return ()


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=PIP_TIMEOUT)


def _pip_error(done: subprocess.CompletedProcess) -> str:
    lines = [x.strip() for x in done.stderr.splitlines()
             if x.strip() and "is ignored: it is neither" not in x]
    errors = [x for x in lines if x.startswith("ERROR")]
    return (errors or lines or ["pip failed"])[-1][:300]


def resolve_nightly() -> str:
    """The newest keras-nightly version the registry offers (downloads nothing but the
    index and the wheel's metadata); OverlayUnavailable when it cannot be asked."""
    with tempfile.TemporaryDirectory() as scratch:
        done = _pip("install", "--dry-run", "--quiet", "--no-deps", "--pre",
                    "--ignore-installed", "--target", scratch, "--report", "-", "keras-nightly")
    try:
        return json.loads(done.stdout)["install"][0]["metadata"]["version"]
    except (ValueError, KeyError, IndexError):
        raise OverlayUnavailable("skipped", f"keras-nightly cannot be resolved from the "
                                            f"package registry ({_pip_error(done)})") from None


def _build(package: str, version: str, path: str) -> None:
    """pip install --target into a scratch folder beside the overlay, then one rename."""
    root = os.path.dirname(path)
    os.makedirs(root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".building-", dir=root)
    try:
        wanted = [f"{package}=={version}", *extra_packages(version)]
        done = _pip("install", "--quiet", "--no-deps", "--target", scratch, *wanted)
        if done.returncode != 0:
            error = _pip_error(done)
            status = "unavailable" if "No matching distribution" in error else "skipped"
            raise OverlayUnavailable(status, f"{package}=={version} cannot be installed "
                                             f"({error})")
        with open(os.path.join(scratch, COMPLETE), "w") as handle:
            json.dump({"package": package, "version": version, "installed": wanted}, handle)
        try:
            os.rename(scratch, path)
        except OSError:  # another process built it meanwhile
            if not _is_built(path):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure(flavour: Flavour, cache_dir: str | None = None,
           offline: bool | None = None) -> Overlay:
    """The overlay for a flavour, built when missing unless offline (XFRAME_OVERLAYS_OFFLINE
    or no registry). Raises OverlayUnavailable."""
    if offline is None:
        offline = os.environ.get(OFFLINE_VARIABLE) == "1"
    root = overlays_dir(cache_dir)
    package = flavour.package
    cached = cached_versions(package, cache_dir)
    fix = fix_command(flavour.name)
    if flavour.version == NIGHTLY:
        version, note = None, ""
        if not offline:
            try:
                version = resolve_nightly()
            except OverlayUnavailable as exc:
                note = exc.reason
        if version is None:
            if not cached:
                raise OverlayUnavailable("skipped", f"no keras-nightly overlay is built "
                                                    f"{'(offline)' if offline else f'({note})'}"
                                                    f"; build it with: {fix}")
            version = cached[-1]
            note = f"the newest keras-nightly built here ({version}); the registry was not asked"
        path = _directory(root, package, version)
        if not _is_built(path):
            _build(package, version, path)
        return Overlay(flavour, version, path, note)
    path = _directory(root, package, flavour.version)
    if not _is_built(path):
        if offline:
            raise OverlayUnavailable("skipped", f"keras {flavour.version} has no overlay here "
                                                f"and downloads are off; build it with: {fix}")
        try:
            _build(package, flavour.version, path)
        except OverlayUnavailable as exc:
            if exc.status == "skipped":
                exc.reason += f"; build it with: {fix}"
            raise
    return Overlay(flavour, flavour.version, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.keras.overlays",
        description="Build the Keras overlays that --frameworks names such as "
                    "keras-torch@3.6.0 or keras-jax@nightly run on.")
    parser.add_argument("frameworks", nargs="+", metavar="NAME")
    parser.add_argument("--cache-dir", metavar="DIR", help="default: $XFRAME_CACHE_DIR or "
                                                           "~/.cache/xframe-compare")
    args = parser.parse_args(argv)
    failed = False
    for name in args.frameworks:
        flavour = parse(name)
        if flavour is None or not flavour.overlay:
            print(f"overlays: {name} needs no overlay", file=sys.stderr)
            continue
        try:
            overlay = ensure(flavour, args.cache_dir, offline=False)
        except OverlayUnavailable as exc:
            print(f"overlays: {name}: {exc.reason}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: keras {overlay.version} in {overlay.path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
