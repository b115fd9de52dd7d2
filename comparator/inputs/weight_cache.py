"""Calibrated random weights kept in the cache folder, so a second run does not calibrate.

An entry is one .npz file named by the sha256 of everything the weights depend on
(model, scenario, seed, image size, the package versions and the source of the code
that draws and calibrates them). It stores its key and the sha256 of its arrays
(comparator.inputs.weights.weights_sha256); a file whose key or digest does not match,
or that does not load, is rebuilt: a truncated or foreign file never passes for an entry.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import stat
import tempfile
from dataclasses import asdict, is_dataclass
from importlib import metadata

import numpy as np

from comparator.inputs.weights import weights_sha256
from comparator.io import cache_folder

FORMAT = "xframe-compare/calibrated-weights/1"
FOLDER = "weights"
_META = "__xframe_cache__"  # the entry's key and digest, a JSON string as uint8


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def code_digest(functions) -> str:
    """sha256 of the functions' source: editing how weights are made changes the key."""
    digest = hashlib.sha256()
    for function in functions:
        try:
            digest.update(inspect.getsource(function).encode())
        except (OSError, TypeError):  # no source to read: key on the name alone
            digest.update(getattr(function, "__qualname__", repr(function)).encode())
    return digest.hexdigest()


def _stable(value) -> str:
    """A spec's function field by its qualified name: str() of a function holds its memory
    address, which differs in every process and would make every entry a miss."""
    name = getattr(value, "__qualname__", None)
    if name is not None:
        return f"{getattr(value, '__module__', '')}.{name}"
    return re.sub(r" at 0x[0-9a-f]+", "", str(value))


def fields(spec, scenario: str, seed: int, image_size: int, code: str) -> dict:
    return {"format": FORMAT, "model": spec.name, "scenario": scenario, "seed": int(seed),
            "image_size": int(image_size), "code": code,
            "spec": json.dumps(asdict(spec) if is_dataclass(spec) else repr(spec),
                               sort_keys=True, default=_stable),
            "versions": {p: _version(p) for p in ("torch", "torchvision", "numpy")}}


def _key(entry_fields: dict) -> str:
    return hashlib.sha256(json.dumps(entry_fields, sort_keys=True).encode()).hexdigest()


class WeightCache:
    def __init__(self, cache_dir: str | None):
        self.directory = cache_folder(cache_dir, FOLDER)

    def path_for(self, entry_fields: dict) -> str:
        stem = (f"{entry_fields['model']}-{entry_fields['scenario']}-seed{entry_fields['seed']}"
                f"-{entry_fields['image_size']}px")
        return os.path.join(self.directory, f"{stem}-{_key(entry_fields)[:20]}.npz")

    def load(self, entry_fields: dict) -> tuple[dict | None, str | None]:
        """(arrays, None) for a valid entry; (None, why it was not usable or None)."""
        path = self.path_for(entry_fields)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"{os.path.basename(path)} cannot be read ({exc.strerror})"
        if not stat.S_ISREG(mode):  # a FIFO would block the read, a link lead anywhere
            return None, f"{os.path.basename(path)} is not a regular file"
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(arrays.pop(_META).tobytes().decode())
        except Exception as exc:  # noqa: BLE001 - any unreadable file means "rebuild"
            return None, f"{os.path.basename(path)} does not load ({type(exc).__name__})"
        if meta.get("key") != _key(entry_fields):
            return None, f"{os.path.basename(path)} does not carry its key"
        if meta.get("sha256") != weights_sha256(arrays):
            return None, f"{os.path.basename(path)} does not match its digest"
        return arrays, None

    def store(self, entry_fields: dict, arrays: dict) -> bool:
        """Write the entry atomically; False when the folder cannot be written (the run goes
        on without a cache)."""
        meta = json.dumps({"key": _key(entry_fields), "sha256": weights_sha256(arrays),
                           "fields": entry_fields})
        tmp = None
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".weights-", suffix=".npz", dir=self.directory)
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays, **{_META: np.frombuffer(meta.encode(), np.uint8)})
            os.replace(tmp, self.path_for(entry_fields))
            return True
        except OSError:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            return False
