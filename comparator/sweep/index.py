"""`DIR/sweep.json`: one entry per cell, rewritten atomically after every cell, and reuse.

A cell is reused when the previous run finished it (done or reused), its report is still
there, and both its settings and the environment's package versions are unchanged.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata

from comparator.io import write_atomic

SCHEMA = "xframe-compare/sweep/1"
# Distributions whose versions decide a cell's numbers (read from metadata: no imports).
VERSIONED = ("xframe-compare", "torch", "torchvision", "keras", "keras-nightly", "tf_keras",
             "numpy", "onnx", "onnxruntime", "tensorflow", "tensorflow-cpu", "jax", "jaxlib")
FINISHED = ("done", "reused")


def environment_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def index_path(out_dir: str) -> str:
    return os.path.join(out_dir, "sweep.json")


def report_path(out_dir: str, cell_id: str) -> str:
    return os.path.join(out_dir, "cells", f"{cell_id}.json")


def load_index(out_dir: str) -> dict[str, dict]:
    """The previous run's entries by cell id ({} when there is none or it is unreadable)."""
    try:
        with open(index_path(out_dir)) as handle:
            data = json.load(handle)
        return {entry["id"]: entry for entry in data.get("cells", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def reusable(previous: dict | None, cell, environment: dict, out_dir: str) -> bool:
    if not previous or previous.get("status") not in FINISHED:
        return False
    if previous.get("settings") != cell.settings or previous.get("cpus") != cell.cpus:
        return False
    if previous.get("environment") != environment:
        return False
    try:
        with open(report_path(out_dir, cell.id)) as handle:
            json.load(handle)
    except (OSError, ValueError):
        return False
    return True


def write_index(out_dir: str, spec_path: str, entries: list[dict], environment: dict) -> None:
    body = {"schema": SCHEMA, "spec": os.path.abspath(spec_path), "environment": environment,
            "cells": entries}
    write_atomic(index_path(out_dir), json.dumps(body, indent=2) + "\n")
