"""Layer-by-layer port validation and weight porting between a PyTorch module and a
Keras functional model (the framework half of comparator/validation.py).

PyTorch is traced with forward hooks on the modules that hold weights; Keras by
walking its functional graph node by node, which also lets any layer's output
be replaced by PyTorch's value (the isolated passes).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras import layers, ops, tree  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402

from adapters.port_training import (  # noqa: E402
    keras_batchnorm_step,
    keras_dropout_layers,
    torch_batches_seen,
    torch_batchnorm_step,
    torch_dropout_layers,
)
from comparator.analysis.kernel_layout import diagnose_arrays, diagnose_kernel  # noqa: E402
from comparator.analysis.training_side import compare_dropout, compare_statistics  # noqa: E402
from comparator.analysis.states import is_bn_statistic  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.zoo.portmaps import (  # noqa: E402
    BN_SUFFIXES,
    from_keras_layout,
    port_plan,
    to_keras_layout,
)
from comparator.analysis.validation import (  # noqa: E402
    DEFAULT_GRADIENT_TOLERANCE,
    DEFAULT_TOLERANCE,
    MODES,
    GradientComparison,
    LayerComparison,
    LayerInfo,
    Pair,
    PassResult,
    PortValidation,
    check_pair,
    diverges,
    judge,
    judge_gradient,
    likely_causes,
    metrics,
    pair_layers,
)

# Layers whose training-mode behaviour is random: off in both frameworks' training passes.
_NOISE = (layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
          layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
          layers.AlphaDropout)
_TORCH_NOISE = (nn.modules.dropout._DropoutNd,)
_KERAS_CONVS = (layers.Conv2D, layers.DepthwiseConv2D)


# ----- layouts ---------------------------------------------------------------------------


def to_keras_values(array: np.ndarray) -> np.ndarray:
    """An activation in PyTorch's layout (N, C, ...) in Keras's (N, ..., C)."""
    if array.ndim < 3:
        return array
    return np.ascontiguousarray(np.moveaxis(array, 1, -1))


def to_torch_values(array: np.ndarray) -> np.ndarray:
    if array.ndim < 3:
        return array
    return np.ascontiguousarray(np.moveaxis(array, -1, 1))


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(ops.convert_to_numpy(value))


# ----- the two models' weighted layers ---------------------------------------------------


def _torch_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            return "conv"
        if module.groups == module.in_channels == module.out_channels:
            return "depthwise"
        return "other"
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn"
    return "other"


def _torch_layers(model: nn.Module) -> dict[str, tuple[nn.Module, LayerInfo, tuple[str, ...]]]:
    """Every module holding weights itself: (module, info, canonical names)."""
    found = {}
    for name, module in model.named_modules():
        own = {n: t for n, t in module.named_parameters(recurse=False)}
        own.update({n: t for n, t in module.named_buffers(recurse=False)
                    if n != "num_batches_tracked"})
        if not own:
            continue
        kind = _torch_kind(module)
        suffixes = BN_SUFFIXES if kind == "bn" else ("weight", "bias")
        if set(own) - set(suffixes):
            kind = "other"
        ordered = [s for s in suffixes if s in own]
        names = tuple(f"{name}.{s}" if name else s for s in ordered)
        info = LayerInfo(name, kind, tuple(tuple(own[s].shape) for s in ordered),
                         type(module).__name__)
        found[name] = (module, info, names)
    return found


def _torch_side(model, weights: str | None):
    """The PyTorch module to trace, from an object or a SPEC, and its name."""
    from adapters.user_models import as_pytorch

    _refuse_onnx(model)
    loaded = as_pytorch(model, weights)
    if loaded.inference_only or _exported(loaded.model):
        where = f" {loaded.source}" if loaded.source != "<object>" else ""
        raise UsageError(f"cannot trace the PyTorch model{where}: it is a torch.export program, "
                         "whose modules are flattened into one graph of ATen operations "
                         "(no Conv2d or BatchNorm module runs, so none can be paired with a "
                         "Keras layer); give the nn.Module itself (file.py:callable, with "
                         "its state_dict as weights)")
    return loaded.model, loaded.name


def _exported(model) -> bool:
    """A torch.export program's module(): a graph whose weights sit on bare nn.Module
    holders, where a traced (torch.fx) model keeps its Conv2d, BatchNorm2d, ..."""
    return isinstance(model, torch.fx.GraphModule) and any(
        type(sub) is nn.Module and any(True for _ in sub.parameters(recurse=False))
        for sub in model.modules())


def _keras_side(model, weights: str | None, x_channels_last: np.ndarray):
    from adapters.user_models import as_keras

    _refuse_onnx(model)
    loaded = as_keras(model, weights, tuple(x_channels_last.shape[1:]))
    return loaded.model, loaded.name


def _refuse_onnx(model) -> None:
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        raise UsageError(f"{os.fspath(model)} is an ONNX file: the validator traces a PyTorch "
                         "module and a Keras model layer by layer, which an ONNX graph is "
                         "neither of (compare.py takes it as the referee, --onnx)")


def _functional(model) -> Functional:
    if isinstance(model, keras.Sequential):
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise UsageError(f"cannot trace Keras Sequential model {model.name!r}: it has no "
                             "input yet; start it with keras.Input(shape) or build it")
        return inner
    if isinstance(model, Functional):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UsageError(f"cannot trace Keras model {model.name!r}: the validator takes "
                             f"one input and one output, it has {len(model.inputs)} and "
                             f"{len(model.outputs)}")
        return model
    held = [layer.name for layer in getattr(model, "layers", [])]
    raise UsageError(f"cannot trace Keras model {getattr(model, 'name', model)!r} "
                     f"({type(model).__name__}, subclassed): layer-by-layer validation needs "
                     "the graph of a functional or Sequential model, and a subclassed "
                     "model's call() hides how its layers"
                     + (f" ({', '.join(held[:6])}{', ...' if len(held) > 6 else ''})"
                        if held else "")
                     + " connect; rebuild it with the functional API (compare.py still "
                     "compares it as a whole)")


def _nodes(fn: Functional):
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _inbound(tensor):
    """The operation that produced a symbolic Keras tensor, and that operation's inputs."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    op = history.operation
    node = op._inbound_nodes[history.node_index]
    return op, list(node.input_tensors)


def _keras_kind(layer) -> str:
    if isinstance(layer, layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, layers.Conv2D):
        return "conv"
    if isinstance(layer, layers.Dense):
        shape = _flattened_from(layer)
        return f"flatten_dense:{shape[2]},{shape[0]},{shape[1]}" if shape else "dense"
    if isinstance(layer, layers.BatchNormalization):
        return "bn"
    return "other"


def _flattened_from(layer) -> tuple[int, ...] | None:
    """(h, w, c) when the Dense layer's input is Keras's Flatten of a 4-D map."""
    op, inputs = _inbound(layer._inbound_nodes[0].input_tensors[0])
    if isinstance(op, layers.Flatten) and len(inputs[0].shape) == 4:
        return tuple(int(d) for d in inputs[0].shape[1:])
    return None


def _canonical_shape(kind: str, index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    if index > 0 or kind == "bn":
        return tuple(shape)
    if kind == "conv":
        return (shape[3], shape[2], shape[0], shape[1])
    if kind == "depthwise":
        return (shape[2], shape[3], shape[0], shape[1])
    if kind == "dense" or kind.startswith("flatten_dense"):
        return (shape[1], shape[0])
    return tuple(shape)


def _keras_layers(fn: Functional) -> dict[str, tuple[object, LayerInfo]]:
    found, calls = {}, {}
    for node in _nodes(fn):
        calls[node.operation.name] = calls.get(node.operation.name, 0) + 1
    for layer in fn.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.Model):
            raise UsageError(f"cannot trace Keras layer {layer.name!r}: it is a nested model; "
                             "validate it on its own or flatten it into one functional model")
        if calls.get(layer.name, 0) > 1:
            raise UsageError(f"Keras layer {layer.name!r} is called {calls[layer.name]} times; "
                             "a shared layer cannot be matched to one PyTorch module")
        kind = _keras_kind(layer)
        shapes = tuple(_canonical_shape(kind, i, tuple(w.shape))
                       for i, w in enumerate(layer.weights))
        found[layer.name] = (layer, LayerInfo(layer.name, kind, shapes, type(layer).__name__))
    return found


def resolve_pairs(torch_model: nn.Module, keras_model, mapping: dict | None = None,
                  pairs: list[Pair] | None = None) -> list[Pair]:
    """The pairs to port and compare: given (a zoo port plan), from a mapping, or by order
    and shape. Every weighted layer of either model must be in exactly one pair."""
    fn = _functional(keras_model)
    torch_layers, keras_layers = _torch_layers(torch_model), _keras_layers(fn)
    unsupported = [f"{info.name} ({info.type_name})" for _, info, _ in torch_layers.values()
                   if info.kind == "other"]
    if unsupported:
        raise UsageError(f"cannot port PyTorch modules of these kinds: {', '.join(unsupported)}"
                         "; the validator knows Conv2d, depthwise Conv2d, Linear and BatchNorm")
    if pairs is None:
        matched = pair_layers([t[1] for t in torch_layers.values()],
                              [k[1] for k in keras_layers.values()], mapping)
        return [Pair(t.name, k.name, k.kind if k.kind.startswith("flatten_dense") else t.kind,
                     torch_layers[t.name][2]) for t, k in matched]
    missing_t = sorted(set(torch_layers) - {p.torch_module for p in pairs})
    missing_k = sorted(set(keras_layers) - {p.keras_layer for p in pairs})
    unknown = [p.keras_layer for p in pairs if p.keras_layer not in keras_layers] + \
              [p.torch_module for p in pairs if p.torch_module not in torch_layers]
    if unknown or missing_t or missing_k:
        raise UsageError("the port plan does not fit these models: " + "; ".join(filter(None, [
            unknown and f"no such weighted layer {', '.join(unknown[:5])}",
            missing_t and f"PyTorch modules left out {', '.join(missing_t[:5])}",
            missing_k and f"Keras layers left out {', '.join(missing_k[:5])}"])))
    for pair in pairs:
        check_pair(torch_layers[pair.torch_module][1], keras_layers[pair.keras_layer][1])
    order = list(torch_layers)
    return sorted(pairs, key=lambda p: order.index(p.torch_module))


def plan_pairs(layer_names, torch_model: nn.Module) -> list[Pair]:
    """The pairs of a zoo family's port map (its spec's `layer_names`), for this PyTorch
    model."""
    # The plan needs names and ranks only: zero-size broadcasts stand in for the arrays.
    arrays = {name: np.broadcast_to(np.float32(0), tuple(t.shape))
              for name, t in _state(torch_model).items()}
    return [Pair(p.module, p.keras_layer, p.kind, p.canonical_names)
            for p in port_plan(layer_names, arrays)]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict(keep_vars=True).items()
            if not k.endswith("num_batches_tracked")}


# ----- porting ---------------------------------------------------------------------------


def _port_kind(pair: Pair, naive: bool) -> str:
    # The naive port copies a dense kernel transposed, whatever fed the layer.
    return "dense" if naive and pair.kind.startswith("flatten_dense") else pair.kind


def port_weights(torch_model: nn.Module, keras_model, *, direction: str = "torch_to_keras",
                 mapping: dict | None = None, pairs: list[Pair] | None = None,
                 naive: bool = False) -> list[Pair]:
    """Copy the weights of every pair from one model into the other, in place.

    direction: "torch_to_keras" or "keras_to_torch". A Keras bias that PyTorch lacks
    (keras.applications' ResNet50 convs) is set to zero, or must be zero the other way.
    naive: copy a dense kernel fed by a flattened map without reordering its rows (the
    same-shape port that loads and computes something else). A round trip returns the
    original arrays bit for bit.
    """
    if direction not in ("torch_to_keras", "keras_to_torch"):
        raise UsageError(f"direction must be torch_to_keras or keras_to_torch, not {direction!r}")
    pairs = resolve_pairs(torch_model, keras_model, mapping, pairs)
    fn = _functional(keras_model)
    by_name = {layer.name: layer for layer in fn.layers}
    state = _state(torch_model)
    for pair in pairs:
        layer, kind = by_name[pair.keras_layer], _port_kind(pair, naive)
        if direction == "torch_to_keras":
            values = [to_keras_layout(kind, n, state[n].detach().cpu().numpy())
                      for n in pair.canonical_names]
            current = layer.get_weights()
            values += [np.zeros_like(w) for w in current[len(values):]]
            layer.set_weights(values)
            continue
        current = layer.get_weights()
        for extra in current[len(pair.canonical_names):]:
            if np.any(extra):
                raise UsageError(f"Keras layer {layer.name} has a non-zero bias that PyTorch "
                                 f"{pair.torch_module} lacks: the port would change the function")
        with torch.no_grad():
            for name, value in zip(pair.canonical_names, current):
                array = from_keras_layout(kind, name, value)
                state[name].copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return pairs


# ----- running the models ------------------------------------------------------------------


class _Failed:
    def __init__(self, message: str):
        self.message = message


@contextlib.contextmanager
def _torch_mode(model: nn.Module, mode: str):
    """eval() or train() with noise layers off; the module's state and modes restored."""
    flags = {m: m.training for m in model.modules()}
    # A forward pass changes buffers only (BatchNorm running statistics), never parameters.
    saved = ({n: b.detach().clone() for n, b in model.named_buffers()}
             if mode == "training" else None)
    model.train(mode == "training")
    for module in model.modules():
        if isinstance(module, _TORCH_NOISE):
            module.eval()
    try:
        yield
    finally:
        if saved is not None:
            with torch.no_grad():
                for name, buffer in model.named_buffers():
                    buffer.copy_(saved[name])
        for module, flag in flags.items():
            module.training = flag


def _torch_trace(model: nn.Module, pairs: list[Pair], x: np.ndarray, mode: str):
    """Each paired module's (input, output) and the model's output, as numpy."""
    modules = dict(model.named_modules())
    records: dict[str, list] = {p.torch_module: [] for p in pairs}
    hooks = []
    for pair in pairs:
        def hook(module, args, output, name=pair.torch_module):
            records[name].append((args[0].detach().cpu().numpy().copy(),
                                  output.detach().cpu().numpy().copy()))
        hooks.append(modules[pair.torch_module].register_forward_hook(hook))
    try:
        with _torch_mode(model, mode), torch.no_grad():
            device = next(model.parameters()).device
            output = model(torch.from_numpy(x).to(device)).detach().cpu().numpy()
    except Exception as exc:  # the user's model refused the input
        raise UsageError(f"the PyTorch model failed on input {tuple(x.shape)}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        for h in hooks:
            h.remove()
    for name, calls in records.items():
        if len(calls) != 1:
            raise UsageError(f"cannot trace PyTorch module {name}: it ran {len(calls)} times in "
                             "one forward pass; the validator pairs modules that run exactly "
                             "once with one Keras layer")
    return {name: calls[0] for name, calls in records.items()}, output


def _run_keras(fn: Functional, x, training: bool, watch: set[str],
               substitute: dict | None = None):
    """Run the graph node by node. Returns (outputs of watched layers, model output).

    `substitute` maps layer names to values that flow on instead of what the layer
    computed (which is still recorded): the isolated pass.
    """
    values = {id(fn.inputs[0]): ops.convert_to_tensor(x)}
    recorded = {}
    for node in _nodes(fn):
        op = node.operation
        inputs = [values.get(id(t)) for t in node.input_tensors]
        failed = next((v for v in inputs if isinstance(v, _Failed) or v is None), False)
        if failed is not False:
            cause = failed.message if isinstance(failed, _Failed) else "input missing"
            result = _Failed(cause if cause.startswith("not computed") else
                             f"not computed, an earlier Keras operation failed ({cause})")
        else:
            args, kwargs = node.arguments.fill_in(values)
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs["training"] = training and not isinstance(op, _NOISE)
            try:
                result = op(*args, **kwargs)
            except Exception as exc:
                result = _Failed(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
        if op.name in watch:
            recorded[op.name] = result
        if substitute is not None and op.name in substitute:
            result = substitute[op.name]
        outputs = [result] * len(node.outputs) if isinstance(result, _Failed) \
            else tree.flatten(result)
        for tensor, value in zip(node.outputs, outputs):
            values[id(tensor)] = value
    return recorded, values.get(id(fn.outputs[0]))


@contextlib.contextmanager
def _keras_state_kept(fn: Functional):
    """Restores what a forward pass may change: BatchNormalization's moving statistics."""
    variables = [v for layer in fn.layers if isinstance(layer, layers.BatchNormalization)
                 for v in (layer.moving_mean, layer.moving_variance)]
    saved = [ops.convert_to_numpy(v).copy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


# ----- facts for causes ----------------------------------------------------------------


def _torch_padding(module, size) -> tuple | None:
    if not isinstance(module, nn.Conv2d):
        return None
    if module.padding_mode != "zeros":
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


def _keras_padding(layer, size) -> tuple | None:
    """Zero padding before the conv (ZeroPadding2D chain) plus its own, per side."""
    if not isinstance(layer, _KERAS_CONVS) or layer.data_format != "channels_last":
        return None
    pads = [[0, 0], [0, 0]]
    op, inputs = _inbound(layer._inbound_nodes[0].input_tensors[0])
    while isinstance(op, layers.ZeroPadding2D):
        for i, (before, after) in enumerate(op.padding):
            pads[i][0] += before
            pads[i][1] += after
        op, inputs = _inbound(inputs[0])
    if layer.padding == "same":
        for i in range(2):
            n = size[i] + pads[i][0] + pads[i][1]
            k, s, d = layer.kernel_size[i], layer.strides[i], layer.dilation_rate[i]
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads[i][0] += total // 2
            pads[i][1] += total - total // 2
    return tuple(tuple(p) for p in pads)


def _between(layer, paired: set[str]) -> list[str]:
    """The Keras operations between this layer and the paired layers (or inputs) before it."""
    seen, order = set(), []
    stack = list(layer._inbound_nodes[0].input_tensors)
    while stack:
        op, inputs = _inbound(stack.pop())
        if op is None or op.name in seen or op.name in paired or \
                isinstance(op, layers.InputLayer):
            continue
        seen.add(op.name)
        order.append(op.name)
        stack.extend(inputs)
    return list(reversed(order))


def _facts(pair: Pair, module, layer, trace, state, paired) -> dict:
    facts = {"names": (pair.torch_module, pair.keras_layer)}
    torch_in = trace[pair.torch_module][0]
    if isinstance(module, nn.Conv2d) and isinstance(layer, _KERAS_CONVS):
        facts["torch_stride"] = tuple(module.stride)
        facts["keras_stride"] = tuple(layer.strides)
        size = torch_in.shape[2:]
        facts["torch_padding"] = _torch_padding(module, size)
        facts["keras_padding"] = _keras_padding(layer, size)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            isinstance(layer, layers.BatchNormalization):
        facts["torch_eps"], facts["keras_eps"] = float(module.eps), float(layer.epsilon)
        facts["keras_frozen_bn"] = not layer.trainable
        facts["values_per_channel"] = int(np.prod(torch_in.shape) // torch_in.shape[1])
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
    facts["between"] = _between(layer, paired)
    return facts


def _layout_mistake(pair: Pair, torch_arrays, keras_arrays):
    """The porting mistake that turns PyTorch's arrays into Keras's: a kernel in another
    layout when only the kernel differs, else arrays set in each other's places."""
    others_equal = all(np.array_equal(t, k) for t, k in zip(torch_arrays[1:], keras_arrays[1:]))
    if pair.kind != "bn" and others_equal:
        return diagnose_kernel(pair.kind, torch_arrays[0], keras_arrays[0])
    return diagnose_arrays(pair.canonical_names, torch_arrays, keras_arrays)


def _flatten_order_explains(pair: Pair, layer, trace, tolerance: float) -> bool:
    """Does the Keras kernel, read as expecting PyTorch's (c, h, w) flattening, give
    PyTorch's output? Then the rows were not permuted for Keras's (h, w, c) Flatten."""
    if not isinstance(layer, layers.Dense) or _flattened_from(layer) is None:
        return False
    x, y = trace[pair.torch_module]
    weights = layer.get_weights()
    out = x.astype(np.float64) @ weights[0].astype(np.float64)
    if layer.use_bias:
        out = out + weights[1]
    return not diverges(metrics(out, y), tolerance)


def _one_pass_variance_explains(layer, torch_input, keras_value, reference, eps) -> bool:
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


# ----- comparing ---------------------------------------------------------------------------


def _activated(layer, torch_output: np.ndarray) -> np.ndarray:
    """PyTorch's value as the Keras layer emits it: in Keras's layout, through the
    activation Keras fuses into the layer (Conv2D(activation="relu"), ...)."""
    value = to_keras_values(torch_output)
    activation = getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear":
        return value
    return _numpy(activation(torch.from_numpy(value)))  # keeps float64 references float64


def _compare(pair, layer, keras_value, reference, reference64, facts, isolated, mode,
             tolerance, trace) -> LayerComparison:
    """Keras's value of one layer against PyTorch's (both in Keras's layout here)."""
    torch_shape = tuple(trace[pair.torch_module][1].shape)
    if isinstance(keras_value, _Failed) or keras_value is None:
        message = keras_value.message if keras_value is not None else "not computed"
        causes = likely_causes({**facts, "failed": message}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape, (),
                               None, True, causes, note=message)
    value = _numpy(keras_value)
    keras_shape = tuple(value.shape)
    if value.shape != reference.shape:
        causes = likely_causes({**facts, "shape": (torch_shape, keras_shape)}, isolated, mode)
        return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                               keras_shape, None, True, causes)
    m = metrics(value, reference)
    m64 = noise = None
    if reference64 is not None:
        m64, noise = metrics(value, reference64), metrics(reference, reference64)
    bad, unsure = judge(m64, noise, m, tolerance)
    causes = ()
    if bad:
        more = dict(facts)
        if isolated and _flatten_order_explains(pair, layer, trace, tolerance):
            more["flatten_order"] = True
        if isolated and mode == "training" and _one_pass_variance_explains(
                layer, trace[pair.torch_module][0], value,
                reference if reference64 is None else reference64, facts.get("torch_eps")):
            more["one_pass_variance"] = True
        causes = likely_causes(more, isolated, mode)
    return LayerComparison(pair.torch_module, pair.keras_layer, pair.kind, torch_shape,
                           keras_shape, m, bad, causes,
                           float64_rel=m64.max_rel if m64 else None,
                           noise_rel=noise.max_rel if noise else None, inconclusive=unsure)


def _output_comparison(keras_out, torch_out, torch_out64, tolerance):
    """(metrics against PyTorch float32, diverges, PyTorch's own float32 error)."""
    if isinstance(keras_out, _Failed) or keras_out is None:
        return None, True, None
    value = to_torch_values(_numpy(keras_out))
    if value.shape != torch_out.shape:
        return None, True, None
    m = metrics(value, torch_out)
    if torch_out64 is None:
        return m, diverges(m, tolerance), None
    noise = metrics(torch_out, torch_out64)
    return m, judge(metrics(value, torch_out64), noise, m, tolerance)[0], noise.max_rel


def _torch_gradients(model: nn.Module, x: np.ndarray, seed: int) -> dict:
    params = dict(model.named_parameters())
    for p in params.values():
        p.grad = None
    with _torch_mode(model, "training"):
        device = next(model.parameters()).device
        out = model(torch.from_numpy(x).to(device))
        target = torch.from_numpy(np.random.default_rng(seed).normal(size=tuple(out.shape)))
        torch.mean((out - target.to(out)) ** 2).backward()
    grads = {n: (p.grad.detach().cpu().numpy().copy() if p.grad is not None else None)
             for n, p in params.items()}
    for p in params.values():
        p.grad = None
    return grads


def _gradients(torch_model, model64, fn, pairs, x, seed, tolerance):
    """Parameter gradients of the same loss (mean squared distance of the outputs to a
    seeded target) after one backward pass in training mode, Dropout off."""
    modules = dict(torch_model.named_modules())
    by_name = {layer.name: layer for layer in fn.layers}
    torch_grads = _torch_gradients(torch_model, x, seed)
    grads64 = _torch_gradients(model64, x.astype(np.float64), seed) if model64 else {}
    variables = [v for layer in fn.layers for v in layer.trainable_weights]
    for v in variables:
        v.value.grad = None
    with _keras_state_kept(fn):
        _, keras_out = _run_keras(fn, to_keras_values(x), True, set())
        if isinstance(keras_out, _Failed) or keras_out is None:
            message = keras_out.message if keras_out is not None else "no output"
            raise UsageError(f"the Keras model failed in training mode: {message}")
        keras_out = keras_out if keras_out.ndim < 3 else torch.movedim(keras_out, -1, 1)
        target = np.random.default_rng(seed).normal(size=tuple(keras_out.shape))
        torch.mean((keras_out - torch.from_numpy(target).to(keras_out)) ** 2).backward()
    results = []
    for pair in pairs:
        layer = by_name[pair.keras_layer]
        trainable = {id(v) for v in layer.trainable_weights}
        module = modules[pair.torch_module]
        for name, variable in zip(pair.canonical_names, layer.weights):
            suffix = name.rsplit(".", 1)[-1]
            if is_bn_statistic(name):
                continue
            shape = tuple(module.get_parameter(suffix).shape)
            mine = variable.value.grad if id(variable) in trainable else None
            theirs = torch_grads.get(name)
            if mine is None or theirs is None:
                side = " and ".join(s for s, g in (("Keras", mine), ("PyTorch", theirs))
                                    if g is None)
                results.append(GradientComparison(name, pair.keras_layer, shape, None,
                                                  (mine is None) != (theirs is None),
                                                  note=f"no gradient in {side} (frozen)"))
                continue
            mine = from_keras_layout(pair.kind, name, mine.detach().cpu().numpy())
            m = metrics(mine, theirs)
            m64 = noise = None
            if grads64.get(name) is not None:
                m64, noise = metrics(mine, grads64[name]), metrics(theirs, grads64[name])
            bad, unsure = judge_gradient(m64, noise, m, tolerance)
            results.append(GradientComparison(
                name, pair.keras_layer, shape, m, bad,
                float64_rel=m64.max_rel if m64 else None,
                noise_rel=noise.max_rel if noise else None, inconclusive=unsure))
    for v in variables:
        v.value.grad = None
    return tuple(results)


def validate_port(torch_model: nn.Module, keras_model, inputs, *, mapping: dict | None = None,
                  pairs: list[Pair] | None = None, modes=MODES, isolation: bool = True,
                  gradients: bool = True, tolerance: float = DEFAULT_TOLERANCE,
                  gradient_tolerance: float = DEFAULT_GRADIENT_TOLERANCE,
                  reference64: bool = True, seed: int = 0, train_step: bool = True,
                  pytorch_weights: str | None = None,
                  keras_weights: str | None = None) -> PortValidation:
    """Compare a PyTorch module and a Keras functional model layer by layer on `inputs`
    (PyTorch's layout: N, C, H, W for images; Keras gets them channels-last).

    Either model may be given as a SPEC instead (adapters/user_models.py: file.py:callable,
    package.module:callable, a .keras file for Keras), with a state_dict file as
    pytorch_weights and a .weights.h5 file as keras_weights.

    Layers are paired by `pairs` (a zoo port plan), else by `mapping` ({torch module name:
    Keras layer name}, which must name every layer with weights), else in order by kind
    and weight shape. With reference64, a float64 copy of the PyTorch model measures
    PyTorch's own float32 error at every layer, so rounding is not mistaken for a
    difference. With train_step, every BatchNorm pair takes one training-mode step on the
    input PyTorch's module saw and their running statistics are compared (momentum, kept
    variance), and the Dropout layers' rates and kinds are compared in the order they run.
    Both models keep their weights, modes and statistics.
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"modes must be among {', '.join(MODES)}, got {list(modes)}")
    x, torch_model, torch_name, keras_model, keras_name, fn = _checked_models(
        torch_model, keras_model, inputs, pytorch_weights, keras_weights)
    pairing = "port plan" if pairs is not None else (
        "explicit mapping" if mapping is not None else "order and shape")
    setup = _Setup(torch_model, fn, resolve_pairs(torch_model, keras_model, mapping, pairs),
                   x, reference64)
    passes, traces = [], {}
    for mode in modes:
        traces[mode], found = _mode_passes(setup, mode, isolation, tolerance)
        passes += found
    grads = (_gradients(torch_model, setup.model64, fn, setup.pairs, x, seed,
                        gradient_tolerance) if gradients else ())
    statistics, dropout = ((), ())
    if train_step:
        training_trace = traces.get("training") or _torch_trace(torch_model, setup.pairs, x,
                                                                "training")[0]
        statistics = _statistics(setup.modules, setup.by_name, setup.pairs, training_trace,
                                 tolerance)
        dropout = compare_dropout(torch_dropout_layers(torch_model, x),
                                  keras_dropout_layers(node.operation for node in _nodes(fn)))
    notes = []
    if "training" in modes or gradients:
        notes.append("training mode: BatchNorm on batch statistics, Dropout off in both "
                     "frameworks (their random masks cannot match); weights and running "
                     "statistics restored afterwards")
    return PortValidation(
        torch_model=torch_name, keras_model=keras_name,
        input_shape=tuple(x.shape), pairing=pairing, pairs=len(setup.pairs),
        tolerance=tolerance, gradient_tolerance=gradient_tolerance, passes=tuple(passes),
        gradients=grads, gradient_mode="training" if gradients else None, notes=tuple(notes),
        float64_reference=reference64, statistics=statistics, dropout=dropout)


def _checked_models(torch_model, keras_model, inputs, pytorch_weights, keras_weights):
    """The inputs as float32 (PyTorch's layout) and both models, loaded where given as
    specs or files, with the inputs checked against the Keras model's input shape."""
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
    torch_model, torch_name = _torch_side(torch_model, pytorch_weights)
    keras_model, keras_name = _keras_side(keras_model, keras_weights, to_keras_values(x))
    fn = _functional(keras_model)
    expected = tuple(fn.inputs[0].shape[1:])
    given = to_keras_values(x).shape[1:]
    if len(expected) != len(given) or any(e is not None and e != g
                                          for e, g in zip(expected, given)):
        raise UsageError(f"inputs of shape {tuple(x.shape)} (PyTorch layout, Keras "
                         f"{(x.shape[0], *given)}) do not fit the Keras model's input "
                         f"{(None, *expected)}")
    return x, torch_model, torch_name, keras_model, keras_name, fn


class _Setup:
    """What every pass of one validation shares: the pairs, both models' layers by name,
    PyTorch's state and its float64 copy (the rounding reference)."""

    def __init__(self, torch_model, fn, pairs, x, reference64: bool):
        self.fn, self.pairs, self.x = fn, pairs, x
        self.torch_model = torch_model
        self.modules = dict(torch_model.named_modules())
        self.by_name = {layer.name: layer for layer in fn.layers}
        self.watch = {p.keras_layer for p in pairs}
        self.state = _state(torch_model)
        self.model64 = copy.deepcopy(torch_model).double() if reference64 else None
        self.modules64 = dict(self.model64.named_modules()) if self.model64 is not None else {}
        self.facts = None


def _mode_passes(setup: _Setup, mode: str, isolation: bool, tolerance: float):
    """PyTorch's trace in this mode, and the forward (then isolated) pass results."""
    pairs, by_name = setup.pairs, setup.by_name
    trace, torch_out = _torch_trace(setup.torch_model, pairs, setup.x, mode)
    trace64, torch_out64 = (_torch_trace(setup.model64, pairs, setup.x.astype(np.float64),
                                         mode)
                            if setup.model64 is not None else ({}, None))
    if setup.facts is None:
        setup.facts = {p.torch_module: _facts(p, setup.modules[p.torch_module],
                                              by_name[p.keras_layer], trace, setup.state,
                                              setup.watch) for p in pairs}
    references = {p.keras_layer: _activated(by_name[p.keras_layer], trace[p.torch_module][1])
                  for p in pairs}
    passes = []
    for isolated in ([False, True] if isolation else [False]):
        references64 = {}
        if setup.model64 is not None:
            outputs64 = (_isolated64(setup.model64, setup.modules64, pairs, trace, mode)
                         if isolated else {p.torch_module: trace64[p.torch_module][1]
                                           for p in pairs})
            references64 = {p.keras_layer: _activated(by_name[p.keras_layer],
                                                      outputs64[p.torch_module])
                            for p in pairs}
        substitute = ({name: ops.convert_to_tensor(v) for name, v in references.items()}
                      if isolated else None)
        with _keras_state_kept(setup.fn), torch.no_grad():
            recorded, keras_out = _run_keras(setup.fn, to_keras_values(setup.x),
                                             mode == "training", setup.watch, substitute)
            comparisons = tuple(
                _compare(p, by_name[p.keras_layer], recorded.get(p.keras_layer),
                         references[p.keras_layer], references64.get(p.keras_layer),
                         setup.facts[p.torch_module], isolated, mode, tolerance, trace)
                for p in pairs)
        if isolated:
            # The last paired layer hands PyTorch's value on: the model output says nothing
            # in this pass.
            passes.append(PassResult(mode, True, comparisons, None, False))
            passes[-2] = _attribute(passes[-2], passes[-1])
        else:
            out, bad, noise = _output_comparison(keras_out, torch_out, torch_out64, tolerance)
            passes.append(PassResult(mode, False, comparisons, out, bad, noise))
    return trace, passes


def _statistics(modules, keras_layers, pairs, trace, tolerance):
    """Each BatchNorm pair after one training-mode step on PyTorch's recorded input, both
    from PyTorch's running statistics."""
    results = []
    for pair in pairs:
        module, layer = modules[pair.torch_module], keras_layers[pair.keras_layer]
        if not (isinstance(module, nn.modules.batchnorm._BatchNorm)
                and isinstance(layer, layers.BatchNormalization)
                and module.track_running_stats):
            continue
        x = trace[pair.torch_module][0]
        torch_step = torch_batchnorm_step(pair.torch_module, module, x)
        keras_step = keras_batchnorm_step(layer, to_keras_values(x), torch_step)
        results.append(compare_statistics(torch_step, keras_step, x, tolerance,
                                          torch_batches_seen(module)))
    return tuple(results)


def _attribute(forward: PassResult, isolated: PassResult) -> PassResult:
    """A forward divergence has the cause the isolated pass finds in that layer, or else
    it was carried over from an earlier layer."""
    upstream = likely_causes({}, isolated=False, mode=forward.mode)
    layers_ = []
    for f, i in zip(forward.layers, isolated.layers):
        if f.diverges and not f.note:
            f = dataclasses.replace(f, causes=i.causes if i.diverges else upstream)
        layers_.append(f)
    return dataclasses.replace(forward, layers=tuple(layers_))


def _isolated64(model64, modules64, pairs, trace, mode) -> dict:
    """Each paired module of the float64 copy, run on PyTorch float32's recorded input."""
    outputs = {}
    with _torch_mode(model64, mode), torch.no_grad():
        for pair in pairs:
            x = torch.from_numpy(trace[pair.torch_module][0].astype(np.float64))
            outputs[pair.torch_module] = modules64[pair.torch_module](x).numpy().copy()
    return outputs


# ----- the zoo ---------------------------------------------------------------------------


def validate_zoo_model(spec, image_size: int, batch_size: int, seed: int, naive: bool = False,
                       **options) -> PortValidation:
    """Build a zoo entry in both frameworks with seeded, calibrated weights, port them and
    validate. With naive, the Keras side is keras.applications' own model under the naive
    same-shape port (no row permutation; Keras biases PyTorch lacks set to zero)."""
    from adapters import load_adapter
    from adapters.keras.models import build_application, build_base
    from comparator.inputs.batch import make_batch
    from comparator.inputs.sources import random_calibrated

    torch_adapter = load_adapter("pytorch")
    random_calibrated(spec, "classify", seed, image_size, torch_adapter)
    torch_model = torch_adapter.model
    keras.utils.set_random_seed(seed)
    if naive:
        keras_model = build_application(spec.naive_keras_builder, image_size, include_top=True)
        keras_name = f"keras.applications.{spec.naive_keras_builder} (naive same-shape port)"
    else:
        keras_model = build_base(spec, image_size, include_top=True)
        builder = spec.keras_builder or spec.name
        keras_name = (f"keras.applications.{builder}" if builder[0].isupper() else
                      f"{builder} (adapters/keras/models.py)")
    pairs = plan_pairs(spec.layer_names, torch_model)
    port_weights(torch_model, keras_model, pairs=pairs, naive=naive)
    batch = make_batch(spec, "classify", batch_size, image_size, seed)
    result = validate_port(torch_model, keras_model, batch.x, pairs=pairs, seed=seed, **options)
    notes = [f"{spec.name}: seeded random weights (BatchNorm statistics, if any, calibrated "
             f"on data), "
             f"{image_size} px, batch {batch_size}"]
    if naive:
        notes.append(f"naive port: each torchvision array copied into the keras.applications "
                     f"layer of the same name and shape; the zoo's equivalent Keras model is "
                     f"{spec.keras_builder}")
    statistics, momentum_note = _zoo_momentum(spec, result.statistics)
    dropout, dropout_note = _zoo_dropout(spec, result.dropout)
    notes += [n for n in (momentum_note, dropout_note) if n]
    return dataclasses.replace(result, torch_model=f"torchvision.models.{spec.torchvision_builder}"
                               if spec.torchvision_builder else type(torch_model).__name__,
                               keras_model=keras_name, notes=tuple(notes) + result.notes,
                               statistics=statistics, dropout=dropout)


def _zoo_dropout(spec, dropout):
    """A Dropout difference the zoo entry keeps on purpose (its known differences say so:
    torchvision's classifier Dropout that keras.applications lacks) is noted, not failed."""
    known = next((d for d in spec.known_differences if d.startswith("Dropout:")), None)
    differing = [d for d in dropout if d.diverges]
    if known is None or not differing:
        return dropout, ""
    kept = tuple(dataclasses.replace(d, diverges=False) if d.diverges else d for d in dropout)
    return kept, (f"Dropout differs in {len(differing)} of {len(dropout)} pairs "
                  f"({'; '.join(d.text for d in differing)}), as the zoo entry states: "
                  f"{known} Not counted as a divergence")


def _zoo_momentum(spec, statistics):
    """The zoo keeps each framework's default BatchNorm momentum on purpose (compare.py
    studies it): a momentum difference that is the spec's own is noted, not failed."""
    wanted = spec.bn_momentum
    if not wanted or "keras" not in wanted:
        return statistics, ""
    expected = (wanted.get("pytorch"), 1.0 - wanted["keras"])
    kept, deliberate = [], 0
    for s in statistics:
        if s.cause == "momentum" and np.allclose((s.torch_momentum, s.keras_momentum),
                                                 expected, rtol=0, atol=1e-9):
            s = dataclasses.replace(s, diverges=False)
            deliberate += 1
        kept.append(s)
    if not deliberate:
        return statistics, ""
    return tuple(kept), (
        f"BatchNorm momentum differs in {deliberate} layers after a training step (PyTorch "
        f"{expected[0]:g}, Keras {expected[1]:g} in PyTorch's convention; Keras states "
        f"momentum={wanted['keras']:g}): the zoo keeps each framework's default on purpose, "
        "so this is not counted as a divergence")
