"""Model states as the core sees them: canonical arrays (torchvision names, PyTorch
layouts) split into weights and BatchNorm running statistics, and the differences
between two states."""

from __future__ import annotations

import numpy as np

# The canonical names that mark a BatchNorm running statistic (torchvision's buffers).
BN_STAT_SUFFIXES = (".running_mean", ".running_var")


def is_bn_statistic(name: str) -> bool:
    return name.endswith(BN_STAT_SUFFIXES)


def split_state(arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(parameters, BatchNorm running statistics) of a canonical state."""
    stats = {k: v for k, v in arrays.items() if is_bn_statistic(k)}
    params = {k: v for k, v in arrays.items() if k not in stats}
    return params, stats


def max_abs_diff(a: dict, b: dict, names=None) -> float | None:
    """The largest absolute difference, in float64, over the named arrays both states hold
    (all shared names by default); None when there is none to compare."""
    names = [k for k in (a if names is None else names) if k in b and a[k].size]
    if not names:
        return None
    # Runs keep an unchanged array as the one object both states hold (FrameworkAdapter's
    # `_kept_once`): it differs by nothing, with no float64 copy made to say so.
    return max(0.0 if a[k] is b[k] else float(np.max(np.abs(a[k].astype(np.float64) - b[k])))
               for k in names)


def max_weight_diff(a: dict, b: dict) -> float | None:
    return max_abs_diff(a, b, [k for k in a if not is_bn_statistic(k)])


def max_bn_stat_diff(a: dict, b: dict, suffix: str | None = None) -> float | None:
    """Over BatchNorm running statistics, or only those ending in `suffix`
    (".running_mean" or ".running_var")."""
    return max_abs_diff(a, b, [k for k in a if is_bn_statistic(k)
                               and (suffix is None or k.endswith(suffix))])


def bn_layer_deltas(before: dict, after: dict) -> list[float]:
    """The largest change of each BatchNorm layer's running statistics, in network order
    (canonical names follow the torchvision module order, which is depth order)."""
    layers: dict[str, float] = {}
    for name, value in before.items():
        if is_bn_statistic(name):
            layer = name.rsplit(".", 1)[0]
            delta = float(np.max(np.abs(after[name].astype(np.float64) - value)))
            layers[layer] = max(layers.get(layer, 0.0), delta)
    return list(layers.values())
