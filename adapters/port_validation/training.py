"""The training side of port validation, framework half: one training-mode BatchNorm
step in each framework and the Dropout layers of both models, read off the layers
themselves (comparator/analysis/training_side.py compares them).

Each BatchNorm pair steps on the same input, the one PyTorch's module saw in the
training-mode trace, from the same statistics, PyTorch's: a difference upstream or in the
ported statistics (which the passes report) does not show up here as well.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers, ops  # noqa: E402

from adapters.port_validation.graph import torch_args, torch_mode  # noqa: E402
from adapters.own_pair.keras_layers import (  # noqa: E402
    drops_whole_examples,
    recurrent_cell,
    step_dropout,
    stochastic_depth_layer,
    stochastic_depth_rate,
)
from adapters.pytorch.drop_path import stochastic_depth  # noqa: E402
from adapters.pytorch.drop_path import stochastic_depth_rate as module_drop_rate  # noqa: E402
from adapters.pytorch.user import stacked_dropout  # noqa: E402
from comparator.analysis.training_side import (  # noqa: E402
    BatchNormStep,
    DropoutComparison,
    DropoutLayer,
)

_VALUES, _CHANNELS = "single values", "whole channels"
# What each random layer drops, by class (the first match along the class's MRO).
# torchvision's StochasticDepth(mode="row") drops a residual branch for whole examples, as
# a Keras Dropout with noise_shape (None, 1, ..., 1) does.
_ROWS = "whole examples (stochastic depth)"
_TORCH_FAMILIES = {"Dropout": _VALUES, "Dropout1d": _CHANNELS, "Dropout2d": _CHANNELS,
                   "Dropout3d": _CHANNELS, "AlphaDropout": f"{_VALUES} (alpha)",
                   "FeatureAlphaDropout": f"{_CHANNELS} (alpha)", "StochasticDepth": _ROWS,
                   "DropPath": _ROWS}
_KERAS_FAMILIES = {"SpatialDropout1D": _CHANNELS, "SpatialDropout2D": _CHANNELS,
                   "SpatialDropout3D": _CHANNELS, "AlphaDropout": f"{_VALUES} (alpha)",
                   "GaussianDropout": "single values (gaussian)",
                   "GaussianNoise": "nothing (additive gaussian noise)", "Dropout": _VALUES}


def _numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value), dtype=np.float64).copy()


def torch_batchnorm_step(name: str, module: nn.Module, x: np.ndarray) -> BatchNormStep:
    """One training-mode forward of a copy of `module` on x (channels first)."""
    step = copy.deepcopy(module).train()
    before_mean = step.running_mean.detach().double().cpu().numpy().copy()
    before_var = step.running_var.detach().double().cpu().numpy().copy()
    device = step.running_mean.device
    with torch.no_grad():
        step(torch.from_numpy(np.asarray(x, np.float32)).to(device))
    momentum = None if step.momentum is None else float(step.momentum)
    return BatchNormStep(
        name, momentum, f"momentum={momentum}", float(step.eps),
        bool(step.track_running_stats), before_mean, before_var,
        step.running_mean.detach().double().cpu().numpy(),
        step.running_var.detach().double().cpu().numpy())


def torch_batches_seen(module: nn.Module) -> int:
    tracked = getattr(module, "num_batches_tracked", None)
    return int(tracked) if tracked is not None else 0


def keras_batchnorm_step(layer, x_channels_last: np.ndarray, start: BatchNormStep
                         ) -> BatchNormStep:
    """One training-mode call of the Keras layer on x, from the statistics PyTorch's
    layer started at (so a statistic ported wrong, which the inference passes report, does
    not show here again); its own moving statistics restored afterwards."""
    kept_mean, kept_var = _numpy(layer.moving_mean), _numpy(layer.moving_variance)
    before_mean, before_var = start.mean_before, start.var_before
    try:
        layer.moving_mean.assign(before_mean.astype(np.float32))
        layer.moving_variance.assign(before_var.astype(np.float32))
        with torch.no_grad():
            layer(ops.convert_to_tensor(np.asarray(x_channels_last, np.float32)),
                  training=True)
        after_mean, after_var = _numpy(layer.moving_mean), _numpy(layer.moving_variance)
    finally:
        layer.moving_mean.assign(kept_mean.astype(np.float32))
        layer.moving_variance.assign(kept_var.astype(np.float32))
    return BatchNormStep(
        layer.name, 1.0 - float(layer.momentum), f"momentum={layer.momentum:g}",
        float(layer.epsilon), bool(layer.trainable), before_mean, before_var,
        after_mean, after_var)


def _family(obj, table: dict[str, str]) -> str | None:
    return next((table[c.__name__] for c in type(obj).__mro__ if c.__name__ in table), None)


def torch_dropout_layers(model: nn.Module, x: np.ndarray) -> list[DropoutLayer]:
    """The model's Dropout modules in the order they run on x (a forward pass in eval
    mode). Functional calls (F.dropout) are invisible: no module holds their rate."""
    names = {m: n for n, m in model.named_modules()}
    candidates = [m for m in model.modules() if _family(m, _TORCH_FAMILIES)
                  and isinstance(m, nn.Module) and hasattr(m, "p") or stacked_dropout(m)
                  or stochastic_depth(m)]
    if not candidates:
        return []
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda module, args, out: order.append(module))
             for m in candidates]
    try:
        with torch_mode(model, "inference"), torch.no_grad():
            device = next(model.parameters()).device
            model(*torch_args(x, device))
    finally:
        for h in hooks:
            h.remove()
    return [layer for m in order for layer in (
        _between_layers(names[m], m) if stacked_dropout(m) else
        [DropoutLayer(names[m], type(m).__name__, _torch_family(m),
                      module_drop_rate(m) if stochastic_depth(m) else float(m.p))])]


def _torch_family(module) -> str:
    if getattr(module, "mode", "row") == "batch":  # StochasticDepth(mode="batch")
        return "the whole batch (stochastic depth)"
    # a drop path of the model's own class, measured (adapters/pytorch/drop_path.py)
    return _family(module, _TORCH_FAMILIES) or (_ROWS if stochastic_depth(module) else None)


def _between_layers(name: str, module) -> list[DropoutLayer]:
    return [DropoutLayer(f"{name} (between layers {k} and {k + 1})", type(module).__name__,
                         _VALUES, float(module.dropout)) for k in range(module.num_layers - 1)]


def keras_step_dropout(operations) -> list[DropoutComparison]:
    """Keras recurrent layers that drop within their steps in training (`dropout` on the
    inputs, `recurrent_dropout` on the state, one mask for every step), which no PyTorch
    recurrent module does: each is a difference of its own, not paired in order."""
    found = []
    for op in operations:
        cell = recurrent_cell(op)
        rates = step_dropout(cell) if cell is not None else {}
        if not rates:
            continue
        words = ", ".join(f"{key}={value:g}" for key, value in rates.items())
        found.append(DropoutComparison(
            None, op.name, None, type(op).__name__, None, float(max(rates.values())), True,
            f"Keras {op.name} ({type(op).__name__}, {words}) drops within its steps in "
            "training; no PyTorch recurrent module does (its dropout acts between stacked "
            "layers only)"))
    return found


def keras_dropout_layers(operations) -> list[DropoutLayer]:
    """The random layers among Keras operations (given in the order they run)."""
    found = []
    for op in operations:
        if stochastic_depth_layer(op):  # keras.applications' ConvNeXt's, no Dropout
            found.append(DropoutLayer(op.name, type(op).__name__, _ROWS,
                                      stochastic_depth_rate(op)))
            continue
        family = _family(op, _KERAS_FAMILIES)
        if family is None or not isinstance(op, layers.Layer):
            continue
        shape = getattr(op, "noise_shape", None)
        if type(op).__name__ == "Dropout" and shape is not None:
            family = _ROWS if drops_whole_examples(op) else \
                f"values along noise_shape {tuple(shape)}"
        rate = getattr(op, "rate", None)
        found.append(DropoutLayer(op.name, type(op).__name__, family,
                                  None if rate is None else float(rate)))
    return found
