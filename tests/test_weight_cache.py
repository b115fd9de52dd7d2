"""Calibrated random weights are kept in the cache folder: a second run reuses them
(bitwise the same, without calibrating), and a damaged entry is rebuilt, never used."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adapters import load_adapter
from comparator.inputs.sources import random_calibrated
from comparator.inputs.weights import weights_sha256
from comparator.zoo import get_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _weights(cache_dir, monkeypatch, seed=0, image_size=32):
    """The weights and how often they were calibrated. The counting wrapper is part of
    the code the cache key covers, so every call of a test goes through it."""
    torch_adapter = load_adapter("pytorch")
    calibrations = []
    original = type(torch_adapter).calibrate
    monkeypatch.setattr(type(torch_adapter), "calibrate",
                        lambda self, *a, **k: calibrations.append(1) or original(self, *a, **k))
    weights = random_calibrated(get_spec("tiny_cnn"), "classify", seed, image_size,
                                torch_adapter, cache_dir=str(cache_dir))
    loaded = torch_adapter.canonical_weights()
    assert weights_sha256(loaded) == weights.sha256  # the model holds what is reported
    return weights, len(calibrations)


def test_a_second_run_reuses_the_calibrated_weights_bitwise(tmp_path, monkeypatch):
    first, calibrated = _weights(tmp_path, monkeypatch)
    assert calibrated == 1 and "stored in the cache" in first.cache
    second, calibrated = _weights(tmp_path, monkeypatch)
    assert calibrated == 0 and second.cache.startswith("reused from the cache")
    assert second.sha256 == first.sha256
    other, calibrated = _weights(tmp_path, monkeypatch, seed=1)  # other settings, other entry
    assert calibrated == 1 and other.sha256 != first.sha256
    assert len(glob.glob(str(tmp_path / "weights" / "*.npz"))) == 2


def test_a_second_process_reuses_the_entry(tmp_path):
    """The key is the same in every process: a spec's functions are keyed by name, not by
    str(), which holds a memory address (every run calibrated again before this)."""
    command = [sys.executable, os.path.join(ROOT, "scripts", "compare.py"), "tiny_cnn",
               "--image-size", "32", "--batch-size", "2", "--no-onnx", "--quiet",
               "--recipes", "pytorch:train,keras:train", "--cache-dir", str(tmp_path)]
    notes = []
    for run in ("first", "second"):
        report = tmp_path / f"{run}.json"
        done = subprocess.run(command + ["--json", str(report)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        notes.append(json.loads(report.read_text())["settings"]["weights_cache"])
    assert notes[0].endswith("stored in the cache") and "reused from the cache" in notes[1]


@pytest.mark.parametrize("damage", ["truncate", "alter", "fifo", "symlink"])
def test_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch, damage):
    first, _ = _weights(tmp_path, monkeypatch)
    [path] = glob.glob(str(tmp_path / "weights" / "*.npz"))
    if damage == "truncate":
        with open(path, "r+b") as handle:
            handle.truncate(200)
    elif damage in ("fifo", "symlink"):  # reading a FIFO would block; a link leads anywhere
        os.unlink(path)
        os.mkfifo(path) if damage == "fifo" else os.symlink("/dev/zero", path)
    else:  # a valid file whose arrays no longer match the digest it carries
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        name = next(k for k in arrays if k.endswith("running_mean"))
        arrays[name] = arrays[name] + 1
        np.savez(path, **arrays)
    again, calibrated = _weights(tmp_path, monkeypatch)
    assert calibrated == 1 and "rebuilt" in again.cache
    assert again.sha256 == first.sha256
    third, calibrated = _weights(tmp_path, monkeypatch)
    assert calibrated == 0


def test_an_unwritable_cache_folder_only_costs_the_cache(tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    weights, _ = _weights(blocked, monkeypatch)
    assert "not writable" in weights.cache
