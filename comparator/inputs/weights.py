"""Canonical weights: numpy arrays under torchvision names, with provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def weights_sha256(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CanonicalWeights:
    """Arrays in PyTorch layout under torchvision names, plus where they came from."""

    arrays: dict[str, np.ndarray]
    source: str
    description: str
    cache: str | None = None  # calibrated random weights: reused from the cache or made

    @property
    def sha256(self) -> str:
        return weights_sha256(self.arrays)


def head_init_arrays(feature_dim: int, hidden: int, rng: np.random.Generator) -> dict:
    """The regression head's starting weights, shared by both frameworks.

    Drawn like PyTorch's default Linear initialisation (uniform in +-1/sqrt(fan_in)).
    """
    def linear(fan_in, fan_out):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        return w, b

    w0, b0 = linear(feature_dim, hidden)
    w3, b3 = linear(hidden, 1)
    return {"head.0.weight": w0, "head.0.bias": b0, "head.3.weight": w3, "head.3.bias": b3}
