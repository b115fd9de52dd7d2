"""The port validator's gradients: one backward pass of the same loss in both frameworks,
in training mode with Dropout off (in inference mode where a framework property spoils the
training-mode pass), each Keras gradient compared in PyTorch's name and layout
(and against a float64 PyTorch rerun, the rounding reference)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)

from adapters.own_pair.port_arrays import (  # noqa: E402
    LAYER_LEVEL_KINDS,
    summed_biases,
    torch_arrays,
)
from adapters.port_validation.graph import (  # noqa: E402
    Failed,
    as_float,
    channels_move,
    keras_state_kept,
    outputs_of,
    run_keras,
    to_keras_inputs,
    torch_args,
    torch_mode,
)
from adapters.port_validation.pairs import as_port  # noqa: E402
from comparator.analysis.states import is_bn_statistic  # noqa: E402
from comparator.analysis.validation import GradientComparison, judge_gradient, metrics  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.zoo.portmaps import from_keras_layout  # noqa: E402
from comparator.zoo.recurrent_layout import split_bias  # noqa: E402


def _torch_gradients(model: nn.Module, x: np.ndarray, seed: int, mode: str) -> dict:
    params = dict(model.named_parameters())
    for p in params.values():
        p.grad = None
    with torch_mode(model, mode):
        device = next(model.parameters()).device
        _seeded_loss(outputs_of(model(*torch_args(x, device))), seed).backward()
    grads = {n: (p.grad.detach().cpu().numpy().copy() if p.grad is not None else None)
             for n, p in params.items()}
    for p in params.values():
        p.grad = None
    return grads


def _seeded_loss(outputs, seed: int) -> torch.Tensor:
    """The loss both frameworks backpropagate: each output's mean squared distance to a
    seeded target of its shape (PyTorch's layout), summed over the outputs --output chose,
    so that every chosen output's layers get a gradient."""
    rng = np.random.default_rng(seed)
    return sum(torch.mean((out - torch.from_numpy(rng.normal(size=tuple(out.shape))).to(out))
                          ** 2) for out in outputs)


def _keras_gradients(pair, layer) -> dict:
    """The Keras layer's gradients in PyTorch's names and layouts, None where a weight is
    frozen. Keras's one bias of an LSTM or RNN stands for both of PyTorch's, whose
    gradients are each the same as that of their sum."""
    trainable = {id(v) for v in layer.trainable_weights}
    grads = [v.value.grad if id(v) in trainable else None for v in layer.weights]
    if pair.kind not in LAYER_LEVEL_KINDS:
        return {name: None if grad is None else
                from_keras_layout(pair.kind, name, grad.detach().cpu().numpy())
                for name, grad in zip(pair.canonical_names, grads) if not is_bn_statistic(name)}
    port = as_port(pair)
    if any(grad is None for grad in grads):  # a frozen layer: every array is frozen
        names = torch_arrays(port, layer.get_weights())
        return dict.fromkeys(names)
    values = [grad.detach().cpu().numpy() for grad in grads]
    found = torch_arrays(port, values, split_sums=False)
    for bias_ih, bias_hh, index in summed_biases(port, len(values)):
        found[bias_ih] = found[bias_hh] = split_bias(pair.kind, values[index])[0]
    return found


def compare_gradients(torch_model, model64, fn, pairs, x, seed, tolerance,
                      mode: str = "training"):
    """Parameter gradients of the same loss (mean squared distance of the outputs to a
    seeded target, summed over several) after one backward pass in `mode`, Dropout off."""
    by_name = {layer.name: layer for layer in fn.layers}
    torch_grads = _torch_gradients(torch_model, x, seed, mode)
    grads64 = _torch_gradients(model64, as_float(x, np.float64), seed, mode) if model64 else {}
    variables = [v for layer in fn.layers for v in layer.trainable_weights]
    for v in variables:
        v.value.grad = None
    with keras_state_kept(fn):
        _, keras_out = run_keras(fn, to_keras_inputs(x), mode == "training", set())
        keras_outs = outputs_of(keras_out)
        failed = next((out for out in keras_outs if isinstance(out, Failed) or out is None),
                      False)
        if failed is not False:
            message = failed.message if failed is not None else "no output"
            raise UsageError(f"the Keras model failed in {mode} mode: {message}")
        _seeded_loss([torch.movedim(out, -1, 1) if channels_move(out) else out
                      for out in keras_outs], seed).backward()
    parameters = dict(torch_model.named_parameters())
    modules = dict(torch_model.named_modules())
    results = []
    for pair in pairs:
        layer = by_name[pair.keras_layer]
        for name, mine in _keras_gradients(pair, layer).items():
            shape = tuple(parameters[name].shape)
            theirs = torch_grads.get(name)
            if mine is None or theirs is None:
                side = " and ".join(s for s, g in (("Keras", mine), ("PyTorch", theirs))
                                    if g is None)
                results.append(GradientComparison(name, pair.keras_layer, shape, None,
                                                  (mine is None) != (theirs is None),
                                                  note=f"no gradient in {side} (frozen)"))
                continue
            m = metrics(mine, theirs)
            m64 = noise = None
            if grads64.get(name) is not None:
                m64, noise = metrics(mine, grads64[name]), metrics(theirs, grads64[name])
            bad, unsure = judge_gradient(m64, noise, m, tolerance)
            note = padding_row_note(modules.get(pair.torch_module), name, mine, theirs,
                                    tolerance) if bad else ""
            results.append(GradientComparison(
                name, pair.keras_layer, shape, m, bad, note=note,
                float64_rel=m64.max_rel if m64 else None,
                noise_rel=noise.max_rel if noise else None, inconclusive=unsure))
    for v in variables:
        v.value.grad = None
    return tuple(results)


def padding_row_note(module, name: str, mine: np.ndarray, theirs: np.ndarray,
                     tolerance: float) -> str:
    """Where PyTorch's Embedding(padding_idx=k) takes no gradient at row k (its backward
    leaves that row out) and Keras's Embedding, which has no padding_idx, does, while every
    other row agrees: the words that say so; "" otherwise."""
    row = getattr(module, "padding_idx", None)
    if not isinstance(module, nn.Embedding) or row is None or not name.endswith("weight"):
        return ""
    others = mine.copy()
    others[row] = theirs[row]
    if not np.any(mine[row]) or judge_gradient(None, None, metrics(others, theirs),
                                               tolerance)[0]:
        return ""
    return (f"PyTorch's Embedding(padding_idx={row}) takes no gradient at row {row}; Keras's "
            f"Embedding, which has no padding_idx, does: the gradients differ at that row "
            f"alone (Keras's: max abs {float(np.max(np.abs(mine[row]))):.3g}), so a step "
            f"trains the padding token's vector in Keras only")
