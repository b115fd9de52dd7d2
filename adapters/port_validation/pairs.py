"""The two models of a port validation, loaded where given as specs, their weighted
layers found and paired, and weights ported along the pairs."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras  # fixes the torch backend before Keras is imported
from keras.src.models.functional import Functional  # noqa: E402

from adapters.own_pair.pairing import (  # noqa: E402
    PAIRED_LAYERS,
    RESET_BEFORE,
    attention_part,
    canonical_names,
    keras_kind,
    reset_before,
    slopes_per_position,
    torch_kind,
    unknown_keras_layers,
    unpaired_words,
)
from adapters.own_pair.keras_layers import recurrent_cell  # noqa: E402
from adapters.own_pair.port_arrays import (  # noqa: E402
    LAYER_LEVEL_KINDS,
    keras_weights,
    torch_arrays,
)
from adapters.port_validation.bare_scales import (  # noqa: E402
    KINDS,
    ParameterScale,
    bare_shape,
    candidates,
    holds_bare,
    joined,
    scale_kind,
)
from adapters.port_validation.graph import functional_graph, graph_nodes  # noqa: E402
from adapters.port_validation.sequences import layer_key, split_layer_key  # noqa: E402
from adapters.port_validation.tracing import (  # noqa: E402
    SEPARABLE_CONVS,
    layers_to_open,
    symbolic_graph,
    untraced_words,
)
from comparator.analysis.layer_pairing import LayerInfo, Pair, check_pair, pair_layers  # noqa: E402
from comparator.errors import UsageError  # noqa: E402
from comparator.zoo.portmaps import (  # noqa: E402
    BN_SUFFIXES,
    LayerPort,
    from_keras_layout,
    keras_layout_axes,
    port_plan,
    to_keras_layout,
)


BARE_KINDS = frozenset(KINDS.values())


def _torch_layers(model: nn.Module, leave_out: tuple[str, ...] = ()
                  ) -> dict[str, tuple[nn.Module, LayerInfo, tuple[str, ...]]]:
    """Every module holding weights itself, but those left out: (module, info, canonical
    names). An attention layer's out_proj is in its layer's entry, as Keras holds it."""
    found = {}
    modules = dict(model.named_modules())
    scales = candidates(model)
    for name, module in modules.items():
        if name in leave_out:
            continue
        own = {n: t for n, t in module.named_parameters(recurse=False)}
        own.update({n: t for n, t in module.named_buffers(recurse=False)
                    if n != "num_batches_tracked"})
        for n in _bare_in_stand_in_order(name, module, own, scales):
            full = joined(name, n)
            found[full] = (module, _scale_info(full, own.pop(n), modules.get(full)), (full,))
        if not own or attention_part(name, modules):
            continue
        kind = torch_kind(module)
        if kind in LAYER_LEVEL_KINDS:
            for layer in range(getattr(module, "num_layers", 1)):
                key = layer_key(name, layer) if getattr(module, "num_layers", 1) > 1 else name
                found[key] = (module, _layer_level_info(key, kind, module, layer),
                              canonical_names(name, kind, module, layer))
            continue
        suffixes = BN_SUFFIXES if kind == "bn" else ("weight", "bias")
        if set(own) - set(suffixes):
            kind = "other"
        ordered = [s for s in suffixes if s in own]
        names = tuple(joined(name, s) for s in ordered)
        info = LayerInfo(name, kind, tuple(tuple(own[s].shape) for s in ordered),
                         _with_groups(type(module).__name__, getattr(module, "groups", 1)))
        found[name] = (module, info, names)
    return found


def _bare_in_stand_in_order(name: str, module: nn.Module, own: dict, scales: dict) -> list:
    """The tensors a module holds outside any layer, those standing as layers in the order
    they were installed (bare_scales.scale_uses: the order they run), the rest as held."""
    bare = [n for n in own if joined(name, n) in scales]
    standing = [n for n in module._modules if n in bare]
    return standing + [n for n in bare if n not in standing]


def _scale_info(name: str, tensor: torch.Tensor, stand_in: nn.Module | None) -> LayerInfo:
    """A tensor held outside any layer (bare_scales.py): paired with a Keras layer whose one
    weight is the same array by element order (bare_shape), and that multiplies its input
    by it where the tensor stands as a ParameterScale (forward() multiplies a value by
    it), adds it where it stands as a ParameterOffset, and either where it stands as
    neither (weights ported without validating, whose forward() is not measured). Likewise
    a class token, concatenated before the tokens (ParameterPrefix)."""
    if isinstance(stand_in, ParameterScale):
        kind, words = KINDS[stand_in.scale.operation], _USES[stand_in.scale.operation]
    else:
        kind, words = "bare", "may multiply a value by, add to one or concatenate before one"
    return LayerInfo(name, kind, (bare_shape(tensor.shape),),
                     f"a parameter {tuple(tensor.shape)} forward() {words}")


_USES = {"multiplies": "multiplies a value by", "adds": "adds to a value",
         "prepends": "concatenates before a value"}


def _layer_level_info(name: str, kind: str, module: nn.Module, layer: int) -> LayerInfo:
    """A recurrent or attention module (or a stacked recurrent module's layer, named
    `module[layer]`) by what its Keras layer must match, their arrays not being one Keras
    weight each: (inputs, units, directions, biased) for a recurrent layer, (width, heads,
    head width, biased) for attention, the widths those of query, key and value."""
    type_name = type(module).__name__
    if kind == "attention":
        return LayerInfo(name, kind, ((module.embed_dim, module.kdim, module.vdim,
                                       module.num_heads, module.head_dim,
                                       int(module.in_proj_bias is not None)),), type_name)
    directions = 2 if module.bidirectional else 1
    inputs = module.input_size if layer == 0 else module.hidden_size * directions
    return LayerInfo(name, kind, ((inputs, module.hidden_size, directions, int(module.bias)),),
                     type_name)


def _keras_layer_level_info(layer, kind: str) -> LayerInfo:
    """The Keras side of _layer_level_info."""
    type_name = type(layer).__name__
    if kind == "attention":
        weights = layer.get_weights()
        step = len(weights) // 4  # each projection's kernel, and its bias where it has one
        width, heads, head_width = (int(d) for d in weights[0].shape)
        return LayerInfo(layer.name, kind, ((width, int(weights[step].shape[0]),
                                             int(weights[2 * step].shape[0]), heads, head_width,
                                             int(step == 2)),), type_name)
    cell = recurrent_cell(layer)
    bidirectional = isinstance(layer, keras.layers.Bidirectional)
    return LayerInfo(layer.name, kind, ((int(cell.get_weights()[0].shape[0]), int(cell.units),
                                         2 if bidirectional else 1, int(cell.use_bias)),),
                     type_name, merge_mode=str(layer.merge_mode) if bidirectional else "")


def torch_side(model, weights: str | None):
    """The PyTorch module to trace, from an object or a SPEC, and its name."""
    from adapters.own_pair.loader import PT2_NO_MODULES, as_pytorch

    _refuse_onnx(model)
    loaded = as_pytorch(model, weights)
    if loaded.inference_only or _exported(loaded.model):
        where = f" {loaded.source}" if loaded.source != "<object>" else ""
        raise UsageError(f"cannot trace the PyTorch model{where}: {PT2_NO_MODULES}")
    return loaded.model, loaded.name


def _exported(model) -> bool:
    """A torch.export program's module(): a graph whose weights sit on bare nn.Module
    holders, where a traced (torch.fx) model keeps its Conv2d, BatchNorm2d, ..."""
    return isinstance(model, torch.fx.GraphModule) and any(
        type(sub) is nn.Module and any(True for _ in sub.parameters(recurse=False))
        for sub in model.modules())


def keras_side(model, weights: str | None, x_channels_last: np.ndarray):
    from adapters.own_pair.loader import as_keras

    _refuse_onnx(model)
    loaded = as_keras(model, weights, tuple(x_channels_last.shape[1:]))
    return loaded.model, loaded.name


def _refuse_onnx(model) -> None:
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        raise UsageError(f"{os.fspath(model)} is an ONNX file: the validator traces a PyTorch "
                         "module and a Keras model layer by layer, which an ONNX graph is "
                         "neither of (compare.py takes it as the referee, --onnx)")


def _canonical_shape(kind: str, index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind in BARE_KINDS:  # ported by element order
        return bare_shape(shape)
    if index > 0 or kind == "bn":
        return tuple(shape)
    axes = keras_layout_axes(kind, "weight")
    if axes:  # Keras's layout is a permutation of PyTorch's: its inverse
        return tuple(shape[axis] for axis in np.argsort(axes))
    if kind.startswith("depthwise1d"):  # (k, channels, multiplier)
        return (shape[1] * shape[2], 1, shape[0])
    if kind.startswith("depthwise"):  # (h, w, channels, multiplier)
        return (shape[2] * shape[3], 1, shape[0], shape[1])
    if kind.startswith("prelu:"):  # one slope per channel at most: _keras_layers refuses more
        return (int(np.prod(shape)),)
    if kind.startswith("flatten_dense"):
        return (shape[1], shape[0])
    return tuple(shape)


def _keras_layers(fn: Functional) -> dict[str, tuple[object, LayerInfo]]:
    found, calls = {}, {}
    for node in graph_nodes(fn):
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
        if reset_before(layer):
            raise UsageError(f"cannot trace Keras layer {layer.name!r}: {RESET_BEFORE}")
        if (unshared := slopes_per_position(layer)) is not None:
            raise UsageError(f"cannot port into Keras layer {layer.name!r}: {unshared}")
        kind = keras_kind(layer)
        if kind in LAYER_LEVEL_KINDS:
            found[layer.name] = (layer, _keras_layer_level_info(layer, kind))
            continue
        shapes = tuple(_canonical_shape(kind, i, tuple(w.shape))
                       for i, w in enumerate(layer.weights))
        found[layer.name] = (layer, LayerInfo(layer.name, kind, shapes, _with_groups(
            type(layer).__name__, getattr(layer, "groups", 1))))
    return found


def held_directly(name: str, module: nn.Module, only=None) -> str:
    """The parameters and buffers a module holds itself, with their shapes, in words (those
    named in `only`, where given)."""
    own = [("parameter", n, t) for n, t in module.named_parameters(recurse=False)] + \
        [("buffer", n, t) for n, t in module.named_buffers(recurse=False)
         if n != "num_batches_tracked"]
    held = " and ".join(f"the {what} {n} {tuple(t.shape)}" for what, n, t in own
                        if only is None or n in only)
    who = f"module {name} ({type(module).__name__})" if name else type(module).__name__
    return f"PyTorch {who} holds {held} directly, outside any torch.nn layer"


def _not_scales(name: str, module: nn.Module, scales: dict) -> set[str]:
    """The tensors a module holds itself, but those that can scale a value."""
    own = [*dict(module.named_parameters(recurse=False)), *dict(module.named_buffers(
        recurse=False))]
    return {n for n in own if joined(name, n) not in scales}


# Why a bare tensor is refused, and what the user can still do.
BARE_REFUSED = ("the validator pairs PyTorch layers with Keras layers, and a tensor held "
                "so only where forward() multiplies a value by it, one number per channel (a "
                "ConvNeXt block's layer_scale, timm's LayerScale), adds it to a value laid "
                "out alike in both frameworks (a ViT's learned positions) or concatenates it "
                "before a sequence's tokens (its class token), with a Keras layer that does "
                "the same with its one weight (a LayerScale); it cannot port or "
                "compare this one layer by layer. compare.py compares the two models' outputs "
                "whole, each with the weights you ported (--pytorch-weights, --keras-weights)")


def _with_groups(type_name: str, groups) -> str:
    """A layer's class, with its groups where it has more than one (a grouped conv)."""
    return f"{type_name} groups={groups}" if isinstance(groups, int) and groups > 1 \
        else type_name


def resolve_pairs(torch_model: nn.Module, keras_model, mapping: dict | None = None,
                  pairs: list[Pair] | None = None, leave_out: tuple[str, ...] = ()
                  ) -> list[Pair]:
    """The pairs to port and compare: given (a zoo port plan), from a mapping, or by order
    and shape. Every weighted layer of either model must be in exactly one pair, but the
    PyTorch modules left out (another output's head: outputs.off_the_output)."""
    fn = functional_graph(keras_model)
    torch_layers, keras_layers = _torch_layers(torch_model, leave_out), _keras_layers(fn)
    others = [(module, info) for module, info, _ in torch_layers.values()
              if info.kind == "other"]
    scales = candidates(torch_model)
    bare = [held_directly(info.name, module, _not_scales(info.name, module, scales))
            for module, info in others if holds_bare(module)]
    if bare:
        raise UsageError(f"{'; '.join(bare)}: {BARE_REFUSED}")
    unsupported = [unpaired_words(info.name or "the model", module) for module, info in others]
    if unsupported:
        raise UsageError(f"cannot port PyTorch modules of these kinds: {', '.join(unsupported)}"
                         f"; the validator knows {PAIRED_LAYERS}")
    if pairs is None:
        unknown = unknown_keras_layers([layer for layer, _ in keras_layers.values()])
        if unknown:
            raise UsageError(f"cannot port {unknown}")
        try:
            matched = pair_layers([t[1] for t in torch_layers.values()],
                                  [k[1] for k in keras_layers.values()], mapping)
        except UsageError as exc:  # a layer the trace could not see may be the one missing
            raise UsageError(f"{exc}{untraced_words(fn)}") from None
        # Where the kinds differ (a Dense fed by a Flatten, a depthwise conv as a grouped
        # Conv2D) the Keras layer's says how its weights are laid out.
        return [Pair(t.name, k.name, _pair_kind(torch_model, t, k), torch_layers[t.name][2])
                for t, k in matched]
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


def _pair_kind(torch_model: nn.Module, t: LayerInfo, k: LayerInfo) -> str:
    """A scale's, an offset's or a prefix's port kind carries PyTorch's shape, which
    Keras's holds by element order in its own; other kinds are the Keras layer's."""
    if k.kind not in BARE_KINDS:
        return k.kind
    return scale_kind(torch_model.get_parameter(t.name).shape, k.kind)


def plan_pairs(layer_names, torch_model: nn.Module) -> list[Pair]:
    """The pairs of a zoo family's port map (its spec's `layer_names`), for this PyTorch
    model."""
    # The plan needs names and ranks only: zero-size broadcasts stand in for the arrays.
    arrays = {name: np.broadcast_to(np.float32(0), tuple(t.shape))
              for name, t in torch_state(torch_model).items()}
    return [Pair(p.module, p.keras_layer, p.kind, p.canonical_names)
            for p in port_plan(layer_names, arrays)]


def torch_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict(keep_vars=True).items()
            if not k.endswith("num_batches_tracked")}


def _port_kind(pair: Pair, naive: bool) -> str:
    # The naive port copies a dense kernel transposed, whatever fed the layer.
    return "dense" if naive and pair.kind.startswith("flatten_dense") else pair.kind


def port_weights(torch_model: nn.Module, keras_model, *, direction: str = "torch_to_keras",
                 mapping: dict | None = None, pairs: list[Pair] | None = None,
                 naive: bool = False, leave_out: tuple[str, ...] = ()) -> list[Pair]:
    """Copy the weights of every pair from one model into the other, in place.

    direction: "torch_to_keras" or "keras_to_torch". A Keras bias that PyTorch lacks
    (keras.applications' ResNet50 convs) is set to zero, or must be zero the other way.
    naive: copy a dense kernel fed by a flattened map without reordering its rows (the
    same-shape port that loads and computes something else). A round trip returns the
    original arrays bit for bit. leave_out: PyTorch modules no Keras layer stands for.
    """
    if direction not in ("torch_to_keras", "keras_to_torch"):
        raise UsageError(f"direction must be torch_to_keras or keras_to_torch, not {direction!r}")
    keras_model = _opened_exactly(keras_model)
    pairs = resolve_pairs(torch_model, keras_model, mapping, pairs, leave_out)
    fn = functional_graph(keras_model)
    by_name = {layer.name: layer for layer in fn.layers}
    state = torch_state(torch_model)
    for pair in pairs:
        layer, kind = by_name[pair.keras_layer], _port_kind(pair, naive)
        if kind in LAYER_LEVEL_KINDS:
            _port_layer_level(pair, layer, state, direction)
            continue
        if direction == "torch_to_keras":
            current = layer.get_weights()
            # a scale takes the Keras weight's shape (`into`), by element order
            values = [to_keras_layout(kind, n, state[n].detach().cpu().numpy(),
                                      into=current[i] if i < len(current) else None)
                      for i, n in enumerate(pair.canonical_names)]
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


def _opened_exactly(keras_model):
    """A functional or Sequential model of one input whose only layers to open are separable
    convolutions and nested functional or Sequential models, as the graph traced on its
    declared input: a separable convolution's parts (tracing.separable_parts) hold its own
    variables and compute it exactly, and a nested model's graph is its call, so no batch
    need check the trace. Any other model as it is (validate_port traces one on its
    inputs)."""
    opened = layers_to_open(keras_model)
    if not opened or not all(_opens_exactly(layer) for layer in opened):
        return keras_model
    fn = functional_graph(keras_model)
    if len(fn.inputs) != 1:
        return keras_model
    return symbolic_graph(fn, tuple(fn.inputs[0].shape[1:]), fn.inputs[0].dtype)


def _opens_exactly(layer) -> bool:
    return isinstance(layer, SEPARABLE_CONVS) or (
        type(layer) in (Functional, keras.Sequential))


def as_port(pair: Pair) -> LayerPort:
    return LayerPort(pair.torch_module, pair.keras_layer, pair.kind, pair.canonical_names)


def module_arrays(state: dict, torch_module: str) -> dict[str, np.ndarray]:
    """The arrays of a module (or of the stacked module a layer key names), by full name."""
    name = split_layer_key(torch_module)[0]
    prefix = f"{name}." if name else ""
    return {n: t.detach().cpu().numpy() for n, t in state.items() if n.startswith(prefix)}


def _port_layer_level(pair: Pair, layer, state: dict, direction: str) -> None:
    """A recurrent or attention pair, as compare.py's --port-weights ports it
    (adapters/own_pair/pairing.py): an LSTM's or RNN's two biases go into Keras as their
    sum, and come back all in bias_ih, bias_hh zero."""
    port = as_port(pair)
    if direction == "torch_to_keras":
        arrays = module_arrays(state, pair.torch_module)
        layer.set_weights(keras_weights(port, arrays, layer.get_weights()))
        return
    with torch.no_grad():
        for name, array in torch_arrays(port, layer.get_weights()).items():
            state[name].copy_(torch.from_numpy(np.ascontiguousarray(array)))
