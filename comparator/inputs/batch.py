"""Seeded inputs: smooth synthetic images, labels and regression targets.

Every stream has its own seed tuple, so the calibration images can never be the
comparison batch, and both frameworks receive the very same tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comparator.zoo import ModelSpec

_STREAM_BATCH = 1
_STREAM_CALIBRATION = 2
_STREAM_LABELS = 3
_STREAM_TARGETS = 4
_STREAM_INIT = 5

# Scenarios whose loss is mean squared error on float targets.
REGRESSION_SCENARIOS = ("head", "regress")


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def synthetic_images(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Images in [0, 1], NCHW float32, each a sum of a few random plane waves.

    Plane waves give spatially correlated pixels, as photos have, so BatchNorm
    statistics look like those of real inputs rather than of white noise.
    """
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    images = np.empty((n, 3, size, size), dtype=np.float64)
    for i in range(n):
        for c in range(3):
            freq = rng.uniform(0.5, 6.0, size=(4, 2))
            phase = rng.uniform(0, 2 * np.pi, size=4)
            amp = rng.uniform(0.05, 0.25, size=4)
            waves = amp[:, None, None] * np.sin(
                2 * np.pi * (freq[:, 0, None, None] * xx + freq[:, 1, None, None] * yy)
                + phase[:, None, None]
            )
            images[i, c] = rng.uniform(0.3, 0.7) + waves.sum(axis=0)
    images += rng.normal(0, 0.02, size=images.shape)
    return np.clip(images, 0, 1).astype(np.float32)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    mean = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return ((images - mean) / std).astype(np.float32)


def class_axis(keras_outputs: str) -> int:
    """The class (or channel) axis of the outputs in PyTorch's layout, which the comparison
    holds them in, given where Keras's hold it (Batch.keras_outputs)."""
    return 1 if keras_outputs == "channels_last" else -1


def _moved_last(x: np.ndarray, layout: str) -> np.ndarray:
    """One input as Keras takes it: its channel axis moved last, or as given."""
    if x.ndim < 3 or layout == "as_given":
        return x
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


@dataclass(frozen=True)
class Batch:
    """The comparison batch: x exactly as fed to PyTorch (N,C,H,W; a user's pair also N,C,L
    or N,F, or a tuple of such arrays for a model that takes several inputs: forward()'s
    positional arguments and the Keras model's inputs, in order), y labels or targets (a
    user's map or sequence takes a label per position, N,H,W or N,L, and targets of its
    outputs' shape, in PyTorch's layout). keras_layout: how Keras takes x, "channels_last"
    (the channel axis moved last) or "as_given" (a user's Keras model declared PyTorch's
    shape, as a recurrent model on N,L,F does); with several inputs, one per input."""

    x: np.ndarray | tuple[np.ndarray, ...]
    y: np.ndarray
    keras_layout: str | tuple[str, ...] = "channels_last"
    # Where Keras's outputs hold their class or channel axis: "channels_last" (last, where
    # PyTorch's hold it second: a segmentation map is N,K,H,W in PyTorch and N,H,W,K in
    # Keras) or "as_given" (where PyTorch's do: per-step outputs N,L,K in both). One row per
    # input, N,K, is the same in both.
    keras_outputs: str = "channels_last"

    @property
    def inputs(self) -> tuple[np.ndarray, ...]:
        """Every input, in order: (x,) for a model that takes one."""
        return tuple(self.x) if isinstance(self.x, tuple) else (self.x,)

    @property
    def several(self) -> bool:
        return isinstance(self.x, tuple)

    @property
    def input_layouts(self) -> tuple[str, ...]:
        layouts = self.keras_layout
        return tuple(layouts) if isinstance(layouts, tuple) else (layouts,) * len(self.inputs)

    @property
    def keras_inputs(self) -> tuple[np.ndarray, ...]:
        """Every input as Keras takes it, in order."""
        return tuple(_moved_last(x, layout) for x, layout in zip(self.inputs, self.input_layouts))

    @property
    def x_channels_last(self):
        """x as Keras takes it: one array, or a list of a model's several inputs."""
        return list(self.keras_inputs) if self.several else self.keras_inputs[0]

    @property
    def input_shapes(self) -> list:
        """x's shape as a list, or a list of each input's where there are several."""
        shapes = [list(x.shape) for x in self.inputs]
        return shapes if self.several else shapes[0]

    @property
    def class_axis(self) -> int:
        return class_axis(self.keras_outputs)

    def targets_as_keras(self) -> np.ndarray:
        """Regression targets as Keras's outputs hold them."""
        if self.y.ndim < 3 or self.keras_outputs == "as_given":
            return self.y
        return np.ascontiguousarray(np.moveaxis(self.y, 1, -1))

    def outputs_as_pytorch(self, outputs: np.ndarray) -> np.ndarray:
        """Keras's outputs in PyTorch's layout."""
        if outputs.ndim < 3 or self.keras_outputs == "as_given":
            return outputs
        return np.ascontiguousarray(np.moveaxis(outputs, -1, 1))

    def __len__(self) -> int:
        return len(self.inputs[0])


def make_batch(spec: ModelSpec, scenario: str, batch_size: int, image_size: int,
               seed: int, labels: tuple[int, ...] = ()) -> Batch:
    if spec.input_features:
        # As in the seed report: uniform inputs and uniform targets.
        x = rng_for(seed, _STREAM_BATCH).random((batch_size, spec.input_features))
        y = rng_for(seed, _STREAM_TARGETS).random((batch_size, 1))
        return Batch(x=x.astype(np.float32), y=y.astype(np.float32))
    pre = spec.preprocessing["pytorch"]
    x = normalize(synthetic_images(batch_size, image_size, rng_for(seed, _STREAM_BATCH)),
                  pre.mean, pre.std)
    if scenario in REGRESSION_SCENARIOS:
        y = rng_for(seed, _STREAM_TARGETS).normal(0.0, 1.0, size=(batch_size, 1))
        y = y.astype(np.float32)
    elif labels:
        y = np.resize(np.asarray(labels, dtype=np.int64), batch_size)
    else:
        y = rng_for(seed, _STREAM_LABELS).integers(0, spec.num_classes, size=batch_size)
        y = y.astype(np.int64)
    return Batch(x=x, y=y)


def calibration_images(spec: ModelSpec, n: int, image_size: int, seed: int) -> np.ndarray:
    if spec.input_features:
        return rng_for(seed, _STREAM_CALIBRATION).random((n, spec.input_features)).astype(
            np.float32)
    pre = spec.preprocessing["pytorch"]
    return normalize(synthetic_images(n, image_size, rng_for(seed, _STREAM_CALIBRATION)),
                     pre.mean, pre.std)


def init_rng(seed: int) -> np.random.Generator:
    return rng_for(seed, _STREAM_INIT)
