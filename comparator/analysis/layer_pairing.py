"""How the port validator pairs weighted layers when the user gives no port map: by an
explicit mapping, or in order by kind and weight shapes; and the check that refuses a pair
whose weights cannot correspond."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

from comparator.errors import UsageError

# Whether the pairing's caller can pass mapping=: a Python call can, a command line cannot
# (validate_port.py and compare.py have no such option), so its refusal says what to change
# in the Keras model instead.
_MAPPING_GIVABLE = contextvars.ContextVar("mapping_givable", default=True)


@contextlib.contextmanager
def without_mapping():
    """Pairings in here were asked for by a command line, which cannot pass mapping=."""
    token = _MAPPING_GIVABLE.set(False)
    try:
        yield
    finally:
        _MAPPING_GIVABLE.reset(token)


@dataclass(frozen=True)
class LayerInfo:
    """A weighted layer as the pairing sees it: a name, a kind and its weight shapes in
    the canonical (PyTorch) layout. kind: conv, depthwise, dense, bn or other."""

    name: str
    kind: str
    shapes: tuple[tuple[int, ...], ...]
    type_name: str = ""
    merge_mode: str = ""  # a Keras Bidirectional's, which decides its output's width


@dataclass(frozen=True)
class Pair:
    """A PyTorch module and the Keras layer that holds its weights."""

    torch_module: str
    keras_layer: str
    kind: str  # a portmaps layout kind: conv, depthwise, dense, flatten_dense:C,H,W, bn
    canonical_names: tuple[str, ...] = field(default_factory=tuple)


def _describe(info: LayerInfo) -> str:
    return f"{info.name} ({info.type_name or info.kind}, {_layout_words(info)})"


_RECURRENT_KINDS = ("lstm", "gru", "rnn")


def _layout_words(info: LayerInfo) -> str:
    """Its weight shapes; for attention and recurrent layers, whose shapes are one tuple of
    settings (adapters/port_validation/pairs.py: _layer_level_info), those settings named."""
    if info.kind == "attention" and len(info.shapes) == 1 and len(info.shapes[0]) == 6:
        width, kdim, vdim, heads, head_width, biased = info.shapes[0]
        return (f"width {width}, key and value widths {kdim} and {vdim}, {heads} heads of "
                f"{head_width}, {'with' if biased else 'no'} biases")
    if info.kind in _RECURRENT_KINDS and len(info.shapes) == 1 and len(info.shapes[0]) == 4:
        inputs, units, directions, biased = info.shapes[0]
        return (f"{inputs} inputs, {units} units, {directions} direction"
                f"{'s' if directions > 1 else ''}, {'with' if biased else 'no'} biases")
    return f"weights {[tuple(s) for s in info.shapes]}"


def base_kind(kind: str) -> str:
    """The kind without the layout setting a Keras layer adds to it: flatten_dense:C,H,W is
    dense, depthwise:M depthwise (depthwise1d:M depthwise1d) and prelu:SHAPE prelu."""
    return "dense" if kind.startswith("flatten_dense") else kind.partition(":")[0]


def kinds_fit(torch_kind: str, keras_kind: str) -> bool:
    """Whether a PyTorch layer of one kind can hold a Keras layer's weights of the other: the
    same kind, a depthwise Conv2d or Conv1d ported as Conv2D or Conv1D(groups=channels), whose
    kernel has a convolution's layout (the shapes then decide), an InstanceNorm ported as
    GroupNormalization (whose groups the port check and the validator's causes judge), or a
    tensor held outside any layer whose use was not measured ("bare") ported as a scale, an
    offset or a prefix."""
    return base_kind(torch_kind) == base_kind(keras_kind) or (torch_kind, keras_kind) in (
        ("depthwise", "conv"), ("depthwise1d", "conv1d"), ("instance_norm", "group_norm"),
        ("bare", "scale"), ("bare", "offset"), ("bare", "prefix"))


def pair_layers(torch_layers: list[LayerInfo], keras_layers: list[LayerInfo],
                mapping: dict[str, str] | None = None) -> list[tuple[LayerInfo, LayerInfo]]:
    """Pair weighted layers: by an explicit mapping (torch name -> Keras name) that must
    name every layer, or else in order, each PyTorch layer with the next unused Keras
    layer of the same kind and weight shapes."""
    torch_by_name = {t.name: t for t in torch_layers}
    keras_by_name = {k.name: k for k in keras_layers}
    if mapping is not None:
        unknown_t = [t for t in mapping if t not in torch_by_name]
        unknown_k = [k for k in mapping.values() if k not in keras_by_name]
        if unknown_t or unknown_k:
            raise UsageError("the mapping names layers that hold no weights or do not exist: "
                             + "; ".join(filter(None, [
                                 unknown_t and f"PyTorch {', '.join(unknown_t)}",
                                 unknown_k and f"Keras {', '.join(unknown_k)}"])))
        missed_t = [t.name for t in torch_layers if t.name not in mapping]
        used = set(mapping.values())
        missed_k = [k.name for k in keras_layers if k.name not in used]
        if missed_t or missed_k:
            raise UsageError("the mapping leaves out layers with weights: " + "; ".join(
                filter(None, [missed_t and f"PyTorch {', '.join(missed_t)}",
                              missed_k and f"Keras {', '.join(missed_k)}"])))
        twice = sorted({k for k in mapping.values() if list(mapping.values()).count(k) > 1})
        if twice:
            raise UsageError(f"the mapping gives Keras layers {', '.join(twice)} twice")
        pairs = [(torch_by_name[t], keras_by_name[k]) for t, k in mapping.items()]
        for t, k in pairs:
            check_pair(t, k)
        return sorted(pairs, key=lambda p: torch_layers.index(p[0]))
    pairs, used = [], set()
    for t in torch_layers:
        match = next((k for k in keras_layers if k.name not in used and _fits(t, k)), None)
        if match is None:
            remaining = [k for k in keras_layers if k.name not in used]
            nearest = f"; the next unused Keras layer is {_describe(remaining[0])}" \
                if remaining else "; every Keras layer is taken"
            advice = _advice(t, remaining[0], pairs) if remaining else _NO_FIT
            raise UsageError(f"no Keras layer fits PyTorch {_describe(t)} by order and "
                             f"shape{nearest}{advice}")
        used.add(match.name)
        pairs.append((t, match))
    left = [k.name for k in keras_layers if k.name not in used]
    if left:
        raise UsageError(f"Keras layers with weights that no PyTorch module matches: "
                         f"{', '.join(left)}")
    return pairs


def _advice(t: LayerInfo, k: LayerInfo, pairs: list[tuple[LayerInfo, LayerInfo]]) -> str:
    """Why the next unused Keras layer does not fit, where a setting explains it, and what
    to change; else how to pair the layers otherwise."""
    if t.kind == "scale":
        return (f": no Keras layer left multiplies its input by a weight of {t.shapes[0][0]} "
                "numbers, as PyTorch's forward() multiplies a value by this tensor (a "
                "ConvNeXt block's layer_scale): port it as a layer that holds it and "
                "multiplies its input by it (keras.applications' ConvNeXt: LayerScale), "
                "where PyTorch multiplies")
    shape = "x".join(str(d) for d in t.shapes[0]) + " (leading axes of 1 aside)"
    if t.kind == "offset":
        return (f": no Keras layer left adds a weight of shape {shape} to its input, as "
                "PyTorch's forward() adds this tensor to a value (a ViT's learned positions): "
                "port it as a layer that holds it and adds it to its input, where PyTorch adds")
    if t.kind == "prefix":
        return (f": no Keras layer left concatenates a weight of shape {shape}, repeated over "
                "the batch, before its input's tokens, as PyTorch's forward() does with this "
                "tensor (a ViT's class token): port it as a layer that holds it and "
                "concatenates it so, where PyTorch concatenates")
    if t.kind == "bare":
        return (f": no Keras layer left multiplies its input by a weight of shape {shape}, "
                "adds one to it or concatenates one before it: port this tensor as a layer "
                "that holds it and does with its input what PyTorch's forward() does with "
                "the tensor")
    if _without_bias(t, k):
        return ", which has no bias where PyTorch's has one: build it with use_bias=True"
    if inputs := _other_groups(t, k):
        return (f", whose kernel takes {inputs[1]} input channels per group where PyTorch's "
                f"takes {inputs[0]}: build it with PyTorch's groups")
    if heads := _other_heads(t, k):
        return heads
    if merged := _merged_before(t, k, pairs):
        return merged
    return _NO_FIT if _MAPPING_GIVABLE.get() else _NO_FIT_COMMAND_LINE


_NO_FIT = ": pass mapping={torch_name: keras_name}"
_NO_FIT_COMMAND_LINE = (": build the Keras layer with PyTorch's weight shapes, the weighted "
                        "layers in the order PyTorch runs them")


def _other_heads(t: LayerInfo, k: LayerInfo) -> str | None:
    """Two attention layers of one width that split it into heads otherwise, in words."""
    if t.kind != "attention" or k.kind != "attention" or len(t.shapes[0]) != 6 or \
            len(k.shapes[0]) != 6:
        return None
    (*widths, heads, head_width, biased), theirs = t.shapes[0], k.shapes[0]
    if (*widths, biased) != (*theirs[:3], theirs[5]) or (heads, head_width) == theirs[3:5]:
        return None
    return (f", which has num_heads={theirs[3]} of key_dim={theirs[4]} where PyTorch's "
            f"has num_heads={heads} of {head_width} (embed_dim {widths[0]} / {heads}): build "
            f"it as MultiHeadAttention(num_heads={heads}, key_dim={head_width})")


def _merged_before(t: LayerInfo, k: LayerInfo, pairs: list[tuple[LayerInfo, LayerInfo]]
                   ) -> str | None:
    """The Keras Bidirectional before, where its merge mode (sum, mul, ave: one direction's
    width) explains a layer taking half PyTorch's inputs (which concatenates both)."""
    before = next((k_ for _, k_ in reversed(pairs) if k_.merge_mode), None)
    if before is None or before.merge_mode not in ("sum", "mul", "ave"):
        return None
    if not t.shapes or not k.shapes or len(t.shapes[0]) != len(k.shapes[0]) or \
            not any(m == 2 * n for m, n in zip(t.shapes[0], k.shapes[0])):
        return None
    return (f", which takes half PyTorch's inputs: Keras {before.name} merges its two "
            f"directions with merge_mode='{before.merge_mode}', one direction's width, where "
            f"PyTorch concatenates them: build it with merge_mode='concat'")


def _fits(t: LayerInfo, k: LayerInfo) -> bool:
    if not kinds_fit(t.kind, k.kind):
        return False
    n = len(t.shapes)
    return tuple(k.shapes[:n]) == tuple(t.shapes) and len(k.shapes) in (n, n + 1)


def _without_bias(t: LayerInfo, k: LayerInfo) -> bool:
    """Whether the Keras layer is the PyTorch layer's kind with its weights but the bias: a
    convolution's or dense layer's kernel, without the vector after it."""
    kernels = ("conv", "conv1d", "conv3d", "dense", "depthwise", "depthwise1d")
    return (base_kind(t.kind) in kernels or t.kind.startswith("conv_transpose")) and \
        kinds_fit(t.kind, k.kind) and len(t.shapes) == 2 and len(t.shapes[1]) == 1 and \
        tuple(k.shapes) == tuple(t.shapes[:1])


def _other_groups(t: LayerInfo, k: LayerInfo) -> tuple[int, int] | None:
    """(PyTorch's, Keras's) input channels per group where two convolutions' kernels differ
    in them alone, the one a multiple of the other: convolutions grouped otherwise."""
    if not (kinds_fit(t.kind, k.kind) and base_kind(t.kind).startswith("conv")
            and t.shapes and k.shapes):
        return None
    mine, theirs = tuple(t.shapes[0]), tuple(k.shapes[0])
    if len(mine) != len(theirs) or len(mine) < 3 or mine[1] == theirs[1] or \
            mine[:1] + mine[2:] != theirs[:1] + theirs[2:]:
        return None
    low, high = sorted((mine[1], theirs[1]))
    return (mine[1], theirs[1]) if high % low == 0 else None


def check_pair(t: LayerInfo, k: LayerInfo) -> None:
    """Refuse a pair whose kinds or weight shapes cannot correspond, naming both."""
    if not kinds_fit(t.kind, k.kind):
        raise UsageError(f"PyTorch {_describe(t)} cannot hold the weights of Keras "
                         f"{_describe(k)}: different kinds of layer")
    for i, shape in enumerate(t.shapes):
        if i >= len(k.shapes) or tuple(k.shapes[i]) != tuple(shape):
            theirs = tuple(k.shapes[i]) if i < len(k.shapes) else "nothing"
            raise UsageError(f"shape mismatch: PyTorch {t.name} weight {i} has shape "
                             f"{tuple(shape)}, Keras {k.name} {theirs} (in PyTorch's layout)")
