"""Which Keras layer holds which PyTorch module's weights, in a pair the tool did not build.

The user's port is what is tested, so nothing is copied here: the pairing only gives both
frameworks' states the same names (PyTorch's), so that weights and running statistics
after a step can be compared array by array. Weighted layers are paired in the order they
run (PyTorch: forward hooks on one inference pass; Keras: the functional graph's order,
nested models in place) and must agree in kind and shape; otherwise the comparison still
runs and says that states could not be compared across frameworks.

The Keras side's own pieces, which a worker on TensorFlow or JAX needs without torch, live
apart: the walk over the Keras model's layers (adapters.own_pair.keras_layers) and the moves
of a paired layer's arrays between the two frameworks' layouts (adapters.own_pair.port_arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from adapters.keras.backend import keras
from adapters.own_pair.keras_layers import (  # Keras alone: a worker imports them (no torch)
    KERAS_CELLS,
    adds_its_weight,
    prepends_its_weight,
    recurrent_cell,
    scales_its_input,
    weighted_keras_layers,
)
from adapters.own_pair.port_arrays import (  # numpy alone: the Keras user adapter's too
    directions,
    keras_weights,
    summed_biases,
)
from adapters.port_validation.bare_scales import (
    KINDS,
    bare_shape,
    candidates,
    scale_kind,
    scale_uses,
)
from adapters.port_validation.tracing import (
    inbound,
    SEPARABLE_CONVS,
    layers_to_open,
    symbolic_graph,
)
from comparator.analysis.layer_pairing import base_kind, kinds_fit
from comparator.zoo import attention_layout, recurrent_layout
from comparator.zoo.portmaps import BN_SUFFIXES, LayerPort

layers = keras.layers


@dataclass(frozen=True)
class Pairing:
    ports: tuple[LayerPort, ...]  # empty when the layers could not be paired
    keras_layers: tuple  # the Keras layer of each port
    reason: str = ""  # why not, when ports is empty
    not_compared: tuple[str, ...] = ()  # paired arrays that have no common name, in words

    @property
    def paired(self) -> bool:
        return bool(self.ports)


# Normalisation layers other than BatchNorm hold a scale and an offset per feature, in the
# same layout in both frameworks (Keras's gamma and beta, or RMSNormalization's scale).
# PyTorch's InstanceNorm is Keras's GroupNormalization with a group per channel (groups=-1).
_TORCH_NORMS = ((nn.LayerNorm, "layer_norm"), (nn.GroupNorm, "group_norm"),
                (nn.RMSNorm, "rms_norm"), (nn.modules.instancenorm._InstanceNorm,
                                           "instance_norm"))
_KERAS_NORMS = tuple((layer, kind) for layer, kind in (
    (getattr(layers, "GroupNormalization", None), "group_norm"),
    (getattr(layers, "RMSNormalization", None), "rms_norm"),  # Keras 3.9 and later
    (layers.LayerNormalization, "layer_norm")) if layer is not None)
NORM_KINDS = frozenset(kind for _, kind in _TORCH_NORMS)
NORM_NAMES = {"layer_norm": "LayerNorm", "group_norm": "GroupNorm", "rms_norm": "RMSNorm",
              "instance_norm": "InstanceNorm"}
KNOWN_LAYERS = ("Conv1d and Conv2d (grouped and depthwise too), Conv3d (grouped too), "
                "ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, Linear, "
                "Embedding, PReLU, BatchNorm (with running statistics), LayerNorm, GroupNorm, "
                "InstanceNorm (without running statistics) and RMSNorm")
PAIRED_LAYERS = KNOWN_LAYERS.replace(" and RMSNorm", ", RMSNorm, LSTM (without proj_size), GRU, "
                                                    "RNN, MultiheadAttention (without "
                                                    "add_bias_kv or add_zero_attn) and a "
                                                    "parameter your module holds that "
                                                    "forward() multiplies a value by, one "
                                                    "number per channel (ConvNeXt's "
                                                    "layer_scale, timm's LayerScale and "
                                                    "gamma), adds to a value (a ViT's "
                                                    "learned positions) or concatenates "
                                                    "before its tokens (its class token)")
PAIRED_KERAS_LAYERS = ("Conv1D, Conv2D, Conv3D (grouped too), DepthwiseConv1D, "
                       "DepthwiseConv2D, SeparableConv1D, SeparableConv2D, Conv1DTranspose, "
                       "Conv2DTranspose, Conv3DTranspose, Dense, a layer that multiplies its "
                       "input by its one weight, one number per channel (ConvNeXt's "
                       "LayerScale), a layer that adds its one weight to its input (learned "
                       "positions) or concatenates it before its tokens (a class token), "
                       "Embedding, PReLU, BatchNormalization, LayerNormalization, "
                       "GroupNormalization, RMSNormalization, LSTM, GRU, SimpleRNN (or an RNN "
                       "layer given their cell; in Bidirectional too) and MultiHeadAttention")
# Where a separable convolution is not traced as its two convolutions
# (tracing.separable_parts): in a subclassed model given no inputs.
_SEPARABLE = ("a separable convolution is a depthwise and a pointwise one in one layer, which "
              "pair with PyTorch's two modules once traced on an input: "
              "validate_port(..., port=...) does that")
_TORCH_TRANSPOSED = ((nn.ConvTranspose1d, "conv_transpose1d"),
                     (nn.ConvTranspose2d, "conv_transpose"),
                     (nn.ConvTranspose3d, "conv_transpose3d"))
_KERAS_TRANSPOSED = ((layers.Conv1DTranspose, "conv_transpose1d"),
                     (layers.Conv2DTranspose, "conv_transpose"),
                     (layers.Conv3DTranspose, "conv_transpose3d"))
_TORCH_RECURRENT = ((nn.LSTM, "lstm"), (nn.GRU, "gru"), (nn.RNN, "rnn"))


def channels_first_sequences(torch_model: nn.Module) -> bool:
    """Whether the model's 3-D tensors are channels-first (N, C, L), which Keras holds
    channels-last: so when it has a Conv1d, the one common layer that takes them so. Else
    they are the same array in both frameworks (N, L, F: an Embedding's, an LSTM's or
    attention's). The batch's layout (adapters/own_pair/setup.py) and the port validator's
    activations (adapters/port_validation/graph.py) both follow it."""
    return any(isinstance(m, nn.Conv1d) for m in torch_model.modules())


def torch_kind(module: nn.Module) -> str:
    for norm, kind in _TORCH_NORMS:
        if isinstance(module, norm):
            # Keras's GroupNormalization keeps no running statistics to hold an
            # InstanceNorm's (track_running_stats=True).
            return "other" if getattr(module, "track_running_stats", False) else kind
    for recurrent, kind in _TORCH_RECURRENT:
        if isinstance(module, recurrent):
            return "other" if _projected(module) else kind
    if isinstance(module, nn.MultiheadAttention):
        # Keras's layer has no learned key and value rows to append, nor zeros to attend to.
        plain = module.bias_k is None and not module.add_zero_attn
        return "attention" if plain else "other"
    for transposed, kind in _TORCH_TRANSPOSED:
        if isinstance(module, transposed):
            # Keras's transposed convolutions have no groups.
            return kind if module.groups == 1 else "other"
    # A grouped kernel, (out, in / groups, ...), takes the ungrouped one's axes in Keras's
    # grouped Conv1D and Conv2D (measured on Keras 3.15.1's torch backend).
    if isinstance(module, nn.Conv1d):
        return "depthwise1d" if _depthwise(module) else "conv1d"
    if isinstance(module, nn.Conv2d):
        return "depthwise" if _depthwise(module) else "conv"
    if isinstance(module, nn.Conv3d):
        return "conv3d"  # Keras has no DepthwiseConv3D: a grouped Conv3D computes it
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, nn.Embedding):
        return "embedding"  # (vocabulary, width) in both frameworks
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn" if module.track_running_stats else "other"
    if isinstance(module, nn.PReLU):
        return "prelu"  # one slope, or one per channel (axis 1)
    return "other"


def unpaired_setting(module: nn.Module) -> str | None:
    """Why a PyTorch module of a kind the pairing knows is not paired: a setting no Keras
    layer computes, in words; None where no setting is the reason."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.track_running_stats:
        return ("track_running_stats=False: it normalises with the batch's statistics in eval "
                "mode too and keeps none, where Keras's BatchNormalization keeps moving "
                "statistics and normalises with them in inference")
    if isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats:
        return ("track_running_stats=True: Keras's GroupNormalization, which computes an "
                "InstanceNorm, keeps no running statistics")
    if _projected(module):
        return f"proj_size={module.proj_size}: Keras's LSTM has no projection"
    if isinstance(module, nn.modules.conv._ConvTransposeNd) and module.groups > 1:
        return f"groups={module.groups}: Keras's transposed convolutions have no groups"
    if isinstance(module, nn.MultiheadAttention) and torch_kind(module) == "other":
        return ("add_bias_kv or add_zero_attn: Keras's MultiHeadAttention has no such rows to "
                "attend to")
    return None


def unpaired_words(name: str, module: nn.Module) -> str:
    """A PyTorch module the pairing refuses: its name, class and the setting that makes it
    one no Keras layer computes."""
    setting = unpaired_setting(module)
    return f"{name} ({type(module).__name__}{', ' + setting if setting else ''})"


def _depthwise(conv: nn.Conv1d | nn.Conv2d) -> bool:
    """A convolution with a group per input channel, each giving the same number of outputs
    (its depth multiplier): Keras's DepthwiseConv1D or DepthwiseConv2D computes it."""
    channels = conv.in_channels
    return 1 < conv.groups == channels and conv.out_channels % channels == 0


def keras_kind(layer) -> str:
    for transposed, kind in _KERAS_TRANSPOSED:
        if isinstance(layer, transposed):
            return kind
    for depthwise, kind in ((layers.DepthwiseConv2D, "depthwise"),
                            (layers.DepthwiseConv1D, "depthwise1d")):
        if isinstance(layer, depthwise):
            multiplier = int(layer.depth_multiplier)
            return kind if multiplier == 1 else f"{kind}:{multiplier}"
    if isinstance(layer, layers.PReLU):
        return f"prelu:{','.join(str(int(d)) for d in layer.alpha.shape)}"
    if isinstance(layer, layers.Conv1D):
        return "conv1d"
    if isinstance(layer, layers.Conv2D):
        return "conv"
    if isinstance(layer, layers.Conv3D):
        return "conv3d"
    if isinstance(layer, layers.Dense):
        flattened = flattened_from(layer)
        return f"flatten_dense:{flattened[2]},{flattened[0]},{flattened[1]}" if flattened \
            else "dense"
    if isinstance(layer, layers.BatchNormalization):
        return "bn"
    if isinstance(layer, layers.Embedding):
        return "embedding"
    if isinstance(layer, layers.MultiHeadAttention):
        return "attention"
    cell = recurrent_cell(layer)
    for cell_type, kind in KERAS_CELLS:
        if isinstance(cell, cell_type):
            return kind
    for norm, kind in _KERAS_NORMS:
        if isinstance(layer, norm):
            return "other" if getattr(layer, "rms_scaling", False) else kind
    if scales_its_input(layer):
        return "scale"
    if adds_its_weight(layer):
        return "offset"
    return "prefix" if prepends_its_weight(layer) else "other"


def flattened_from(layer) -> tuple[int, ...] | None:
    """(h, w, c) when a Dense layer is fed by Flatten of a 4-D channels-last map (rows
    ordered h, w, c). None otherwise, a map turned channels-first before the Flatten
    included (Permute((3, 1, 2)): rows ordered c, h, w, as PyTorch flattens)."""
    try:
        op, inputs = inbound(layer._inbound_nodes[0].input_tensors[0])
    except (AttributeError, IndexError):
        return None
    if not (isinstance(op, layers.Flatten) and len(inputs[0].shape) == 4):
        return None
    before = inbound(inputs[0])[0]
    if isinstance(before, layers.Permute) and tuple(before.dims) == (3, 1, 2):
        return None
    return tuple(int(d) for d in inputs[0].shape[1:])


def unknown_keras_layers(keras_layers) -> str:
    """The weighted Keras layers that no pairing kind takes, in words ("" when none)."""
    unknown = [layer for layer in keras_layers if keras_kind(layer) == "other"]
    if not unknown:
        return ""
    hint = f"; {_SEPARABLE}" if any(isinstance(layer, SEPARABLE_CONVS)
                                    for layer in unknown) else ""
    return (f"Keras layers of kinds the pairing does not know: "
            f"{', '.join(f'{layer.name} ({type(layer).__name__})' for layer in unknown)} "
            f"(it knows {PAIRED_KERAS_LAYERS}){hint}")


def _own_state(module: nn.Module) -> dict:
    own = dict(module.named_parameters(recurse=False))
    own.update((n, b) for n, b in module.named_buffers(recurse=False)
               if n != "num_batches_tracked")
    return own


def _torch_order(model: nn.Module, x: np.ndarray) -> list[str]:
    """Weighted modules in the order one inference pass runs them (registration order where
    no hook fires, as in a torch.export program)."""
    modules = dict(model.named_modules())
    # An attention layer's out_proj runs inside it, without a forward call of its own.
    weighted = {name: m for name, m in modules.items()
                if _own_state(m) and not attention_part(name, modules)}
    order: list[str] = []
    handles = [m.register_forward_hook(lambda *_a, name=name: order.append(name))
               for name, m in weighted.items()]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()  # a train() pass would move running statistics
        with torch.no_grad():
            model(*(torch.from_numpy(v[:1]) for v in (x if isinstance(x, tuple) else (x,))))
    except Exception:  # NotImplementedError from a torch.export program, or the model's own
        order = []     # failure, which the comparison itself reports
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    seen = list(dict.fromkeys(order))
    return seen if len(seen) == len(weighted) else list(weighted)


def _projected(module: nn.Module) -> bool:
    """An LSTM with proj_size, whose projection no Keras LSTM has. (Layers, directions and
    activations do not stop a pairing: the port check compares the functions.)"""
    return bool(getattr(module, "proj_size", 0))


def canonical_names(name: str, kind: str, module: nn.Module, layer: int) -> tuple[str, ...]:
    own = _own_state(module)
    prefix = f"{name}." if name else ""
    if kind in recurrent_layout.RECURRENT_KINDS:
        return recurrent_layout.layer_names(prefix, layer, module.bidirectional,
                                            f"bias_ih_l{layer}" in own, kind)
    if kind == "attention":
        held = module.state_dict()
        return tuple(f"{prefix}{s}" for s in attention_layout.SUFFIXES if s in held)
    suffixes = BN_SUFFIXES if kind == "bn" else ("weight", "bias")
    return tuple(f"{prefix}{s}" for s in suffixes if s in own)


def _fits(port: LayerPort, module: nn.Module, current: list) -> bool:
    """Whether the module's arrays, in Keras's layout, have the Keras layer's shapes."""
    prefix = f"{port.module}." if port.module else ""
    arrays = {f"{prefix}{n}": t.detach().cpu().numpy() for n, t in module.state_dict().items()}
    if port.kind == "attention":
        if len(current) != (8 if f"{prefix}in_proj_bias" in arrays else 4):  # use_bias
            return False
    elif port.kind in recurrent_layout.RECURRENT_KINDS:
        biased = any(ih in arrays for ih, _ in recurrent_layout.bias_pairs(port.canonical_names))
        if len(current) != directions(port) * (3 if biased else 2):  # Keras's use_bias
            return False
    elif len(current) != len(port.canonical_names):
        return False
    try:
        ported = keras_weights(port, arrays, current)
    except ValueError:
        return False
    return all(a.shape == b.shape for a, b in zip(ported, current))


def _torch_layers(modules: dict, order: list[str]) -> list[tuple[str, int]]:
    """(module name, layer) in running order: a stacked recurrent module is one entry per
    layer, as Keras stacks one layer per PyTorch layer, and an attention layer's out_proj is
    in its layer's entry, as in Keras's."""
    return [(name, layer) for name in order if not attention_part(name, modules)
            for layer in range(getattr(modules[name], "num_layers", 1)
                               if isinstance(modules[name], nn.RNNBase) else 1)]


def attention_part(name: str, modules: dict) -> bool:
    """A MultiheadAttention's out_proj, whose arrays the attention layer's port holds."""
    parent = name.rsplit(".", 1)[0] if "." in name else ""
    return name != "" and parent in modules and isinstance(modules[parent],
                                                          nn.MultiheadAttention)


RESET_BEFORE = ("Keras's GRU with reset_after=False applies the reset gate before the recurrent "
                "kernel: no PyTorch GRU computes that")


def reset_before(layer) -> bool:
    """A Keras GRU (or Bidirectional GRU) that no PyTorch GRU can be ported into."""
    cell = recurrent_cell(layer)
    return isinstance(cell, layers.GRUCell) and not cell.reset_after


def pair_weights(torch_model: nn.Module, keras_model, x,
                 leave_out: tuple[str, ...] = (), keras_leave_out: tuple[str, ...] = (),
                 keras_shape: tuple | None = None) -> Pairing:
    """The ports of a user pair, or the reason there are none: each PyTorch layer, in running
    order, with the first Keras layer left (in the functional graph's order) that can hold
    its weights. Keras orders layers of one depth in its graph as it likes (a key's and a
    value's projections, say), so the next one may not be the one. leave_out: PyTorch
    modules that no Keras layer stands for (another output's head, outputs.off_the_output);
    keras_leave_out: the Keras layers that no PyTorch module stands for (a subclassed model's
    other head, outputs.keras_off_the_output). x: the batch, a tuple for several inputs.
    keras_shape: one Keras input (channels-last, without the batch axis; a tuple of them for
    several inputs), on which a model with layers that hide layers is traced first
    (_record_calls)."""
    _record_calls(keras_model, keras_shape,
                  tuple(str(v.dtype) for v in x) if isinstance(x, tuple) else str(x.dtype))
    modules = dict(torch_model.named_modules())
    weighted = [name for name in _torch_order(torch_model, x) if name not in leave_out]
    scales = _bare_in_running_order(torch_model, candidates(torch_model), x)
    order = _with_scales(_torch_layers(modules, weighted), modules, scales)
    keras_side = [layer for layer in weighted_keras_layers(keras_model)
                  if layer.name not in keras_leave_out]
    if len(order) != len(keras_side):
        stacked = " (a stacked recurrent module's layers counted one by one)" \
            if len(order) != len(weighted) else ""
        unknown = unknown_keras_layers(keras_side)
        return Pairing((), (), f"PyTorch has {len(order)} modules with weights{stacked}, Keras "
                               f"{len(keras_side)} layers with weights"
                               + (f"; {unknown}" if unknown else ""))
    ports, matched = [], []
    for name, index in order:
        left = [layer for layer in keras_side if not any(layer is m for m in matched)]
        first_reason = ""  # why the next Keras layer in running order does not fit
        for layer in left:
            port = _scale_port(name, torch_model.get_parameter(name), layer) \
                if name in scales else _port(name, index, modules[name], layer)
            if isinstance(port, LayerPort):
                break
            first_reason = first_reason or port
        else:
            return Pairing((), (), first_reason)
        ports.append(port)
        matched.append(layer)
    return Pairing(tuple(ports), tuple(matched), not_compared=tuple(
        _summed_words(biases, layer.name) for port, layer in zip(ports, matched)
        if (biases := summed_biases(port, len(layer.weights)))))


def _bare_in_running_order(model: nn.Module, found: dict, x) -> dict:
    """`found` (bare_scales.candidates) in the order forward() uses them (scale_uses: two
    tokens of one shape concatenated before the patches pair in that order), as found where
    the model fails on the batch's first example (the comparison reports that)."""
    if len(found) < 2:
        return found
    try:
        uses, _ = scale_uses(model, [torch.from_numpy(v[:1])
                                     for v in (x if isinstance(x, tuple) else (x,))])
    except Exception:  # the model's own failure
        return found
    return {name: found[name] for name in uses}


def _with_scales(order: list, modules: dict, scales: dict) -> list[tuple[str, int]]:
    """The running order with each module that holds tensors that can scale a value
    (bare_scales.py), and nothing else of its own, standing as those tensors, by their
    full names: its forward hook fires once the modules inside have run, where a Keras
    port multiplies (after a ConvNeXt block's last Linear)."""
    found = []
    for name, layer in order:
        held = [full for full, (owner, _) in scales.items() if owner is modules[name]]
        alone = held and len(held) == len(_own_state(modules[name]))
        found += [(full, 0) for full in held] if alone else [(name, layer)]
    return found


def _scale_port(name: str, tensor: torch.Tensor, layer) -> LayerPort | str:
    """The port of a tensor held outside any layer into this Keras layer, by element order
    (bare_scales.bare_shape), or why this layer cannot hold it: a layer that multiplies its
    input by one weight holds a scale, one that adds its one weight an offset, one that
    concatenates it before its tokens a prefix (a class token)."""
    both = (f"PyTorch {name} (a parameter {tuple(tensor.shape)} held outside any layer) "
            f"and Keras {layer.name} ({type(layer).__name__})")
    kind = keras_kind(layer)
    if kind not in KINDS.values():
        return (f"{both} meet in running order, and Keras's neither multiplies its input by "
                "one weight, adds one weight to it nor concatenates one before it")
    ours, theirs = bare_shape(tensor.shape), bare_shape(layer.weights[0].shape)
    if ours != theirs:
        return f"{both} hold arrays of shapes {ours} and {theirs}, leading axes of 1 aside"
    return LayerPort(name, layer.name, scale_kind(tensor.shape, kind), (name,))


def _record_calls(keras_model, keras_shape: tuple | None, dtype) -> None:
    """A subclassed model's layers, or a block's, are called on tensors, which leaves no
    record of what feeds each one: one symbolic trace of the model (tracing.symbolic_graph)
    leaves it in the layers, so that a Dense fed by a Flatten is ported as one
    (flattened_from). A model whose call() does not trace keeps its layers as they are."""
    if keras_shape is None or not layers_to_open(keras_model):
        return
    try:
        symbolic_graph(keras_model, keras_shape, dtype)
    except Exception:
        return


def _port(name: str, index: int, module: nn.Module, layer) -> LayerPort | str:
    """The port of PyTorch layer `index` of module `name` into this Keras layer, or why this
    layer cannot hold that layer's weights."""
    kind = keras_kind(layer)
    family = base_kind(kind)
    both = (f"PyTorch {name or 'model'} ({type(module).__name__}) and Keras {layer.name} "
            f"({type(layer).__name__})")
    if reset_before(layer):
        return f"{both} meet in running order, and {RESET_BEFORE}"
    if (setting := unpaired_setting(module)) is not None:
        return f"{both} meet in running order, and PyTorch's has {setting}"
    if "other" in (torch_kind(module), family):
        return f"{both} meet in running order, and the pairing knows only {PAIRED_LAYERS}"
    if not kinds_fit(torch_kind(module), family):
        return f"{both} meet in running order: different kinds of layer"
    if (unshared := slopes_per_position(layer)) is not None:
        return f"{both} meet in running order, and {unshared}"
    port = LayerPort(name, layer.name, kind, canonical_names(name, family, module, index))
    if not _fits(port, module, layer.get_weights()):
        return (f"PyTorch {name} and Keras {layer.name} hold weights of different shapes"
                + _shape_words(module, layer))
    return port


def _shape_words(module: nn.Module, layer) -> str:
    """Where one side has a bias and the other none, or convolutions are grouped otherwise,
    in words."""
    torch_groups, keras_groups = getattr(module, "groups", None), getattr(layer, "groups", None)
    if isinstance(torch_groups, int) and isinstance(keras_groups, int) and \
            torch_groups != keras_groups:
        return f": PyTorch's has groups={torch_groups}, Keras {layer.name} groups={keras_groups}"
    keras_bias, torch_bias = getattr(layer, "use_bias", None), getattr(module, "bias", False)
    if keras_bias is False and torch_bias is not None and torch_bias is not False:
        return f": Keras {layer.name} has no bias (use_bias=False) where PyTorch's has one"
    if keras_bias is True and torch_bias is None:
        return f": Keras {layer.name} has a bias (use_bias=True) where PyTorch's has none"
    return ""


def slopes_per_position(layer) -> str | None:
    """Why a Keras PReLU cannot hold a PyTorch PReLU's slopes: it learns one per position
    as well as per channel (shared_axes left out), where PyTorch's learns one per channel or
    one in all; None for any other layer."""
    if not isinstance(layer, layers.PReLU):
        return None
    shape = tuple(int(d) for d in layer.alpha.shape)
    if sum(d > 1 for d in shape) <= 1:
        return None
    spatial = list(range(1, len(shape)))
    return (f"Keras's {layer.name} learns a slope for every position, alpha {shape}, where "
            f"PyTorch's PReLU learns one per channel: give it shared_axes for every axis but "
            f"the channels' ({spatial} where they come last)")


def _summed_words(biases: list, keras_layer: str) -> str:
    pairs = "; ".join(f"{ih} and {hh}" for ih, hh, _ in biases)
    return f"{pairs} (Keras's {keras_layer} keeps " + (
        "their sum as one bias)" if len(biases) == 1 else "each pair's sum as one bias)")
