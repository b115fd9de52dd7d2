"""Multi-head attention's arrays between PyTorch's layout and Keras's (pure numpy).

PyTorch's nn.MultiheadAttention (query, key and value of one width E) holds the three input
projections in one `in_proj_weight` (3E, E) and `in_proj_bias` (3E), and the output
projection in its `out_proj` Linear (E, E). Keras's MultiHeadAttention holds, in this order,
the query's, key's and value's kernel (E, heads, head_dim) and bias (heads, head_dim), then
the output's kernel (heads, head_dim, E) and bias (E); without biases, the four kernels.
A projection's rows are the heads in order, head_dim each, in both. Measured with torch
2.14.1 and Keras 3.15.1 (tests/test_user_pair_attention.py).
"""

from __future__ import annotations

import numpy as np

SUFFIXES = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")


def to_keras(arrays: dict[str, np.ndarray], current: list[np.ndarray]) -> list[np.ndarray]:
    """Keras's weights for PyTorch's arrays (by SUFFIXES); `current`, the Keras layer's
    weights now, gives the heads and head_dim."""
    width, heads, head_dim = current[0].shape
    weight, bias = arrays["in_proj_weight"], arrays.get("in_proj_bias")
    if weight.shape != (3 * heads * head_dim, width):
        raise ValueError(f"in_proj_weight {weight.shape} is not 3 x {heads} heads x {head_dim} "
                         f"rows of {width}")
    values = []
    for part in range(3):  # query, key, value
        rows = slice(part * heads * head_dim, (part + 1) * heads * head_dim)
        values.append(np.ascontiguousarray(weight[rows].T.reshape(width, heads, head_dim)))
        if bias is not None:
            values.append(bias[rows].reshape(heads, head_dim).copy())
    output = arrays["out_proj.weight"]
    values.append(np.ascontiguousarray(output.T.reshape(heads, head_dim, output.shape[0])))
    if bias is not None:
        values.append(arrays["out_proj.bias"].copy())
    return values


def from_keras(values: list[np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's arrays (by SUFFIXES) for Keras's weights: the inverse of to_keras, a round
    trip bit for bit."""
    biased = len(values) == 8
    step = 2 if biased else 1
    kernels = [values[part * step] for part in range(3)] + [values[3 * step]]
    width, heads, head_dim = kernels[0].shape
    arrays = {
        "in_proj_weight": np.ascontiguousarray(np.concatenate(
            [k.reshape(width, heads * head_dim).T for k in kernels[:3]])),
        "out_proj.weight": np.ascontiguousarray(
            kernels[3].reshape(heads * head_dim, kernels[3].shape[-1]).T)}
    if biased:
        arrays["in_proj_bias"] = np.concatenate([values[part * 2 + 1].reshape(-1)
                                                 for part in range(3)])
        arrays["out_proj.bias"] = values[7].copy()
    return arrays
