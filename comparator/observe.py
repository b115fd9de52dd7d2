"""Decide from the numbers of one pass what a normalisation layer really did.

Adapters hand over per-channel statistics of a BatchNorm layer's input and
output in that pass; the layer's own flags are never consulted. Normalising
with the batch's statistics puts every output channel's mean at beta and its
variance at gamma^2 * var / (var + eps); normalising with moving statistics
puts them elsewhere unless the moving statistics equal the batch's.
"""

from __future__ import annotations

import numpy as np


def used_batch_statistics(x_mean, x_var, y_mean, y_var, gamma, beta, moving_mean,
                          moving_var, eps: float) -> bool:
    """True when the output matches normalisation with batch statistics better."""
    x_mean, x_var, y_mean, y_var = (np.asarray(a, dtype=np.float64)
                                    for a in (x_mean, x_var, y_mean, y_var))
    gamma = np.ones_like(x_mean) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros_like(x_mean) if beta is None else np.asarray(beta, np.float64)
    moving_mean = np.asarray(moving_mean, np.float64)
    moving_var = np.asarray(moving_var, np.float64)

    batch_mean = beta
    batch_var = gamma**2 * x_var / (x_var + eps)
    moving_pred_mean = gamma * (x_mean - moving_mean) / np.sqrt(moving_var + eps) + beta
    moving_pred_var = gamma**2 * x_var / (moving_var + eps)

    scale = np.abs(gamma) + np.abs(beta) + 1e-12
    batch_error = np.sum((np.abs(y_mean - batch_mean) + np.abs(y_var - batch_var)) / scale)
    moving_error = np.sum((np.abs(y_mean - moving_pred_mean) + np.abs(y_var - moving_pred_var))
                          / scale)
    return bool(batch_error <= moving_error)
