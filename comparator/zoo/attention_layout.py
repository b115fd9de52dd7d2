"""Multi-head attention's arrays between PyTorch's layout and Keras's (pure numpy).

PyTorch's nn.MultiheadAttention (query, key and value of one width E) holds the three input
projections in one `in_proj_weight` (3E, E) and `in_proj_bias` (3E), and the output
projection in its `out_proj` Linear (E, E). Given keys and values of other widths (`kdim`,
`vdim`), it holds the input projections apart instead: `q_proj_weight` (E, E),
`k_proj_weight` (E, kdim), `v_proj_weight` (E, vdim), their biases still in `in_proj_bias`.
Keras's MultiHeadAttention holds, in this order, the query's, key's and value's kernel
(width, heads, head_dim) and bias (heads, head_dim), then the output's kernel (heads,
head_dim, E) and bias (E); without biases, the four kernels. A projection's rows are the heads
in order, head_dim each, in both. Measured with torch 2.14.1 and Keras 3.15.1
(tests/test_user_pair_attention.py).
"""

from __future__ import annotations

import numpy as np

SEPARATE = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
SUFFIXES = ("in_proj_weight", *SEPARATE, "in_proj_bias", "out_proj.weight", "out_proj.bias")


def to_keras(arrays: dict[str, np.ndarray], current: list[np.ndarray]) -> list[np.ndarray]:
    """Keras's weights for PyTorch's arrays (by SUFFIXES); `current`, the Keras layer's
    weights now, gives the heads and head_dim."""
    _, heads, head_dim = current[0].shape
    rows = heads * head_dim
    bias = arrays.get("in_proj_bias")
    step = 2 if bias is not None else 1
    if "in_proj_weight" in arrays:
        packed = arrays["in_proj_weight"]
        weights = [packed[part * rows:(part + 1) * rows] for part in range(3)]
    else:
        weights = [arrays[name] for name in SEPARATE]
    values = []
    for part, weight in enumerate(weights):  # query, key, value
        width = current[part * step].shape[0]
        if weight.shape != (rows, width):
            raise ValueError(f"the {('query', 'key', 'value')[part]} projection {weight.shape} "
                             f"is not {heads} heads x {head_dim} rows of {width}")
        values.append(np.ascontiguousarray(weight.T.reshape(width, heads, head_dim)))
        if bias is not None:
            values.append(bias[part * rows:(part + 1) * rows].reshape(heads, head_dim).copy())
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
    projections = [np.ascontiguousarray(k.reshape(k.shape[0], heads * head_dim).T)
                   for k in kernels[:3]]
    # PyTorch packs the three only where keys and values have the query's width.
    if all(k.shape[0] == width for k in kernels[:3]):
        arrays = {"in_proj_weight": np.ascontiguousarray(np.concatenate(projections))}
    else:
        arrays = dict(zip(SEPARATE, projections))
    arrays["out_proj.weight"] = np.ascontiguousarray(
        kernels[3].reshape(heads * head_dim, kernels[3].shape[-1]).T)
    if biased:
        arrays["in_proj_bias"] = np.concatenate([values[part * 2 + 1].reshape(-1)
                                                 for part in range(3)])
        arrays["out_proj.bias"] = values[7].copy()
    return arrays
