"""How Keras's AveragePooling2D(3, s, padding='same') averages where 'same' pads, in plain
Keras (no code of this tool): against the average of the values inside each window only,
and against the average with the edge values repeated into the padding.

    KERAS_BACKEND=torch python examples/average_pool_same.py
    KERAS_BACKEND=tensorflow python examples/average_pool_same.py
    KERAS_BACKEND=torch PYTHONPATH=<a keras-nightly overlay> python examples/average_pool_same.py

Prints, per input size and stride, the padding 'same' adds before and after, and the largest
difference from each reference.
"""

import json

import keras
import numpy as np

WINDOW = 3


def same_pads(size: int, stride: int) -> tuple[int, int]:
    """What 'same' pads: what the stride leaves over, the larger half after."""
    total = max((-(-size // stride) - 1) * stride + WINDOW - size, 0)
    return total // 2, total - total // 2


def references(x: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The inside-only and the edge-repeated averages of x (1, size, size, channels)."""
    size = x.shape[1]
    before, after = same_pads(size, stride)
    count = -(-size // stride)
    repeated = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="edge")
    inside = np.zeros((1, count, count, x.shape[3]), np.float32)
    edges = np.zeros_like(inside)
    for i in range(count):
        for j in range(count):
            top, left = i * stride - before, j * stride - before
            rows = slice(max(top, 0), min(top + WINDOW, size))
            columns = slice(max(left, 0), min(left + WINDOW, size))
            inside[0, i, j] = x[0, rows, columns].mean(axis=(0, 1))
            edges[0, i, j] = repeated[0, i * stride:i * stride + WINDOW,
                                      j * stride:j * stride + WINDOW].mean(axis=(0, 1))
    return inside, edges


def main() -> None:
    rng = np.random.default_rng(0)
    found = {"keras": keras.__version__, "backend": keras.backend.backend()}
    for size, stride in ((8, 2), (7, 2), (8, 1)):
        x = rng.standard_normal((1, size, size, 2)).astype(np.float32)
        pooled = keras.layers.AveragePooling2D(WINDOW, stride, padding="same")(x)
        got = np.asarray(keras.ops.convert_to_numpy(pooled))
        inside, edges = references(x, stride)
        found[f"{size} px, stride {stride}, pads {same_pads(size, stride)}"] = {
            "from_inside_only": float(np.abs(got - inside).max()),
            "from_edges_repeated": float(np.abs(got - edges).max())}
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
