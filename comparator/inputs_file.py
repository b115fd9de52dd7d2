"""The batch a user's model pair runs on, checked before any framework is imported:
an `.npz` file (`x` float NCHW as PyTorch takes it, optional `y`) or a seeded batch of a
given shape. Keras gets the channels-last copy from whoever runs it.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from comparator.errors import UsageError


def parse_input_shape(text: str, flag: str = "--input-shape") -> tuple[int, ...]:
    """'3,32,32' -> (3, 32, 32): one sample's shape in PyTorch's layout, no batch axis."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated sizes such as 3,32,32 (C,H,W), "
                         f"not {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"{flag} sizes must be positive, got {text!r}")
    return shape


def seeded_inputs(shape: tuple[int, ...], batch_size: int, seed: int) -> np.ndarray:
    """A standard normal float32 batch of `batch_size` samples of `shape`."""
    if batch_size <= 0:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *shape)).astype(np.float32)


def read_inputs(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(x as float32, y or None) from an .npz file; every defect is one UsageError line."""
    if not os.path.isfile(path):
        raise UsageError(f"--inputs {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"--inputs {path}: not a readable .npz file "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if "x" not in arrays:
        raise UsageError(f"--inputs {path} has no array 'x' (it holds "
                         f"{', '.join(sorted(arrays)) or 'nothing'}); save the batch with "
                         "np.savez(path, x=batch) in PyTorch's layout (N, C, H, W)")
    x = arrays["x"]
    if not np.issubdtype(x.dtype, np.floating):
        raise UsageError(f"--inputs {path}: x is {x.dtype}, expected floating point "
                         "(float32 as the models take it)")
    if x.ndim < 2:
        raise UsageError(f"--inputs {path}: x has shape {x.shape}; expected a batch "
                         "(N, C, H, W) for images, (N, features) otherwise")
    if not np.all(np.isfinite(x)):
        raise UsageError(f"--inputs {path}: x holds NaN or infinite values")
    return np.ascontiguousarray(x, dtype=np.float32), arrays.get("y")
