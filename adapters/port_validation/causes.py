"""What the port validator knows about a pair of layers beyond their values, for naming
why they differ: padding and strides, the normalisations' epsilon (and GroupNorm's groups),
the operations between paired layers, how the weights were laid out, and two reruns that
test a suspected cause."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # noqa: F401 (fixes the torch backend first)
from keras import layers, ops  # noqa: E402

from adapters.own_pair.pairing import NORM_KINDS, NORM_NAMES, flattened_from  # noqa: E402
from adapters.own_pair.port_arrays import LAYER_LEVEL_KINDS  # noqa: E402
from adapters.own_pair.port_slips import layer_slip  # noqa: E402
from adapters.port_validation.fused_activations import fused_words  # noqa: E402
from adapters.port_validation.graph import to_keras_values  # noqa: E402
from adapters.port_validation.padding_modes import module_pads, padding_mode_words  # noqa: E402
from adapters.port_validation.pairs import as_port, module_arrays  # noqa: E402
from adapters.port_validation.tracing import inbound  # noqa: E402
from comparator.analysis.kernel_layout import (  # noqa: E402
    diagnose_arrays,
    diagnose_kernel,
    diagnose_offset,
    diagnose_scale,
)
from comparator.analysis.layer_pairing import Pair  # noqa: E402
from comparator.analysis.validation import Cause, Finding, diverges, metrics  # noqa: E402
from comparator.zoo.portmaps import from_keras_layout  # noqa: E402

_KERAS_CONVS = (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv1D,
                layers.DepthwiseConv2D)
TORCH_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ZERO_PADDINGS = (layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)
_KERAS_TRANSPOSED = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
_TORCH_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _torch_padding(module, pads=()) -> tuple | None:
    """The conv's padding per side, with that of the padding modules that ran right before
    it (padding_modes.pads_before: named), whatever the values padded."""
    own = _conv_padding(module)
    if own is None:
        return None
    total = [list(side) for side in own]
    for _, pad in pads:
        for axis, (before, after) in enumerate(module_pads(pad, len(total))):
            total[axis][0] += before
            total[axis][1] += after
    return tuple(tuple(side) for side in total)


def _conv_padding(module) -> tuple | None:
    if not isinstance(module, TORCH_CONVS):
        return None
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return ((0, 0), (0, 0))
        pads = []
        for k, d in zip(module.kernel_size, module.dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return tuple((p, p) for p in module.padding)


def _per_axis(sides) -> tuple:
    """A Keras padding's or cropping's (before, after) per axis: the 1-D layers hold one pair."""
    return (tuple(sides),) if isinstance(sides[0], int) else tuple(sides)


def _keras_padding(layer, size) -> tuple | None:
    """Zero padding before the conv (a chain of ZeroPadding1D, 2D or 3D) plus its own, per
    side."""
    if not isinstance(layer, _KERAS_CONVS) or layer.data_format != "channels_last":
        return None
    dims = len(layer.kernel_size)
    pads = [[0, 0] for _ in range(dims)]
    op, inputs = inbound(layer._inbound_nodes[0].input_tensors[0])
    while isinstance(op, _ZERO_PADDINGS):
        for i, (before, after) in enumerate(_per_axis(op.padding)):
            pads[i][0] += before
            pads[i][1] += after
        op, inputs = inbound(inputs[0])
    if layer.padding == "same":
        for i in range(dims):
            n = size[i] + pads[i][0] + pads[i][1]
            k, s, d = layer.kernel_size[i], layer.strides[i], layer.dilation_rate[i]
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads[i][0] += total // 2
            pads[i][1] += total - total // 2
    return tuple(tuple(p) for p in pads)


def _torch_crop(module) -> tuple | None:
    """What a transposed conv crops from its full output, per axis (before, after): padding
    on both sides, less output_padding after."""
    if not isinstance(module, _TORCH_TRANSPOSED) or module.padding_mode != "zeros":
        return None
    return tuple((p, p - op) for p, op in zip(module.padding, module.output_padding))


def _keras_crop(layer, croppings) -> tuple | None:
    """What a Keras transposed conv crops from its full output, per axis (before, after), with
    the cropping layers after it: 'same' crops kernel - stride, the larger half after; 'valid'
    nothing (measured on Keras 3.15.1's torch backend for Conv1DTranspose, Conv2DTranspose and
    Conv3DTranspose, kernel at least the stride, no dilation; None otherwise)."""
    if not isinstance(layer, _KERAS_TRANSPOSED) or layer.data_format != "channels_last" \
            or layer.output_padding is not None or any(d != 1 for d in layer.dilation_rate) \
            or any(k < s for k, s in zip(layer.kernel_size, layer.strides)):
        return None
    extras = [k - s for k, s in zip(layer.kernel_size, layer.strides)]
    crops = [[e // 2, e - e // 2] if layer.padding == "same" else [0, 0] for e in extras]
    for cropping in croppings:
        for axis, (before, after) in enumerate(_per_axis(cropping.cropping)):
            crops[axis][0] += before
            crops[axis][1] += after
    return tuple(tuple(c) for c in crops)


def _between(layer, paired: set[str]) -> tuple[list[str], list[str]]:
    """The Keras operations between this layer and the paired layers (or inputs) before it,
    and those paired layers."""
    return _back_to_pairs(layer._inbound_nodes[0].input_tensors, paired)


def _back_to_pairs(tensors, paired: set[str]) -> tuple[list[str], list[str]]:
    """The Keras operations that make these tensors, back to the paired layers (or inputs),
    in running order, and the paired layers reached."""
    seen, order, reached = set(), [], []
    stack = list(tensors)
    while stack:
        op, inputs = inbound(stack.pop())
        if op is None or op.name in seen or isinstance(op, layers.InputLayer):
            continue
        seen.add(op.name)
        if op.name in paired:
            reached.append(op.name)
            continue
        order.append(op.name)
        stack.extend(inputs)
    return list(reversed(order)), reached


def layer_facts(pair: Pair, module, layer, trace, state, paired, croppings=(),
                pads=(), fused=None) -> dict:
    """Facts about a pair of layers for likely_causes; croppings: the cropping layers
    the Keras layer's output goes through before it is compared (graph.croppings_after);
    pads: the PyTorch padding modules (and F.pad calls' stand-ins) that ran right before it,
    named (padding_modes.pads_before); fused: the paired layers' fused activations
    (fused_activations.py), which count as operations after their layers."""
    facts = {"names": (pair.torch_module, pair.keras_layer)}
    torch_in = trace[pair.torch_module][0]
    if isinstance(module, TORCH_CONVS) and isinstance(layer, _KERAS_CONVS):
        facts["torch_stride"] = tuple(module.stride)
        facts["keras_stride"] = tuple(layer.strides)
        facts["torch_dilation"] = tuple(module.dilation)
        facts["keras_dilation"] = tuple(layer.dilation_rate)
        size = list(torch_in.shape[2:])  # before the padding modules
        for _, pad in pads:
            for axis, (before, after) in enumerate(module_pads(pad, len(size))):
                size[axis] -= before + after
        facts["torch_padding"] = _torch_padding(module, pads)
        facts["keras_padding"] = _keras_padding(layer, size)
        facts["torch_padding_mode"] = padding_mode_words(module, pads)
    if isinstance(module, _TORCH_TRANSPOSED) and isinstance(layer, _KERAS_TRANSPOSED):
        facts["torch_crop"] = _torch_crop(module)
        facts["keras_crop"] = _keras_crop(layer, croppings)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            isinstance(layer, layers.BatchNormalization):
        facts["torch_eps"], facts["keras_eps"] = float(module.eps), float(layer.epsilon)
        facts["keras_frozen_bn"] = not layer.trainable
        facts["values_per_channel"] = int(np.prod(torch_in.shape) // torch_in.shape[1])
    if pair.kind in NORM_KINDS:
        facts.update(_norm_facts(pair.kind, module, layer, torch_in))
    facts["between"], facts["previous"] = _between(layer, paired)
    facts["fused_before"] = fused_words(fused or {}, facts["previous"])
    if pair.kind in LAYER_LEVEL_KINDS:
        return {**facts, **_layer_level_facts(pair, module, layer, state)}
    values = layer.get_weights()
    worst = 0.0
    torch_arrays, keras_arrays = [], []
    for name, value in zip(pair.canonical_names, values):
        theirs = state[name].detach().cpu().numpy()
        mine = from_keras_layout(pair.kind, name, value)
        torch_arrays.append(theirs)
        keras_arrays.append(mine)
        if not np.array_equal(theirs, mine):
            worst = max(worst, float(np.max(np.abs(theirs - mine))))
    for extra in values[len(pair.canonical_names):]:
        worst = max(worst, float(np.max(np.abs(extra))) if extra.size else 0.0)
    facts["weights_max_diff"] = worst
    if worst:
        facts["layout_mistake"] = _layout_mistake(pair, torch_arrays, keras_arrays)
    return facts


def _layer_level_facts(pair: Pair, module, layer, state) -> dict:
    """A recurrent or attention pair's port slip (adapters/own_pair/port_slips.py): which
    weight or setting is not PyTorch's ported, and the slip users make that gives it."""
    slip = layer_slip(as_port(pair), layer, module_arrays(state, pair.torch_module),
                      {pair.torch_module: module})
    return {"port_slip": slip} if slip is not None else {}


def _norm_facts(kind: str, module, layer, torch_in) -> dict:
    """Epsilon (and GroupNorm's groups) of a LayerNorm, GroupNorm or RMSNorm pair. PyTorch's
    RMSNorm with eps=None uses its input dtype's machine epsilon."""
    torch_eps = module.eps
    if torch_eps is None:
        torch_eps = torch.finfo(torch.from_numpy(torch_in[:0]).dtype).eps
    instance = isinstance(module, nn.modules.instancenorm._InstanceNorm)
    facts = {"norm": NORM_NAMES["instance_norm" if instance else kind],
             "torch_eps": float(torch_eps), "keras_eps": float(layer.epsilon)}
    if kind == "group_norm":  # an InstanceNorm normalises each channel alone
        groups = module.num_features if instance else module.num_groups
        facts["torch_groups"], facts["keras_groups"] = int(groups), int(layer.groups)
    return facts


def _layout_mistake(pair: Pair, torch_arrays, keras_arrays):
    """The porting mistake that turns PyTorch's arrays into Keras's: a kernel in another
    layout when only the kernel differs, else arrays set in each other's places."""
    others_equal = all(np.array_equal(t, k) for t, k in zip(torch_arrays[1:], keras_arrays[1:]))
    if pair.kind.startswith("scale:"):
        return diagnose_scale(torch_arrays[0], keras_arrays[0])
    if pair.kind.startswith(("offset:", "prefix:")):
        return diagnose_offset(torch_arrays[0], keras_arrays[0])
    if pair.kind != "bn" and others_equal:
        return diagnose_kernel(pair.kind, torch_arrays[0], keras_arrays[0])
    return diagnose_arrays(pair.canonical_names, torch_arrays, keras_arrays)


def flatten_order_explains(pair: Pair, layer, trace, tolerance: float) -> bool:
    """Does the Keras kernel, read as expecting PyTorch's (c, h, w) flattening, give
    PyTorch's output? Then the rows were not permuted for Keras's (h, w, c) Flatten."""
    if not isinstance(layer, layers.Dense) or flattened_from(layer) is None:
        return False
    x, y, _ = trace[pair.torch_module]
    weights = layer.get_weights()
    out = x.astype(np.float64) @ weights[0].astype(np.float64)
    if layer.use_bias:
        out = out + weights[1]
    return not diverges(metrics(out, y), tolerance)


def one_pass_variance_explains(layer, torch_input, keras_value, reference, eps) -> bool:
    """Is Keras's training-mode BatchNorm output what float32 E[x^2] - E[x]^2 with
    PyTorch's epsilon gives, much closer than it is to the reference?"""
    if not isinstance(layer, layers.BatchNormalization) or torch_input.ndim < 2:
        return False
    eps = layer.epsilon if eps is None else eps
    x = torch.from_numpy(to_keras_values(torch_input).astype(np.float32))
    axes = tuple(range(x.ndim - 1))
    mean = torch.mean(x, dim=axes)
    variance = torch.mean(torch.square(x), dim=axes) - torch.square(mean)
    weights = {w.path.rsplit("/", 1)[-1]: torch.from_numpy(np.asarray(ops.convert_to_numpy(w)))
               for w in layer.weights}
    y = (x - mean) * torch.rsqrt(variance + eps)
    if layer.scale:
        y = y * weights["gamma"]
    if layer.center:
        y = y + weights["beta"]
    one_pass = metrics(keras_value, y.numpy()).max_rel
    return one_pass * 10 < metrics(keras_value, reference).max_rel


def output_activation(fn, pairs, moves: dict, keras_out: np.ndarray, torch_out: np.ndarray,
                      mode: str, tolerance, output=None) -> Finding | None:
    """Where the outputs differ and no layer does: is it the activation that Keras's output
    layer applies inside itself (Dense(activation="softmax")), which the layer comparisons
    apply to PyTorch's value too, while PyTorch's model returns that module's output
    without it? Then Keras's output is the activation of PyTorch's. moves: whether each
    PyTorch module's activations change layout (validation_setup.Setup.moves). output: the
    graph's output tensor compared, of several (default: its only one)."""
    layer = inbound(fn.outputs[0] if output is None else output)[0]
    pair = next((p for p in pairs if p.keras_layer == getattr(layer, "name", None)), None)
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "linear")
    if pair is None or activation is None or name == "linear":
        return None
    expected = activation(torch.from_numpy(to_keras_values(torch_out, moves[pair.torch_module])))
    expected = np.asarray(ops.convert_to_numpy(expected))
    if keras_out.shape != expected.shape or diverges(metrics(keras_out, expected), tolerance):
        return None
    return Finding(pair.torch_module, pair.keras_layer, f"{mode}, output", (Cause(
        "output_activation",
        f"Keras {pair.keras_layer} applies {name} inside the layer (activation={name!r}); "
        f"PyTorch's model returns {pair.torch_module}'s output without it",
        "the two models give different outputs from the same weights: give the Keras layer "
        "no activation (a softmax belongs in the loss, from_logits=True), or apply it in "
        "PyTorch's forward"),))


def keras_after_the_pairs(fn, paired: set[str], outputs=None) -> list[str]:
    """The Keras operations after the last paired layers (paired: their outputs' names), in
    running order, back from the graph's outputs (or these of them)."""
    return _back_to_pairs(fn.outputs if outputs is None else outputs, paired)[0]


def after_the_pairs(fn, substituted: dict, mode: str, outputs=None) -> Finding | None:
    """Where the outputs differ and no layer does, and the isolated pass's output differs
    too: there Keras's operations after the last paired layers run on PyTorch's values of
    those layers, so the output is made different after them, by those operations (a
    Softmax layer, a pooling) or by PyTorch's forward (a log_softmax it applies there).
    substituted: the pair whose PyTorch value the isolated pass puts in, by Keras operation;
    outputs: the graph's output tensors that differ, of several (default: all)."""
    after, reached = _back_to_pairs(fn.outputs if outputs is None else outputs,
                                    set(substituted))
    if not reached:
        return None
    last = substituted[reached[0]]
    keras_side = (f"Keras's {', '.join(after)}" if after else
                  "Keras, which does nothing there,")
    return Finding(last.torch_module, last.keras_layer, f"{mode}, isolated, output", (Cause(
        "after_last_pair",
        f"what follows the last paired layers differs: on PyTorch's values of "
        f"{', '.join(reached)}, {keras_side} and PyTorch's forward give other outputs",
        "the layers agree; compare the operations after them, in Keras's model and in "
        "PyTorch's forward"),))
